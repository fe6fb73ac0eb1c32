/**
 * The SQLite store's journal rows: one row per committed write batch, its
 * body the batch's appends concatenated, each length-prefixed:
 *
 *   <stream length>:<stream><seq>,<expiresAt>,<floor>,<key length>:<key><json length>:<json>
 *
 * then the acknowledged SEQs the batch raised, one entry per stream:
 *
 *   a<stream length>:<stream><acked>,
 *
 * An entry whose JSON is the same as the previous entry's in the body (a
 * send to a list of people: one entry per person, one JSON) has `=` where
 * its `<json length>:<json>` would be (schema 5, sqlite-schema.ts): a send of
 * 1.6 KB to 10,000 people writes about 400 KB, not 16 MB.
 *
 * Lengths count UTF-16 code units, so a body is decoded with plain string
 * slices and the notification's JSON comes back exactly as it was given —
 * no escaping on the way in (writing it is a concatenation) and no parsing
 * on the way out. A missing key or JSON has an empty length (`:` alone).
 * `floor` is 0, or, when the append dropped older notifications for the
 * per-stream cap, the lowest SEQ the stream kept (so a restart drops them
 * again even when the ones that pushed them out have since expired).
 *
 * Measured against JSON.stringify of [stream, seq, …, json] tuples on 200-byte
 * notifications: about half the CPU to write and 10% fewer bytes.
 */

export interface JournalEntry {
  stream: string;
  seq: number;
  expiresAt: number;
  floor: number;
  /** Absent for an append without an idempotency key. */
  key: string | undefined;
  /**
   * Absent for a key written without its notification: a version 1 file's
   * key of a notification the cap had dropped, migrated. Loading keeps no
   * such key (a key stands for a retained notification: stream-index.ts).
   */
  json: string | undefined;
}

/** One entry of a journal body. `sameJson`: its JSON is the previous entry's in the body (written as `=`). */
export function encodeEntry(
  stream: string, seq: number, expiresAt: number, floor: number, key: string | undefined, json: string | undefined, sameJson = false,
): string {
  const head = `${stream.length}:${stream}${seq},${expiresAt},${floor},${key === undefined ? '' : key.length}:${key ?? ''}`;
  return sameJson ? `${head}=` : `${head}${json === undefined ? '' : json.length}:${json ?? ''}`;
}

/** An ack entry: `stream`'s acknowledged SEQ is now at least `acked`. */
export function encodeAck(stream: string, acked: number): string {
  return `a${stream.length}:${stream}${acked},`;
}

/** A body that cannot be decoded: the file was changed by something else than Herald. */
export class CorruptJournalError extends Error {}

/**
 * Calls `visit` with each append entry of a body and `visitAck` with each
 * ack entry, in order. The entry object is reused between calls. Strings are
 * slices of the body: copy one that is kept long (see detach()) so that it
 * does not keep the whole body alive.
 */
export function decodeBody(body: string, visit: (entry: JournalEntry) => void, visitAck: (stream: string, acked: number) => void): void {
  const entry: JournalEntry = { stream: '', seq: 0, expiresAt: 0, floor: 0, key: undefined, json: undefined };
  let i = 0;
  let previousJson: string | undefined;
  // A decimal number ending at `stop`; -1 when there are no digits (an absent part).
  const int = (stop: number): number => {
    let n = 0;
    const from = i;
    for (;;) {
      const c = body.charCodeAt(i);
      if (c === stop) break;
      if (!(c >= 48 && c <= 57)) throw new CorruptJournalError(`corrupt journal body at ${i}`);
      n = n * 10 + (c - 48);
      i++;
    }
    i++;
    return i - 1 === from ? -1 : n;
  };
  const text = (stop: number): string | undefined => {
    const n = int(stop);
    if (n < 0) return undefined;
    if (i + n > body.length) throw new CorruptJournalError(`corrupt journal body at ${i}`);
    const s = body.slice(i, i + n);
    i += n;
    return s;
  };
  while (i < body.length) {
    if (body.charCodeAt(i) === 97) {
      // a<stream length>:<stream><acked>,
      i++;
      const stream = text(58);
      const acked = int(44);
      if (stream === undefined || acked < 0) throw new CorruptJournalError(`corrupt journal body at ${i}`);
      visitAck(stream, acked);
      continue;
    }
    const stream = text(58);
    if (stream === undefined) throw new CorruptJournalError(`corrupt journal body at ${i}`);
    entry.stream = stream;
    entry.seq = int(44);
    entry.expiresAt = int(44);
    entry.floor = int(44);
    entry.key = text(58);
    if (body.charCodeAt(i) === 61) {
      // `=`: the previous entry's JSON (a list send).
      if (previousJson === undefined) throw new CorruptJournalError(`corrupt journal body at ${i}: no JSON before it to repeat`);
      i++;
      entry.json = previousJson;
    } else {
      entry.json = text(58);
      previousJson = entry.json;
    }
    if (entry.seq < 1 || entry.expiresAt < 0 || entry.floor < 0) throw new CorruptJournalError(`corrupt journal body at ${i}`);
    visit(entry);
  }
}

/**
 * A copy of a string that shares nothing with the string it was sliced from
 * (V8 keeps a slice's parent alive): concatenating flattens into a new string,
 * and the slice of that refers to the new one only.
 */
export function detach(s: string): string {
  return (` ${s}`).slice(1);
}

/**
 * The text of a journal body read as bytes, where a surrogate code point
 * (U+D800–U+DFFF) encoded alone in three bytes (WTF-8: what binding a JS
 * string with a lone surrogate wrote) comes back as that UTF-16 unit. An
 * idempotency key with a lone surrogate was taken until the API refused
 * them, and SQLite hands such TEXT back with each of the three bytes
 * replaced (U+FFFD): the lengths, which count UTF-16 units, no longer
 * matched, and the whole store was refused as corrupt. Well-formed UTF-8
 * decodes as SQLite decodes it; any other malformed byte becomes U+FFFD.
 */
export function decodeWtf8(bytes: Uint8Array): string {
  const units = new Uint16Array(bytes.length);
  let n = 0;
  const cont = (i: number): boolean => i < bytes.length && (bytes[i]! & 0xc0) === 0x80;
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i]!;
    if (b < 0x80) {
      units[n++] = b;
      i++;
    } else if (b >= 0xc2 && b < 0xe0 && cont(i + 1)) {
      units[n++] = ((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
      i += 2;
    } else if (b >= 0xe0 && b < 0xf0 && cont(i + 1) && cont(i + 2) && (b > 0xe0 || bytes[i + 1]! >= 0xa0)) {
      // Surrogates included: U+D800–U+DFFF (0xED 0xA0–0xBF …) is what plain UTF-8 refuses.
      units[n++] = ((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f);
      i += 3;
    } else if (b >= 0xf0 && b < 0xf5 && cont(i + 1) && cont(i + 2) && cont(i + 3)) {
      const cp = ((b & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f);
      if (cp < 0x10000 || cp > 0x10ffff) {
        units[n++] = 0xfffd;
        i++;
        continue;
      }
      units[n++] = 0xd800 + ((cp - 0x10000) >> 10);
      units[n++] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
      i += 4;
    } else {
      units[n++] = 0xfffd;
      i++;
    }
  }
  let out = '';
  for (let i = 0; i < n; i += 8192) out += String.fromCharCode(...units.subarray(i, Math.min(i + 8192, n)));
  return out;
}
