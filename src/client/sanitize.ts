/**
 * TEXT of a notification may hold a little HTML (the seed's example is
 * `Just<br/>some<br/>text`), and it comes from a backend that may echo what a
 * subscriber typed, so it goes through DOMPurify with a small allowlist:
 * simple formatting, lists and links to http(s) or relative addresses.
 * Everything else (script, img, event handlers, style, javascript: URLs) is
 * dropped. TITLE is never HTML: it is set as text.
 */
import type { Config, DOMPurify } from 'dompurify';
import { headOf } from '../protocol/text-cut.js';
import { createElement } from './dom.js';

/** The bundler's require (esbuild): the module is run where it is called, not when the library loads. */
declare const require: (id: 'dompurify') => DOMPurify;

/**
 * DOMPurify, or undefined where it could not start. Its module makes its
 * instance as it loads, with `document.createElement('template')` (the
 * template's inert document is what it parses in afterwards), and throws
 * when the page's markup named an element `createElement` (dom.ts): an
 * `import` of it would fail the library's whole module. So it is required
 * here, inside a try, once, as the library loads (before a panel's content
 * usually is on the page). Where it failed, TEXT is shown as plain text.
 */
const purifier: DOMPurify | undefined = (() => {
  try {
    const purify = require('dompurify');
    // Not supported (no template element, or markup shadows document.nodeType): an instance without sanitize().
    return purify.isSupported && typeof purify.sanitize === 'function' ? purify : undefined;
  } catch {
    return undefined;
  }
})();

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

/**
 * Bidi embedding, override and isolate controls (U+202A–U+202E,
 * U+2066–U+2069). From a sender they turn what follows around: "Invoice
 * from \u202Egnp.exe" reads "Invoice from exe.png". Left-to-right and
 * right-to-left marks (U+200E, U+200F) stay: they change no order, and
 * Arabic or Hebrew text may need them.
 */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** `text` without bidi embedding, override and isolate controls. */
export function withoutBidiControls(text: string): string {
  return text.replace(BIDI_CONTROLS, '');
}

/**
 * Most characters in a row that extend the grapheme cluster before them,
 * kept on a toast. Chromium lays one cluster out in time growing with the
 * square of its length: TEXT of a letter and 9,990 combining marks cost 300-450
 * ms a toast, of a thumb and 4,990 skin-tone modifiers 7 s. Text as people
 * write it stacks a few (Vietnamese, Arabic with harakat), a flag of Scotland
 * seven (its tag characters).
 */
const MAX_EXTENDERS = 32;

/**
 * One character that extends the cluster before it (UAX #29, GB9 and GB11):
 * a combining mark or another grapheme extender (ZWNJ, tag characters), an
 * emoji modifier, or a zero-width joiner with the pictograph it joins. No
 * one of these begins another, so a run of them is read one way only and the
 * search is linear.
 */
const EXTENDER = /[\p{M}\p{Grapheme_Extend}\p{Emoji_Modifier}]|\u200D\p{Extended_Pictographic}?/gu;
const EXTENDERS = /(?:[\p{M}\p{Grapheme_Extend}\p{Emoji_Modifier}]|\u200D\p{Extended_Pictographic}?)+/gu;

/**
 * `text` with each run of extenders cut to its first MAX_EXTENDERS, `before`
 * of them shown just before `text` (in the text node before it); and how many
 * end what comes out.
 */
function cutExtenders(text: string, before = 0): { text: string; trailing: number } {
  let trailing = text === '' ? before : 0;
  const cut = text.replace(EXTENDERS, (run: string, at: number) => {
    const shown = at === 0 ? before : 0;
    const units = run.match(EXTENDER)!;
    const kept = Math.max(0, Math.min(units.length, MAX_EXTENDERS - shown));
    if (at + run.length === text.length) trailing = shown + kept;
    return kept === units.length ? run : units.slice(0, kept).join('');
  });
  return { text: cut, trailing };
}

