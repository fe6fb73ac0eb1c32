import { createHash, randomBytes } from 'node:crypto';

/**
 * Epochs and message ids shared by every store, so an id handed out by one
 * store means the same thing to the status look-up of another.
 */

/** A fresh epoch: 48 random bits, base64url (never contains '.'). */
export function newEpoch(): string {
  return randomBytes(6).toString('base64url');
}

/**
 * How a never-written stream's epoch is derived from the store's: `mix48`
 * (derivedEpoch, since commit ea609f1), or `sha256`, the first 8 base64url
 * characters of SHA-256("storeEpoch \0 stream"), which Heralds used before
 * it (every schema 1 file, and schema 2 files written then). A file keeps the
 * derivation its streams were written with until its store epoch changes
 * (sqlite-schema.ts): derived again the other way, every stream's EPOCH
 * changed at the upgrade (a RESET for tabs that had lost nothing), and a
 * stream whose stored EPOCH was no longer the derived one was never evicted.
 */
export type EpochDerivation = 'mix48' | 'sha256';

/** The derivation of a new store epoch. */
export const EPOCH_DERIVATION: EpochDerivation = 'mix48';

/**
 * The epoch of a stream that was never written: derived from the store's own
 * epoch, so reading a head needs no write (a connect costs no INSERT), yet
 * every stream's epoch differs (a cursor of one person's stream never passes
 * for another's). The stream's first append records it.
 */
export function derivedEpoch(storeEpoch: string, stream: string, derivation: EpochDerivation = EPOCH_DERIVATION): string {
  if (derivation === 'sha256') return createHash('sha256').update(storeEpoch).update('\0').update(stream).digest('base64url').slice(0, 8);
  // Two 32-bit multiplicative hashes (FNV-1a and a Murmur-style mix) of
  // "storeEpoch \0 stream", 48 bits of them as 8 base64url characters. Not a
  // secret, only a name: a SHA-256 here cost two digests per connect. The
  // text is read in its parts and the name made in one string: joining the
  // parts and prepending a character at a time made about 300 bytes of
  // strings per connect (docs/bench-history.md, forty-fifth round).
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  const sep = storeEpoch.length;
  const length = sep + 1 + stream.length;
  for (let i = 0; i < length; i++) {
    const c = i < sep ? storeEpoch.charCodeAt(i) : i === sep ? 0 : stream.charCodeAt(i - sep - 1);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  b ^= b >>> 13;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  // 48 bits, most significant first: the top 32 of `a`, then 16 of `b`, as two halves of 24.
  const v = (a >>> 0) * 65536 + (b & 0xffff);
  const hi = Math.floor(v / 0x1000000);
  const lo = v % 0x1000000;
  return String.fromCharCode(
    BASE64URL.charCodeAt(hi >>> 18), BASE64URL.charCodeAt((hi >>> 12) & 63), BASE64URL.charCodeAt((hi >>> 6) & 63), BASE64URL.charCodeAt(hi & 63),
    BASE64URL.charCodeAt(lo >>> 18), BASE64URL.charCodeAt((lo >>> 12) & 63), BASE64URL.charCodeAt((lo >>> 6) & 63), BASE64URL.charCodeAt(lo & 63),
  );
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * A message id names its epoch, SEQ and stream: `EPOCH.SEQ.STREAM`
 * (`kq3Xw1Zp.42.admin:7`). A store can answer a status look-up from the id
 * alone, without an index on ids, and an id from a lost history (another
 * epoch) is recognised as unknown rather than confused with a newer message
 * that reused its SEQ.
 */
export function messageId(epoch: string, seq: number, stream: string): string {
  return `${epoch}.${seq}.${stream}`;
}

export interface ParsedMessageId {
  epoch: string;
  seq: number;
  stream: string;
}

/** The parts of a message id, or undefined when it is not one. */
export function parseMessageId(id: string): ParsedMessageId | undefined {
  const a = id.indexOf('.');
  if (a <= 0) return undefined;
  const b = id.indexOf('.', a + 1);
  if (b < 0 || b === id.length - 1) return undefined;
  const seqText = id.slice(a + 1, b);
  if (!/^[1-9][0-9]{0,15}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq)) return undefined;
  return { epoch: id.slice(0, a), seq, stream: id.slice(b + 1) };
}
