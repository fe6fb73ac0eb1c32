/**
 * Cutting text for messages without cutting a character in two. JavaScript
 * strings count UTF-16 units: an emoji or a rare CJK character is two, and
 * half of one is a lone surrogate, which UTF-8 cannot carry (Perl's JSON
 * parser dies on `\ud83d`, a browser shows U+FFFD).
 */

const isHighSurrogate = (unit: number): boolean => unit >= 0xd800 && unit <= 0xdbff;
const isLowSurrogate = (unit: number): boolean => unit >= 0xdc00 && unit <= 0xdfff;

/** `text`'s first `max` UTF-16 units, one fewer where the last would be the first half of a pair. */
export function headOf(text: string, max: number): string {
  if (text.length <= max) return text;
  const keep = max > 0 && isHighSurrogate(text.charCodeAt(max - 1)) ? max - 1 : max;
  return text.slice(0, keep);
}

/** Where a slice of `text` from `from` may start: `from`, or one past it when it falls inside a pair. */
export function pairStart(text: string, from: number): number {
  return from > 0 && from < text.length && isLowSurrogate(text.charCodeAt(from)) && isHighSurrogate(text.charCodeAt(from - 1)) ? from - 1 : from;
}

/**
 * A value as an error message quotes it: JSON-quoted, cut first to `max`
 * units with `…` (quoting first and cutting the JSON text left half an
 * escape, `\u00`, or half a pair).
 */
export function quoted(text: string, max: number): string {
  return JSON.stringify(text.length > max ? `${headOf(text, max)}…` : text);
}

/** `text`'s last `max` UTF-16 units, one fewer where the first would be the second half of a pair. */
export function tailOf(text: string, max: number): string {
  if (text.length <= max) return text;
  const from = text.length - max;
  return text.slice(from > 0 && isLowSurrogate(text.charCodeAt(from)) ? from + 1 : from);
}