/** `text` with no grapheme cluster longer than a toast lays out quickly: each run of characters extending one cut to MAX_EXTENDERS. */
export function withShortClusters(text: string): string {
  return cutExtenders(text).text;
}

/**
 * Takes the bidi controls out of every text node under `root` (written as
 * `&#x202E;` they come out of the parser), and cuts runs of extenders
 * (withShortClusters) counted on from one node to the next: Chromium lays
 * `a<b>\u0301…</b><b>\u0301…</b>` out as one cluster across the elements.
 */
function cleanTextNodes(root: Node, before = 0): number {
  let trailing = before;
  for (let node = root.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.nodeValue ?? '';
      const clean = cutExtenders(withoutBidiControls(text), trailing);
      trailing = clean.trailing;
      if (clean.text !== text) node.nodeValue = clean.text;
    } else {
      trailing = cleanTextNodes(node, trailing);
    }
  }
  return trailing;
}

/**
 * The name of Herald's Trusted Types policy. A page that enforces Trusted
 * Types (`require-trusted-types-for 'script'`) and names its policies
 * (`trusted-types ...`) lists it there for TEXT to show its formatting
 * (docs/browser.md).
 */
export const TRUSTED_TYPES_POLICY_NAME = 'herald';

type HtmlPolicy = NonNullable<Config['TRUSTED_TYPES_POLICY']>;

/** The page's Trusted Types factory, where the browser has one. */
interface TrustedTypesFactory {
  createPolicy(name: string, rules: { createHTML(html: string): string }): HtmlPolicy;
}

/** Herald's policy; null: none to be had; undefined: not asked for yet. */
let policy: HtmlPolicy | null | undefined;

/**
 * Herald's own Trusted Types policy, made the first time TEXT is parsed
 * (not as the library loads: a page that never shows HTML does not see its
 * name refused). It hands markup only to DOMPurify and to asPlainText's
 * parser, both parsing in a document of their own where nothing runs, so it
 * lets the markup through as it is; it makes no script URLs. DOMPurify is
 * given it (TRUSTED_TYPES_POLICY) so that it never makes its own policy,
 * `dompurify`: that name may be refused by the page, or be the page's own
 * DOMPurify's, which Herald's taking it first would break. Null where the
 * browser has no Trusted Types, or the page's `trusted-types` directive
 * does not allow the name (or it is taken).
 */
function heraldPolicy(): HtmlPolicy | null {
  if (policy === undefined) {
    policy = null;
    const factory = (globalThis as { trustedTypes?: TrustedTypesFactory }).trustedTypes;
    try {
      if (factory && typeof factory.createPolicy === 'function') policy = factory.createPolicy(TRUSTED_TYPES_POLICY_NAME, { createHTML: (html) => html });
    } catch {
      // refused by the page's trusted-types directive: see htmlSinksOpen()
    }
  }
  return policy;
}

/** Whether a string may be handed to an HTML parser; undefined: not found out yet. */
let stringsParse: boolean | undefined;

/**
 * Whether markup can be parsed here at all: through Herald's policy, or
 * (none to be had) as a plain string, which a page enforcing Trusted Types
 * refuses unless its own default policy takes it. Found out once, with an
 * empty string: a page that refuses them then gets one violation report
 * (which may carry a sample) with no notification's text in it.
 */
function htmlSinksOpen(): boolean {
  if (heraldPolicy()) return true;
  if (stringsParse === undefined) {
    try {
      new DOMParser().parseFromString('', 'text/html');
      stringsParse = true;
    } catch {
      stringsParse = false;
    }
  }
  return stringsParse;
}

/** `html` as the HTML parser takes it on this page: through Herald's policy where there is one. */
function parseable(html: string): string {
  // A TrustedHTML where there is a policy; the parser takes either.
  return (heraldPolicy()?.createHTML(html) as unknown as string | undefined) ?? html;
}

