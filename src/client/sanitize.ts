/**
 * TEXT of a notification may hold a little HTML (the seed's example is
 * `Just<br/>some<br/>text`), and it comes from a backend that may echo what a
 * subscriber typed, so it goes through DOMPurify with a small allowlist:
 * simple formatting, lists and links to http(s) or relative addresses.
 * Everything else (script, img, event handlers, style, javascript: URLs) is
 * dropped. TITLE is never HTML: it is set as text.
 */
import DOMPurify from 'dompurify';

export const ALLOWED_TAGS: readonly string[] = ['b', 'i', 'u', 'em', 'strong', 'br', 'p', 'ul', 'ol', 'li', 'a'];
export const ALLOWED_ATTR: readonly string[] = ['href'];

/**
 * http(s) URLs and relative references only. A relative reference's first
 * segment may not contain a colon (so `javascript:`, `data:` and `mailto:`
 * never match), and `//host` (scheme-relative) is refused as well.
 */
export const SAFE_URL = /^(?:https?:\/\/|\/(?!\/)|\.{1,2}\/|[?#]|[^:/?#]+(?:[/?#]|$))/i;

export function isSafeUrl(url: string): boolean {
  return SAFE_URL.test(url.trim());
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

/** The text a desktop notification shows for TEXT (no markup at all). */
export function plainText(html: string): string {
  const fragment = sanitizeHtml(html.replace(/<br\s*\/?>/gi, '\n'));
  return (fragment.textContent ?? '').trim();
}
