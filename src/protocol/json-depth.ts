/**
 * How deeply a JSON text nests, found without parsing it. V8's JSON.parse
 * takes any depth but slows with it: about 0.75 µs a level, so one request of
 * 1 MB of `[` held the event loop for 400 ms, and one 64 KB frame from a tab
 * for 25 ms, before anything could refuse the value. Scanning first costs a
 * fraction of the parse: strings are skipped with indexOf, and only the bytes
 * between them are looked at one by one.
 */

/**
 * How deeply a request's or a frame's JSON may nest, on every door: the HTTP
 * API's bodies, the legacy protocol's requests, the tabs' frames. Beyond the
 * parse, serialising a value nested some thousands deep (an echo, a
 * notification) overflows the stack; no client of the old daemon nests past a
 * handful, and a notification's own fields have the levels a body's envelope
 * leaves (a batch item's `message` starts at the fourth).
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }

/**
 * Whether `text` nests arrays and objects more than `limit` levels deep (a
 * top-level object is one level). Exact for valid JSON; for text that is not
 * JSON the answer is a guess, and JSON.parse refuses that text either way.
 * Linear in the length: each run of backslashes is walked back once.
 */
export function jsonNestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // To the string's closing quote: the next quote after an even run of backslashes.
      let q = i;
      for (;;) {
        q = text.indexOf('"', q + 1);
        if (q < 0) return false;
        let b = q - 1;
        while (text.charCodeAt(b) === BACKSLASH) b--;
        if ((q - 1 - b) % 2 === 0) break;
      }
      i = q;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}