/**
 * Sanitises TEXT into a fragment ready to insert; links open in a new tab
 * without an opener. TEXT with more than MAX_TAGS tags, or nested deeper
 * than MAX_NESTING, comes out as its text alone (see there), and so does
 * TEXT on a page whose Trusted Types refuse to parse it (htmlSinksOpen) or
 * where DOMPurify gave nothing: nothing is lost.
 */
export function sanitizeHtml(html: string, doc: Document = document): DocumentFragment {
  const purified = purifier && !tooIntricate(html) && htmlSinksOpen() ? purify(purifier, html) : undefined;
  // What was parsed is measured too: tooIntricate reads tags, not a parser's tree (see there).
  const fragment = purified && !nestsDeeperThan(purified, MAX_NESTING) ? purified : asPlainText(html);
  cleanTextNodes(fragment);
  // Through the prototype: `doc` may be the page's document, whose markup can shadow its methods (dom.ts).
  return doc === document ? fragment : (Document.prototype.importNode.call(doc, fragment, true) as DocumentFragment);
}

/**
 * Markup past these is shown as text: parsing, sanitising, laying out and
 * removing it costs the tab's main thread by its depth, some 100 ms for
 * MAX_TEXT_CHARS of nested `<b>`, and a tab that connects after a day away
 * is replayed every notification nobody acknowledged, each built as a toast
 * although only `maxToasts` stay: 600 such were 88 s of a blocked tab. A
 * notification's formatting nests a few elements deep and has some dozens
 * of tags.
 */
const MAX_NESTING = 32;
const MAX_TAGS = 1000;

/**
 * A start or end tag, as the parser would take it: `<` and a letter (or `/` and a letter), up to `>`.
 * The attributes begin at white space or `/` after the name: as `[^\s/>]*[^>]*`, the two runs
 * could split the same characters every way, and a TEXT of `<a` repeated with no `>` took
 * cubic time (4,000 characters: 3.3 s of a blocked tab; 10,000 now take 20-46 ms in Node).
 * White space is HTML's, tab, LF, FF, CR and space, not JavaScript's `\s`: `</i\u00A0y>` is
 * an end tag named `i\u00A0y` to the parser, which closes nothing (HTML, "Tag name state").
 */
const TAG = /<(\/?)([a-z][^\t\n\f\r />]*)(?:[\t\n\f\r /][^>]*)?>/gi;
/** Elements (the usual ones) that have no end tag, or whose end is implied by the next of their kind: they do not nest. */
const FLAT = new Set(['br', 'hr', 'img', 'input', 'wbr', 'p', 'li', 'dt', 'dd', 'option', 'tr', 'td', 'th']);

/**
 * The formatting elements (HTML's "adoption agency" list): the end tag of
 * one does not close the elements opened inside it (`<b><ul></b>` leaves the
 * `ul` open, and the parser re-opens the `b` in it), so `<b><ul></b>` over
 * and over nests one level deeper each time.
 */
const FORMATTING = new Set(['a', 'b', 'big', 'code', 'em', 'font', 'i', 'nobr', 's', 'small', 'strike', 'strong', 'tt', 'u']);

/**
 * Whether `html` has more than MAX_TAGS tags or nests deeper than
 * MAX_NESTING elements, read from its tags without parsing it: an end tag
 * closes its element and those opened inside it, but a formatting
 * element's only itself (FORMATTING); one with nothing open of its name is
 * ignored, as the parser does. Where it differs from the parser it counts
 * deeper, with one exception: it reads the tags in comments, bogus comments
 * (`</0</i>`, `<?</i>`) and quoted attribute values (`<br t='>' </i>`),
 * where the parser reads none. It keeps the common deep markup from being
 * parsed at all; sanitizeHtml measures the depth of what was parsed as well
 * (nestsDeeperThan).
 */
