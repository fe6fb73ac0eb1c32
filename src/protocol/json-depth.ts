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
 * Where the string that opens at the quote at `start` ends: its closing
 * quote, the next one after an even run of backslashes; -1 when none comes.
 * Skipped with indexOf, and each run of backslashes walked back once.
 */
function stringEnd(text: string, start: number): number {
  let q = start;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q < 0) return -1;
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q;
  }
}

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
      i = stringEnd(text, i);
      if (i < 0) return false;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}

/** What jsonBodyFault found: a text nested too deep, a member name given twice in one object, or a number too small to be told from 0. */
export type JsonBodyFault =
  | { kind: 'deeper' }
  /** `at`: the object's place under the body (`/to`, `/messages/3/to`; '' for the body itself). */
  | { kind: 'repeated'; name: string; at: string }
  /** `number`: as written (`1e-400`); `at` as for 'repeated', the object or array that holds it. */
  | { kind: 'underflow'; number: string; at: string };

/**
 * Members whose value is a notification (a send's `message`, a command's
 * `success` and `error`): the panel's own data, which reaches the tab as sent,
 * and whose repeated names jsonBodyFault leaves to JSON.parse (the last wins).
 */
const OPEN_MEMBERS = ['message', 'success', 'error'] as const;

/**
 * Members of one object compared pair by pair; past this many, by a Set of
 * their decoded names, so that a body of 100,000 members costs no 10^10
 * comparisons. No object of a body Herald takes comes near.
 */
const PAIRWISE_MEMBERS = 16;

const COMMA = 0x2c; // ,

// The scan's stack, one entry a level (the body is level 1), kept between calls: it runs for
// every request body, and allocates only when it has a fault to report (or an object past
// PAIRWISE_MEMBERS).
const isObject: boolean[] = [];
const expectsName: boolean[] = [];
const nameStart: number[] = [];
const nameEnd: number[] = [];
const itemIndex: number[] = [];
const namesFrom: number[] = [];
const nameSets: Array<Set<string> | undefined> = [];
/** The names of the open objects' members: the offsets of their quotes, and 1 when one holds a backslash (else 0); up to `namesEnd`. */
const names: number[] = [];
let namesEnd = 0;
/** Whether nameSets may hold a Set a scan that returned early left behind (up to 1 MB of names, until dropped). */
let setsMade = false;

/**
 * jsonNestsDeeperThan, and in the same pass a member name given twice in one
 * object (`{"to":{"aid":7},…,"to":{"all":"admins"}}`), which JSON.parse takes
 * with the last value without a word: what a reader of the first sees (a log
 * line, a proxy's filter, a review of the backend's template) is not what
 * Herald would do. Objects inside a member named in OPEN_MEMBERS are not
 * looked at. Names are compared as written, and decoded only when one holds a
 * backslash (`"\u0061id"` is `"aid"`). Also a number outside those members
 * that JSON.parse would read as 0 although it is not 0 as written (`1e-400`).
 * Exact for valid JSON; for text that is not, a guess (JSON.parse refuses
 * that text either way).
 */
export function jsonBodyFault(text: string, limit: number): JsonBodyFault | undefined {
  namesEnd = 0;
  if (setsMade) {
    nameSets.fill(undefined);
    setsMade = false;
  }
  let depth = 0;
  // The level of the outermost open value (inside an OPEN_MEMBERS member); 0: none.
  let openAt = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const q = stringEnd(text, i);
      if (q < 0) return undefined;
      if (openAt === 0 && depth > 0 && isObject[depth] && expectsName[depth]) {
        expectsName[depth] = false;
        nameStart[depth] = i;
        nameEnd[depth] = q;
        if (repeatsName(text, depth, i, q)) return { kind: 'repeated', name: nameOf(text, i, q), at: placeOf(text, depth) };
      }
      i = q;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return { kind: 'deeper' };
      if (openAt !== 0) continue;
      if (depth > 1 && isObject[depth - 1] && isOpenMember(text, nameStart[depth - 1]!, nameEnd[depth - 1]!)) {
        openAt = depth;
        continue;
      }
      isObject[depth] = c === OPEN_OBJECT;
      expectsName[depth] = true;
      itemIndex[depth] = 0;
      namesFrom[depth] = namesEnd;
      nameSets[depth] = undefined;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth === openAt) openAt = 0;
      else if (openAt === 0 && depth > 0) {
        namesEnd = namesFrom[depth]!;
        nameSets[depth] = undefined;
      }
      depth--;
    } else if (c === COMMA && openAt === 0 && depth > 0) {
      if (isObject[depth]) expectsName[depth] = true;
      else itemIndex[depth]!++;
    } else if ((c === DOT || c === LOWER_E || c === UPPER_E) && openAt === 0 && isDigit(text.charCodeAt(i - 1))) {
      // A fraction or an exponent (outside strings, an e after a digit is one: true and false have none).
      const end = numberEnd(text, i);
      if (underflows(text, i, end)) return { kind: 'underflow', number: text.slice(numberStart(text, i), end).slice(0, 40), at: placeOf(text, depth) };
      i = end - 1;
    }
  }
  return undefined;
}

