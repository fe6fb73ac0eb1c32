/**
 * TEXT of a notification may hold a little HTML (the seed's example is
 * `Just<br/>some<br/>text`), and it comes from a backend that may echo what a
 * subscriber typed, so it goes through DOMPurify with a small allowlist:
 * simple formatting, lists and links to http(s) or relative addresses.
 * Everything else (script, img, event handlers, style, javascript: URLs) is
 * dropped. TITLE is never HTML: it is set as text.
 */
import DOMPurify from 'dompurify';
import { headOf } from '../protocol/text-cut.js';

export const ALLOWED_TAGS: readonly string[] = ['b', 'i', 'u', 'em', 'strong', 'br', 'p', 'ul', 'ol', 'li', 'a'];
export const ALLOWED_ATTR: readonly string[] = ['href'];

/**
 * http(s) URLs and relative references only. A relative reference's first
 * segment may not contain a colon (so `javascript:`, `data:` and `mailto:`
 * never match), and `//host` (scheme-relative) is refused as well. So is a
 * backslash before any `?` or `#`: a browser reads it as `/` in an http(s)
 * URL, and `/\evil.example`, `\\evil.example` or `\/evil.example` went to
 * another host as `//host` does.
 */
export const SAFE_URL = /^(?![^?#]*\\)(?:https?:\/\/|\/(?!\/)|\.{1,2}\/|[?#]|[^:/?#]+(?:[/?#]|$))/i;

/**
 * What a browser leaves of a URL before it parses it, to the letter or
 * stricter: every C0 control and space out (it drops tabs and newlines
 * anywhere, `/\t/evil.example` being `//evil.example`, and the rest at the
 * ends). DOMPurify does the same before it tests SAFE_URL.
 */
const URL_IGNORED = /[\u0000-\u0020]/g;

export function isSafeUrl(url: string): boolean {
  return SAFE_URL.test(url.replace(URL_IGNORED, ''));
}

/** Sanitises TEXT into a fragment ready to insert; links open in a new tab without an opener. */
export function sanitizeHtml(html: string, doc: Document = document): DocumentFragment {
  const fragment = DOMPurify.sanitize(html, {
    ALLOWED_TAGS: [...ALLOWED_TAGS],
    ALLOWED_ATTR: [...ALLOWED_ATTR],
    ALLOWED_URI_REGEXP: SAFE_URL,
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
  // Set link targets here rather than with a DOMPurify hook: hooks are global
  // to the DOMPurify instance, which an ES-module host page may share.
  for (const a of fragment.querySelectorAll('a')) {
    a.setAttribute('target', '_blank');
    a.setAttribute('rel', 'noopener noreferrer');
  }
  return doc === document ? fragment : (doc.importNode(fragment, true) as DocumentFragment);
}

/**
 * TEXT beyond this many characters (UTF-16 units) is cut before it is parsed.
 * Chromium's HTML parser is superlinear on some markup: 300 KB of `<b>` froze
 * a tab for half a minute, a megabyte (what the HTTP API takes) for minutes,
 * and TEXT may echo what a subscriber typed. 10 000 characters of the worst
 * markup cost well under a second; a toast shows far less than that.
 */
export const MAX_TEXT_CHARS = 10_000;

/** A tag cut in two is dropped up to this many characters from the cut; beyond, it may be text with a `<` in it. */
const MAX_CUT_TAG = 200;

/**
 * `text` itself when it is at most `max` characters; otherwise its head and
 * its tail (where a command's output says how it ended) around a `…` line.
 * A cut may fall inside markup: what comes out is sanitised like the rest.
 */
export function clipText(text: string, max: number = MAX_TEXT_CHARS): string {
  if (text.length <= max) return text;
  const half = Math.max(0, Math.floor((max - 3) / 2));
  let head = text.slice(0, half);
  let tail = half > 0 ? text.slice(-half) : '';
  // Never split a surrogate pair (it would show as U+FFFD).
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  if (/^[\uDC00-\uDFFF]/.test(tail)) tail = tail.slice(1);
  // Nor, where it is short, a tag: the parser would take the `…` into it.
  const open = head.lastIndexOf('<');
  if (open > head.lastIndexOf('>') && head.length - open <= MAX_CUT_TAG) head = head.slice(0, open);
  const close = tail.indexOf('>');
  const lt = tail.indexOf('<');
  if (close >= 0 && close < MAX_CUT_TAG && (lt < 0 || close < lt)) tail = tail.slice(close + 1);
  return `${head}\n…\n${tail}`;
}

/**
 * Whether a notification's TEXT is plain text rather than HTML: `FORMAT:
 * "text"`, which Herald puts on a command's default final notification (its
 * output) and any sender may use. Shown as written, whitespace kept.
 */
export function isPlainTextFormat(message: { FORMAT?: unknown }): boolean {
  return message.FORMAT === 'text';
}

/** A TITLE or TEXT that is not a string, as the toast shows it: a number as written, anything else as JSON. */
export function asText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/**
 * The text a desktop notification shows for TEXT (no markup at all); `plain`:
 * TEXT is text already. A line break, a paragraph and a list item each end a
 * line, as on the toast (`<li>a</li><li>b</li>` is "a\nb", not "ab").
 */
export function plainText(text: string, plain = false): string {
  if (plain) return clipText(text).trim();
  const fragment = sanitizeHtml(clipText(text).replace(/<br\s*\/?>/gi, '\n'));
  for (const block of fragment.querySelectorAll('p, li')) block.after('\n');
  return (fragment.textContent ?? '').replace(/[ \t]*\n[ \t\n]*\n/g, '\n\n').trim();
}

/** Longest TITLE a desktop notification gets, in characters; the system shows a line or two of it. */
export const MAX_DESKTOP_TITLE_CHARS = 200;

/** `title` cut to `max` UTF-16 units (never half an emoji), with `…` where it was cut. */
export function clipTitle(title: string, max = MAX_DESKTOP_TITLE_CHARS): string {
  if (title.length <= max) return title;
  return `${headOf(title, max - 1)}…`;
}