function tooIntricate(html: string): boolean {
  const open: string[] = [];
  let tags = 0;
  for (const [, end, tag] of html.matchAll(TAG)) {
    if (++tags > MAX_TAGS) return true;
    const name = tag!.toLowerCase();
    if (FLAT.has(name)) continue;
    if (end) {
      const at = open.lastIndexOf(name);
      if (at < 0) continue;
      if (FORMATTING.has(name)) open.splice(at, 1);
      else open.length = at;
    } else if (open.push(name) > MAX_NESTING) {
      return true;
    }
  }
  return false;
}

/** Whether elements under `root` nest deeper than `max`: it looks no deeper than that. */
function nestsDeeperThan(root: Node, max: number): boolean {
  for (let node = root.firstChild; node; node = node.nextSibling) {
    if (node.nodeType === Node.ELEMENT_NODE && (max === 0 || nestsDeeperThan(node, max - 1))) return true;
  }
  return false;
}

/** TEXT sanitised by DOMPurify; undefined where it could not parse it (it returns null, or throws, when the page's Trusted Types refuse). */
function purify(purifier: DOMPurify, html: string): DocumentFragment | undefined {
  let fragment: DocumentFragment | null;
  try {
    fragment = purifier.sanitize(html, {
      ALLOWED_TAGS: [...ALLOWED_TAGS],
      ALLOWED_ATTR: [...ALLOWED_ATTR],
      ALLOWED_URI_REGEXP: SAFE_URL,
      ALLOW_DATA_ATTR: false,
      RETURN_DOM_FRAGMENT: true,
      // Null (no policy): DOMPurify parses plain strings and makes no `dompurify` policy of its own either.
      TRUSTED_TYPES_POLICY: heraldPolicy(),
    }) as DocumentFragment | null;
  } catch {
    return undefined;
  }
  if (!fragment) return undefined;
  // Set link targets here rather than with a DOMPurify hook: hooks are global
  // to the DOMPurify instance, which an ES-module host page may share.
  for (const a of fragment.querySelectorAll('a')) {
    a.setAttribute('target', '_blank');
    a.setAttribute('rel', 'noopener noreferrer');
  }
  return fragment;
}

/**
 * TEXT as plain text, where DOMPurify could not start or parse it, or the
 * markup is too intricate to parse: its tags taken out (a line break ending
 * a line; the start and end of paragraphs, lists and list items too, a run
 * of them one line end, as their boxes are on the toast; a script or style
 * with what it holds), then its character references decoded
 * (decodeReferences), with no elements left to nest.
 */
function asPlainText(html: string): DocumentFragment {
  const flat = withoutComments(html)
    .replace(/<!doctype(?=[\t\n\f\r >])[^>]*>/gi, '')
    .replace(/<(script|style)(?=[\t\n\f\r />])[^>]*>[^]*?<\/\1[\t\n\f\r ]*>/gi, '')
    .replace(LINE_BREAK, '\n')
    .replace(BLOCK_EDGES, '\n')
    .replace(TAG, '')
    // A `<` left is text (`<?php`, `</0`, `<!x`, `a < b`): the parser of decodeReferences
    // would read it as the start of a comment running to the end, and the text after it
    // was lost (all `>` went with the tags).
    .replace(/</g, '&lt;');
  const lines = decodeReferences(flat).trim().split('\n');
  // Made in the page's document, through the prototype (dom.ts): the parsed one holds the sender's markup.
  const fragment = new DocumentFragment();
  lines.forEach((line, i) => {
    if (i > 0) fragment.append(createElement('br'));
    fragment.append(line);
  });
  return fragment;
}

/**
 * `html` without its complete comments (`<!-- … -->`, and `<!-->`, `<!--->`,
 * as HTML ends them) and CDATA sections: markup the sender never meant to be
 * read (a template's notes), which the fallback's `<` kept as text would
 * show. One that is never closed stays, as text. Linear: each search starts
 * where the last ended (a lazy regex rescanned to the end for each opening).
 */