const DOT = 0x2e; // .
const LOWER_E = 0x65; // e
const UPPER_E = 0x45; // E

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Where the number holding the character at `at` (a digit, `.`, `e` or a sign) begins. */
function numberStart(text: string, at: number): number {
  let start = at;
  while (start > 0 && (isDigit(text.charCodeAt(start - 1)) || text.charCodeAt(start - 1) === DOT || text.charCodeAt(start - 1) === 0x2d)) start--;
  return start;
}

/** Where the number holding the character at `at` ends (past its last character). */
function numberEnd(text: string, at: number): number {
  let end = at + 1;
  for (let c = text.charCodeAt(end); isDigit(c) || c === DOT || c === LOWER_E || c === UPPER_E || c === 0x2b || c === 0x2d; c = text.charCodeAt(++end));
  return end;
}

/**
 * Whether the number through `at`…`end` is not 0 as written but JSON.parse reads it as 0
 * (`1e-400`, or `0.` and 400 zeros and a 1): a `"ttl":1e-400` meant a time to keep, and
 * became "do not store".
 */
function underflows(text: string, at: number, end: number): boolean {
  const start = numberStart(text, at);
  if (Number(text.slice(start, end)) !== 0) return false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === LOWER_E || c === UPPER_E) return false;
    if (c > 0x30 && c <= 0x39) return true;
  }
  return false;
}

/** Whether the member name at quotes `start`…`end` was given before in the object at `depth`; records it. */
function repeatsName(text: string, depth: number, start: number, end: number): boolean {
  const from = namesFrom[depth]!;
  let set = nameSets[depth];
  if (set === undefined && namesEnd - from >= 3 * PAIRWISE_MEMBERS) {
    set = new Set();
    for (let j = from; j < namesEnd; j += 3) set.add(nameOf(text, names[j]!, names[j + 1]!));
    nameSets[depth] = set;
    setsMade = true;
  }
  if (set !== undefined) {
    const name = nameOf(text, start, end);
    if (set.has(name)) return true;
    set.add(name);
    return false;
  }
  const escaped = hasBackslash(text, start, end) ? 1 : 0;
  for (let j = from; j < namesEnd; j += 3) {
    if (sameName(text, names[j]!, names[j + 1]!, start, end, names[j + 2]! + escaped > 0)) return true;
  }
  names[namesEnd++] = start;
  names[namesEnd++] = end;
  names[namesEnd++] = escaped;
  return false;
}

/** Whether two names (each by the offsets of its quotes) are the same once decoded; `escaped`: either holds a backslash. */
function sameName(text: string, a: number, aEnd: number, b: number, bEnd: number, escaped: boolean): boolean {
  const length = aEnd - a;
  if (length === bEnd - b) {
    let k = 1;
    while (k < length && text.charCodeAt(a + k) === text.charCodeAt(b + k)) k++;
    if (k === length) return true;
  }
  return escaped && nameOf(text, a, aEnd) === nameOf(text, b, bEnd);
}

function hasBackslash(text: string, start: number, end: number): boolean {
  for (let k = start + 1; k < end; k++) if (text.charCodeAt(k) === BACKSLASH) return true;
  return false;
}

/** A name by the offsets of its quotes, decoded; as written when it is no valid JSON string. */
function nameOf(text: string, start: number, end: number): string {
  const raw = text.slice(start, end + 1);
  try {
    return JSON.parse(raw) as string;
  } catch {
    return raw.slice(1, -1);
  }
}

function isOpenMember(text: string, start: number, end: number): boolean {
  for (const word of OPEN_MEMBERS) {
    if (end - start - 1 === word.length && text.startsWith(word, start + 1)) return true;
  }
  return hasBackslash(text, start, end) && (OPEN_MEMBERS as readonly string[]).includes(nameOf(text, start, end));
}

/** The place of the object at `depth` under the body, as a refusal names it: `/messages/3/to`. */
function placeOf(text: string, depth: number): string {
  let at = '';
  for (let d = 1; d < depth; d++) at += `/${isObject[d] ? nameOf(text, nameStart[d]!, nameEnd[d]!) : itemIndex[d]}`;
  return at;
}