function withoutComments(html: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const open = html.indexOf('<!', at);
    if (open < 0) break;
    const [begins, ends] = html.startsWith('<!--', open) ? ['<!--', '-->'] : html.startsWith('<![CDATA[', open) ? ['<![CDATA[', ']]>'] : ['', ''];
    if (begins === '') {
      out += html.slice(at, open + 2);
      at = open + 2;
      continue;
    }
    const from = open + begins.length;
    // `<!-->` and `<!--->` are whole (empty) comments to HTML's parser.
    const close = begins === '<!--' && html.startsWith('>', from) ? from - 2 : begins === '<!--' && html.startsWith('->', from) ? from - 1 : html.indexOf(ends, from);
    if (close < 0) break;
    out += html.slice(at, open);
    at = close + ends.length;
  }
  return out + html.slice(at);
}

/** A `<br>` with any attributes (`<br class="x">`, an editor's `<br data-mce-bogus="1">`, `<br/ >`): as TAG reads tags. */
const LINE_BREAK = /<br(?:[\t\n\f\r /][^>]*)?>/gi;
/**
 * A run of start and end tags of paragraphs, lists and list items, white
 * space between them: one line end. Either tag counts, as HTML lets the end
 * tag of `p` and `li` be left out (`<li>a<li>b`).
 */
const BLOCK_EDGES = /(?:<\/?(?:p|ul|ol|li)(?:[\t\n\f\r /][^>]*)?>[\t\n\f\r ]*)+/gi;

/** The character references a page's text most often has, decoded where HTML cannot be parsed. */
const COMMON_REFERENCES: Readonly<Record<string, string>> = { amp: '&', AMP: '&', lt: '<', LT: '<', gt: '>', GT: '>', quot: '"', QUOT: '"', apos: "'", nbsp: '\u00A0' };
/**
 * Names are case-sensitive (`&Lt;` is another character): only those listed.
 * Those HTML knows from before HTML5 may end without `;`; `&apos;` may not.
 * Digits are not bounded: `&#x0000041;` is `A`, as a browser reads it.
 */
const REFERENCE = /&(?:#(\d+);?|#[xX]([\da-fA-F]+);?|(amp|AMP|lt|LT|gt|GT|quot|QUOT|nbsp);?|(apos);)/g;
/**
 * What HTML makes of the numeric references 0x80–0x9F: the windows-1252
 * characters at those bytes (`&#128;` is `€`), where it has one; the C1
 * control itself where it has none.
 */
const WINDOWS_1252 = '\u20AC\x81\u201A\u0192\u201E\u2026\u2020\u2021\u02C6\u2030\u0160\u2039\u0152\x8D\u017D\x8F\x90\u2018\u2019\u201C\u201D\u2022\u2013\u2014\u02DC\u2122\u0161\u203A\u0153\x9D\u017E\u0178';

/**
 * `text` (no tags left in it) with its character references decoded: read as
 * HTML in a document of its own (DOMParser's: no script runs, nothing loads;
 * no element of the sender's can stand in for <body>, dom.ts), or, where the
 * page's Trusted Types refuse that, with the numeric ones and the common named
 * ones decoded here, any other left as written.
 */
function decodeReferences(text: string): string {
  if (htmlSinksOpen()) {
    try {
      return new DOMParser().parseFromString(parseable(text), 'text/html').body.textContent ?? '';
    } catch {
      // refused after all (the page's default policy turned it down): decoded below
    }
  }
  return text.replace(REFERENCE, (_reference, decimal: string | undefined, hex: string | undefined, name: string | undefined, apos: string | undefined) => {
    if (name || apos) return COMMON_REFERENCES[name ?? apos!]!;
    // Past 0x10FFFF however many digits (Number gives Infinity at worst): U+FFFD, as HTML has it.
    const code = decimal !== undefined ? Number(decimal) : Number.parseInt(hex!, 16);
    if (code >= 0x80 && code <= 0x9f) return WINDOWS_1252[code - 0x80]!;
    return code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : '\uFFFD';
  });
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
 * A cut may fall inside markup: what comes out is sanitised like the rest;
 * `plain`: the text is never parsed, and is cut where it falls.
 */
export function clipText(text: string, max: number = MAX_TEXT_CHARS, plain = false): string {
  if (text.length <= max) return text;
  const half = Math.max(0, Math.floor((max - 3) / 2));
  let head = text.slice(0, half);
  let tail = half > 0 ? text.slice(-half) : '';
  // Never split a surrogate pair (it would show as U+FFFD).
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  if (/^[\uDC00-\uDFFF]/.test(tail)) tail = tail.slice(1);
  // Nor, where it is short, a tag: the parser would take the `…` into it. Plain text
  // (`plain`: FORMAT "text", never parsed) has no tags: `a -> b` is kept whole.
  if (plain) return `${head}\n…\n${tail}`;
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
 * TEXT is text already. A line break, a paragraph, a list and a list item
 * each end a line, as on the toast (`<li>a</li><li>b</li>` is "a\nb", not
 * "ab"), read from the sanitised elements: a `<br class="x">`, or an `<li>`
 * whose end tag is left out, too.
 */
export function plainText(text: string, plain = false): string {
  if (plain) return withoutBidiControls(clipText(text, MAX_TEXT_CHARS, true)).trim();
  return collapseBlankLines(linesOf(sanitizeHtml(clipText(text)))).trim();
}

/** Elements that start and end a line of their own on the toast (the allowlist's blocks). */
const BLOCKS = new Set(['p', 'ul', 'ol', 'li']);

/**
 * The text under `root`, a `<br>` as a line end, and the edges of BLOCKS too:
 * a run of edges with only white space between (`</li>\n<li>`) is one line
 * end, not a blank line, as the boxes lay out. sanitizeHtml bounds the depth.
 */
function linesOf(root: Node): string {
  let text = '';
  let edge = false;
  const visit = (parent: Node): void => {
    for (let node = parent.firstChild; node; node = node.nextSibling) {
      if (node.nodeType === Node.TEXT_NODE) {
        const value = node.nodeValue ?? '';
        if (edge) {
          if (/^[\t\n\f\r ]*$/.test(value)) continue;
          if (text !== '' && !text.endsWith('\n')) text += '\n';
          edge = false;
        }
        text += value;
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        const name = (node as Element).localName;
        if (name === 'br') {
          text += '\n';
          edge = false;
          continue;
        }
        const block = BLOCKS.has(name);
        edge ||= block;
        visit(node);
        edge ||= block;
      }
    }
  };
  visit(root);
  return text;
}

/**
 * Lines without their trailing spaces and tabs, and each run of blank lines as one. Line by
 * line: as one regular expression (`[ \t]*\n[ \t\n]*\n`) it went back over every run of spaces
 * from each of its characters, quadratic in the run (10,000 characters: 50-100 ms a notification).
 */
function collapseBlankLines(text: string): string {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let end = line.length;
    while (end > 0 && (line.charCodeAt(end - 1) === 0x20 || line.charCodeAt(end - 1) === 0x09)) end--;
    lines[i] = end === line.length ? line : line.slice(0, end);
  }
  return lines.join('\n').replace(/\n{3,}/g, '\n\n');
}

/** Longest TITLE a desktop notification gets, in characters; the system shows a line or two of it. */
export const MAX_DESKTOP_TITLE_CHARS = 200;

/** `title` cut to `max` UTF-16 units (never half an emoji), with `…` where it was cut. */
export function clipTitle(title: string, max = MAX_DESKTOP_TITLE_CHARS): string {
  if (title.length <= max) return title;
  return `${headOf(title, max - 1)}…`;
}
