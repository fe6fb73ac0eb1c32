/**
 * The state of every stream, in memory: epoch, last SEQ, acknowledged SEQ,
 * the retained notifications in order and their idempotency keys. The memory
 * store is this and nothing else; the SQLite store keeps the same state and
 * writes a journal of it (sqlite-store.ts), so both answer reads alike.
 *
 * Writes go through a WriteBatch: appends and acks are staged against the
 * state (later writes of a batch see the earlier ones) and change it only in
 * apply(), so a durable store can commit the batch first and drop it if the
 * commit fails — reads never see a write that is not durable.
 */
import { hash } from 'node:crypto';
import type { AppendInput, AppendResult, MessageStatus, ReadResult, StoredMessage, StreamHead } from './message-store.js';
import { derivedEpoch, EPOCH_DERIVATION, messageId, parseMessageId, type EpochDerivation } from './message-id.js';
import { JsonArena } from './json-arena.js';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { HeraldError } from '../errors.js';

/** A retained notification. Its id is derived (stream, epoch, SEQ) when it is read. */
export interface Retained {
  readonly seq: number;
  readonly json: string;
  readonly expiresAt: number;
}

/** The message an idempotency key stands for, while it is retained and until its expiry. */
export interface KeyUse {
  seq: number;
  expiresAt: number;
}

/** StreamKeys' record of the order keys were set in slides down once this many of its keys at the front are spent, and they are half of it. */
const KEY_ORDER_SLIDE = 64;

/**
 * One stream's idempotency keys. A key stands for its notification while
 * the stream retains it: it goes when that expires and when the cap drops
 * it, so a stream keeps at most `maxPerStream` keys (docs/delivery.md,
 * Sending). Kept until their expiry instead, a backend that gives each send
 * its own key held a day's worth of them for a busy person: 1.6 million
 * keys, 220 MB of heap, for the 999 notifications retained, and every
 * pruning pass that found one due walked them all in one step (59 ms).
 *
 * Keys are set in SEQ order and the cap drops the oldest notifications, so
 * the keys it takes are at the front of `#order`: each is found there, not
 * by a walk of all of them (nor of the holes their deletion leaves at the
 * front of a Map: 7.5 µs a send at a cap of 10,000, measured alone).
 */
export class StreamKeys {
  readonly #uses = new Map<string, KeyUse>();
  /**
   * Each key as it was set and its SEQ, one after the other (one array,
   * begun at the size of one key), oldest first from #head on. An
   * entry whose key was set again since (its notification had expired)
   * names an older SEQ than the key's use: it is stale, and skipped.
   */
  #order: Array<string | number>;
  #head = 0;

  constructor(key: string, use: KeyUse) {
    this.#uses.set(key, use);
    this.#order = [key, use.seq];
  }

  get size(): number {
    return this.#uses.size;
  }

  get(key: string): KeyUse | undefined {
    return this.#uses.get(key);
  }

  /**
   * Keys come in SEQ order: a journal is in that order, and WriteBatch.append
   * keeps a batch's so. One that came out of order would stop forgetBelow()
   * short of the older keys behind it until its own turn; prune() lets go
   * of them all the same.
   */
  set(key: string, use: KeyUse): void {
    this.#uses.set(key, use);
    this.#order.push(key, use.seq);
  }

  /** Forgets the keys of the SEQs below `seq`: the notifications they stood for were dropped. */
  forgetBelow(seq: number): void {
    const order = this.#order;
    let i = this.#head;
    for (; i < order.length && (order[i + 1] as number) < seq; i += 2) {
      const key = order[i] as string;
      if (this.#uses.get(key)?.seq === order[i + 1]) this.#uses.delete(key);
    }
    if (i === order.length) {
      order.length = 0;
      i = 0;
    } else if (i >= KEY_ORDER_SLIDE * 2 && i * 2 >= order.length) {
      order.splice(0, i);
      i = 0;
    }
    this.#head = i;
  }

  /**
   * Removes the keys that expired at `now` and those of SEQs below
   * `firstSeq` (the stream's oldest retained): returns the earliest expiry
   * of the keys left, Infinity when none is.
   */
  prune(now: number, firstSeq: number): number {
    const order = this.#order;
    let next = Infinity;
    let kept = 0;
    for (let i = this.#head; i < order.length; i += 2) {
      const key = order[i] as string;
      const seq = order[i + 1] as number;
      const use = this.#uses.get(key);
      if (use?.seq !== seq) continue;
      if (use.expiresAt <= now || seq < firstSeq) {
        this.#uses.delete(key);
        continue;
      }
      order[kept++] = key;
      order[kept++] = seq;
      if (use.expiresAt < next) next = use.expiresAt;
    }
    order.length = kept;
    this.#head = 0;
    return next;
  }
}

/** A retained notification's row: its SEQ, its expiry and where its JSON is, one number each. */
const SEQ = 0;
const EXPIRES = 1;
const LOC = 2;
const ROW = 3;
/**
 * What the retained notifications of every stream of an index come to: the
 * sum of their JSON's lengths (UTF-16 code units: a byte each for ASCII
 * text, which JSON mostly is), kept as they are stored and let go. What the
 * store's cap (maxRetainedBytes) bounds and `/api/v1/status` shows.
 */
export interface RetainedTally {
  bytes: number;
}

/** A JSON text too long for the arena, and how many retained notifications hold it. */
interface LongText {
  readonly json: string;
  readonly digest: string;
  refs: number;
}

/**
 * The JSON texts too long for the arena (kept as strings) of every stream of
 * an index, and the memory they take: each text held once, however many
 * notifications hold it (the people of a list send, one after another; the
 * same text sent again), and counted once. A running total, not a count at
 * `counts()`: that count de-duplicated the strings in a Set, and V8 hashes a
 * string over 16,383 characters by its length alone, so 4,000 texts of
 * 20,000 characters took 28 s of one event-loop turn (at every
 * `/api/v1/status`, and every SQLite start). Here they are found by a digest
 * (SHA-1, about 20 µs for 20 KB), which only a text that is not the last one
 * put needs.
 */
export class LongTexts {
  /** Characters of the texts held (a byte each when ASCII). */
  heldBytes = 0;
  #last: LongText | undefined;
  readonly #byDigest = new Map<string, LongText>();

  put(json: string): LongText {
    const last = this.#last;
    if (last !== undefined && last.refs > 0 && last.json === json) {
      last.refs++;
      return last;
    }
    const digest = hash('sha1', json, 'base64');
    let text = this.#byDigest.get(digest);
    if (text !== undefined && text.json === json) {
      text.refs++;
    } else {
      text = { json, digest, refs: 1 };
      this.#byDigest.set(digest, text);
      this.heldBytes += json.length;
    }
    this.#last = text;
    return text;
  }

  release(text: LongText): void {
    if (--text.refs > 0) return;
    this.heldBytes -= text.json.length;
    if (this.#byDigest.get(text.digest) === text) this.#byDigest.delete(text.digest);
    if (this.#last === text) this.#last = undefined;
  }
}

/** Rows of a stream's first table (96 bytes: V8 keeps it outside its heap). */
const FIRST_ROWS = 4;
/** A table larger than this many rows shrinks when pruning leaves it a quarter full or less. */
const SHRINK_ABOVE = 64;
const NO_ROWS = new Float64Array(0);

/**
 * One stream's committed state.
 *
 * The retained notifications are rows of three numbers — SEQ, expiry and
 * where the JSON is — in one Float64Array, oldest first, and the JSON itself
 * is in the index's JsonArena: both outside the JavaScript heap. As three
 * number arrays, every growth of an array put a copy of it in the old
 * generation (most of what a store promoted: 13 MB in a W2 run against
 * 2.5 MB now), and the full collections that brought were 6% of the CPU per
 * notification (docs/bench-history.md, eighth round). The table doubles when full,
 * after first sliding its rows down over the dropped ones when that frees
 * half of it. JSON too long for the arena stays a string, in `#long`.
 */
export class StreamState {
  lastSeq = 0;
  acked = 0;
  /** Row of the oldest retained notification: dropping the oldest moves it, not every row. */
  #start = 0;
  /** Row after the newest. */
  #end = 0;
  #rows: Float64Array = NO_ROWS;
  #long: Map<number, LongText> | undefined = undefined;
  readonly #arena: JsonArena;
  readonly #tally: RetainedTally;
  readonly #longTexts: LongTexts;
  /** The idempotency keys of the retained notifications, while there is one. */
  keys: StreamKeys | undefined = undefined;
  /** Nothing retained here (notification or key) expires before this: pruning skips the stream until then. */
  nextExpiry = Infinity;
  /** Durable stores: the last SEQ written outside the journal (the rest is recovered from the journal). */
  savedSeq = 0;
  /** Durable stores: the acknowledged SEQ written outside the journal, likewise. */
  savedAcked = 0;
  /** What the WriteBatch being built changes here (a field, not a map: found with the stream). */
  staged: Pending | undefined = undefined;
  /**
   * lastSeq when the last pruning pass found the stream idle (nothing
   * retained, no key, nothing staged), -1 when it did not: the next pass
   * evicts it only if it is still idle and nothing was appended since, so a
   * busy stream whose notifications outlive a pass by little is not evicted
   * and created again at every pass.
   */
  idleSeq = -1;

  constructor(readonly epoch: string, arena: JsonArena, tally: RetainedTally = { bytes: 0 }, longTexts = new LongTexts()) {
    this.#arena = arena;
    this.#tally = tally;
    this.#longTexts = longTexts;
  }

  get retained(): number {
    return this.#end - this.#start;
  }

  /** Nothing retained, no idempotency key, nothing staged: only its last and acknowledged SEQs are left, which the index's floor can stand for. */
  get idle(): boolean {
    return this.#end === this.#start && this.keys === undefined && this.staged === undefined;
  }

  /** SEQ of the oldest retained notification, or lastSeq + 1 when none is. */
  get firstSeq(): number {
    return this.#start < this.#end ? this.#rows[this.#start * ROW + SEQ]! : this.lastSeq + 1;
  }

  /** SEQ of the i-th retained notification, oldest first. */
  seqAt(i: number): number {
    return this.#rows[(this.#start + i) * ROW + SEQ]!;
  }

  push(m: Retained): void {
    if (this.#end * ROW === this.#rows.length) this.#makeRoom();
    const at = this.#end++ * ROW;
    const rows = this.#rows;
    rows[at + SEQ] = m.seq;
    rows[at + EXPIRES] = m.expiresAt;
    this.#tally.bytes += m.json.length;
    if (JsonArena.holds(m.json)) {
      rows[at + LOC] = this.#arena.put(m.json);
    } else {
      rows[at + LOC] = -1;
      (this.#long ??= new Map()).set(m.seq, this.#longTexts.put(m.json));
    }
    if (m.expiresAt < this.nextExpiry) this.nextExpiry = m.expiresAt;
  }

  /** The table is full: slides the rows down over dropped ones when that frees half of it, or doubles it. */
  #makeRoom(): void {
    const live = this.#end - this.#start;
    const capacity = this.#rows.length / ROW;
    if (this.#start > 0 && live * 2 <= capacity) {
      this.#rows.copyWithin(0, this.#start * ROW, this.#end * ROW);
    } else {
      const bigger = new Float64Array(Math.max(FIRST_ROWS, capacity * 2) * ROW);
      bigger.set(this.#rows.subarray(this.#start * ROW, this.#end * ROW));
      this.#rows = bigger;
    }
    this.#start = 0;
    this.#end = live;
  }

  /** The JSON of the notification in row i. */
  #json(i: number): string {
    const loc = this.#rows[i * ROW + LOC]!;
    return loc >= 0 ? this.#arena.get(loc) : this.#long!.get(this.#rows[i * ROW + SEQ]!)!.json;
  }

  /** Lets go of the JSON of the notification in row i. */
  #release(i: number): void {
    const loc = this.#rows[i * ROW + LOC]!;
    if (loc >= 0) {
      this.#tally.bytes -= this.#arena.free(loc);
    } else {
      const seq = this.#rows[i * ROW + SEQ]!;
      const text = this.#long!.get(seq)!;
      this.#tally.bytes -= text.json.length;
      this.#longTexts.release(text);
      this.#long!.delete(seq);
    }
  }

  /** The length of the JSON of the i-th retained notification, oldest first (what it counts in the tally). */
  lengthAt(i: number): number {
    const row = this.#start + i;
    const loc = this.#rows[row * ROW + LOC]!;
    return loc >= 0 ? this.#arena.lengthAt(loc) : this.#long!.get(this.#rows[row * ROW + SEQ]!)!.json.length;
  }

  /** Drops the `n` oldest retained notifications, and their idempotency keys. */
  dropOldest(n: number): void {
    const end = Math.min(this.#start + n, this.#end);
    for (let i = this.#start; i < end; i++) this.#release(i);
    this.#start = end;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.keys) {
      this.keys.forgetBelow(this.firstSeq);
      if (this.keys.size === 0) this.keys = undefined;
    }
  }

  /** Moves the JSON of every notification in one of the `sparse` chunks of the arena to its active chunk. */
  relocate(sparse: ReadonlySet<number>): void {
    const rows = this.#rows;
    for (let at = this.#start * ROW + LOC; at < this.#end * ROW; at += ROW) {
      const loc = rows[at]!;
      if (loc >= 0 && sparse.has(JsonArena.chunkOf(loc))) rows[at] = this.#arena.move(loc);
    }
  }

  /** Drops the retained notifications with a SEQ below `seq`, and their idempotency keys. */
  dropBelow(seq: number): void {
    const i = this.#firstAbove(seq - 1);
    if (i > this.#start) this.dropOldest(i - this.#start);
  }

  /**
   * Keeps the idempotency key of notification `use.seq`, which is retained
   * or is pushed next. A key whose notification the stream no longer
   * retains is not kept: a version 1 file's key of a notification the cap
   * had dropped, migrated as a journal entry without JSON (sqlite-schema.ts).
   */
  setKey(key: string, use: KeyUse): void {
    if (this.#end > this.#start && use.seq < this.firstSeq) return;
    if (this.keys) this.keys.set(key, use);
    else this.keys = new StreamKeys(key, use);
    if (use.expiresAt < this.nextExpiry) this.nextExpiry = use.expiresAt;
  }

  /** Row of the first retained notification with a SEQ above `seq` (binary search: SEQs increase). */
  #firstAbove(seq: number): number {
    const rows = this.#rows;
    let lo = this.#start;
    let hi = this.#end;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rows[mid * ROW + SEQ]! <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Unexpired notifications after `afterSeq`, at most `limit`, with their ids. */
  read(stream: string, afterSeq: number, limit: number, now: number): StoredMessage[] {
    const out: StoredMessage[] = [];
    const rows = this.#rows;
    for (let i = this.#firstAbove(afterSeq); i < this.#end && out.length < limit; i++) {
      const seq = rows[i * ROW + SEQ]!;
      const expiresAt = rows[i * ROW + EXPIRES]!;
      if (expiresAt > now) out.push({ id: messageId(this.epoch, seq, stream), seq, json: this.#json(i), expiresAt });
    }
    return out;
  }

  /** The retained notification `seq`, or undefined when it is not retained. */
  find(seq: number): Retained | undefined {
    const i = this.#firstAbove(seq - 1);
    return i < this.#end && this.#rows[i * ROW + SEQ] === seq
      ? { seq, json: this.#json(i), expiresAt: this.#rows[i * ROW + EXPIRES]! }
      : undefined;
  }

  /** Removes expired notifications and keys; returns how many notifications went. */
  prune(now: number): number {
    if (this.nextExpiry > now) return 0;
    let next = Infinity;
    const rows = this.#rows;
    // The unexpired rows slide down to the front of the table, in order.
    let kept = 0;
    for (let i = this.#start; i < this.#end; i++) {
      const expiresAt = rows[i * ROW + EXPIRES]!;
      if (expiresAt > now) {
        if (kept !== i) rows.copyWithin(kept * ROW, i * ROW, i * ROW + ROW);
        kept++;
        if (expiresAt < next) next = expiresAt;
      } else {
        this.#release(i);
      }
    }
    const removed = this.retained - kept;
    this.#start = 0;
    this.#end = kept;
    const capacity = rows.length / ROW;
    if (capacity > SHRINK_ABOVE && kept * 4 <= capacity) {
      this.#rows = kept === 0 ? NO_ROWS : rows.slice(0, Math.max(FIRST_ROWS, kept * 2) * ROW);
    }
    if (this.#long?.size === 0) this.#long = undefined;
    if (this.keys) {
      // As many keys as notifications at most: they expire together.
      const keyExpiry = this.keys.prune(now, this.firstSeq);
      if (this.keys.size === 0) this.keys = undefined;
      else if (keyExpiry < next) next = keyExpiry;
    }
    this.nextExpiry = next;
    return removed;
  }
}

/** In-memory passes of pruning look at about this many streams and notifications between turns of the loop. */
export const PRUNE_SLICE = 5000;

/**
 * Told which idle streams a pruning pass evicts and the SEQ floor that will
 * cover them, before they leave the index; a durable store records both
 * (deletes their rows, saves the floor) and returns false when it could not,
 * and they then stay.
 */
export type EvictHook = (idle: ReadonlyArray<readonly [string, StreamState]>, floor: number) => boolean;

/** Every stream's state; see the file comment. */
export class StreamIndex {
  readonly streams = new Map<string, StreamState>();
  /** The retained notifications' JSON, of every stream. */
  readonly arena = new JsonArena();
  /** The JSON too long for the arena, shared by every stream as the arena is. */
  readonly longTexts = new LongTexts();
  /** What the retained notifications' JSON comes to (RetainedTally), kept up to date by every stream. */
  readonly tally: RetainedTally = { bytes: 0 };
  /**
   * The most the tally may reach (maxRetainedBytes): an append that would
   * take it past this is refused (WriteBatch.append); 0 = no cap. A store
   * that loads more than this (the cap lowered since) keeps it, and refuses
   * appends until enough has gone.
   */
  maxRetainedBytes = 0;
  /**
   * The highest last SEQ of any stream ever evicted (0 while none was). A
   * pruning pass evicts idle streams (else every person ever sent to kept
   * their state for good: 443 bytes each), and a stream that has no state
   * starts its SEQs above this floor, under the same derived EPOCH: a SEQ is
   * never assigned twice in an EPOCH, and a tab holding a cursor from before
   * the eviction never skips what is appended after it (docs/delivery.md).
   */
  seqFloor = 0;

  /** Where dropExpired goes on from: a Map's iterator sees the streams added and removed since. */
  #sweep: Iterator<StreamState> | undefined = undefined;

  /**
   * @param maxPerStream notifications kept per stream; beyond it the oldest are dropped.
   * @param storeEpoch the store's own epoch, from which never-written streams derive theirs.
   * @param derivation how they derive it: the file's (message-id.ts), the current one by default.
   */
  constructor(readonly maxPerStream: number, public storeEpoch: string, readonly derivation: EpochDerivation = EPOCH_DERIVATION) {}

  get(stream: string): StreamState | undefined {
    return this.streams.get(stream);
  }

  /** Streams, notifications retained, what their JSON comes to (the tally) and its cap, the memory it takes (the arena's chunks and the strings too long for it), and idempotency keys: one pass over the streams. */
  counts(): { streams: number; retained: number; retainedBytes: number; maxRetainedBytes: number; retainedMemoryBytes: number; keys: number } {
    let retained = 0;
    let keys = 0;
    for (const s of this.streams.values()) {
      retained += s.retained;
      keys += s.keys?.size ?? 0;
    }
    return {
      streams: this.streams.size, retained, retainedBytes: this.tally.bytes, maxRetainedBytes: this.maxRetainedBytes,
      retainedMemoryBytes: this.arena.stats.heldBytes + this.longTexts.heldBytes, keys,
    };
  }

  /** The stream's state, created (with the given epoch, its SEQs starting above the floor) when it has none. */
  create(stream: string, epoch: string): StreamState {
    let s = this.streams.get(stream);
    if (!s) {
      this.streams.set(stream, (s = new StreamState(epoch, this.arena, this.tally, this.longTexts)));
      s.lastSeq = s.acked = this.seqFloor;
    }
    return s;
  }

  /** A stream that was never written has an epoch derived from the store's, so reading a head allocates nothing. */
  newEpoch(stream: string): string {
    return derivedEpoch(this.storeEpoch, stream, this.derivation);
  }

  head(stream: string): StreamHead {
    const s = this.streams.get(stream);
    // What the stream would be created with: a cursor from before an eviction is at or below the floor.
    if (!s) return { epoch: this.newEpoch(stream), lastSeq: this.seqFloor, firstSeq: this.seqFloor + 1, ackedSeq: this.seqFloor };
    return { epoch: s.epoch, lastSeq: s.lastSeq, firstSeq: s.firstSeq, ackedSeq: s.acked };
  }

  readAfter(stream: string, afterSeq: number, limit: number, now: number): ReadResult {
    const head = this.head(stream);
    const s = this.streams.get(stream);
    return { ...head, messages: s ? s.read(stream, afterSeq, limit, now) : [] };
  }

  status(id: string, now: number): MessageStatus | undefined {
    // The id names its stream, epoch and SEQ: no index of ids to keep.
    const where = parseMessageId(id);
    if (!where) return undefined;
    const s = this.streams.get(where.stream);
    // Another epoch: that history is gone, and its SEQ may name a newer message.
    if (!s || s.epoch !== where.epoch) return undefined;
    const m = s.find(where.seq);
    if (!m) return undefined;
    return {
      id, stream: where.stream, seq: m.seq, epoch: s.epoch, expiresAt: m.expiresAt,
      acknowledged: s.acked >= m.seq, expired: m.expiresAt <= now,
    };
  }

  /**
   * Removes expired notifications and keys, a slice at a time: yields the
   * number removed after about `budget` streams and notifications looked at,
   * so that a caller can give the event loop a turn between slices, and
   * returns the number removed by the last slice. A stream found idle at two
   * passes in a row, with nothing appended between them, is evicted at the
   * end of the slice that found it (`evict` told first): each slice's
   * evictions happen in the same turn of the loop as its checks, so no write
   * can come between.
   */
  *pruneSlices(now: number, budget: number, evict?: EvictHook): Generator<number, number, void> {
    let removed = 0;
    let work = 0;
    let idle: Array<readonly [string, StreamState]> = [];
    for (const entry of this.streams) {
      if (work >= budget) {
        if (idle.length > 0) this.#evict(idle, evict);
        idle = [];
        yield removed;
        removed = 0;
        work = 0;
      }
      work++;
      const s = entry[1];
      if (s.nextExpiry <= now) {
        work += s.retained + (s.keys?.size ?? 0);
        removed += s.prune(now);
      }
      if (!s.idle) s.idleSeq = -1;
      else if (s.idleSeq === s.lastSeq) {
        // Only a stream that would come back under the same EPOCH: one an older Herald
        // rotated to a random EPOCH (schema 3) came back under the derived one, unannounced,
        // and its tabs' acks, sent with the EPOCH they were told at connect, were dropped.
        if (s.epoch === this.newEpoch(entry[0])) idle.push(entry);
      } else s.idleSeq = s.lastSeq;
    }
    if (idle.length > 0) this.#evict(idle, evict);
    // Then, when the arena's chunks hold much more than is live, empty its
    // sparse chunks: what lives in them moves to the active chunk (new
    // notifications never go to a sparse one, so the pass may pause between slices).
    const sparse = this.arena.sparseChunks();
    if (sparse) {
      for (const s of this.streams.values()) {
        if (work >= budget) {
          yield removed;
          removed = 0;
          work = 0;
        }
        work += 1 + s.retained;
        s.relocate(sparse);
      }
    }
    return removed;
  }

  /** Removes idle streams (once `evict` agrees), raising the floor to the highest last SEQ among them. */
  #evict(idle: ReadonlyArray<readonly [string, StreamState]>, evict: EvictHook | undefined): void {
    let floor = this.seqFloor;
    for (const [, s] of idle) if (s.lastSeq > floor) floor = s.lastSeq;
    if (evict && !evict(idle, floor)) return;
    this.seqFloor = floor;
    for (const [stream] of idle) this.streams.delete(stream);
  }

  /**
   * For an append the cap refused (maxRetainedBytes): removes expired
   * notifications and keys, about `budget` streams and notifications looked
   * at, going on from where the last call stopped (round the streams, each
   * at most once a call). Otherwise what expired still counted until a
   * pruning pass (every pruneIntervalMs, never at 0) and a store that had
   * filled refused stored sends that long. Only in the refusal's path, so an
   * append under the cap costs nothing more; bounded, so a refusal with
   * nothing expired costs one slice, not a walk of every stream. Evicts no
   * stream and moves nothing in the arena: the pruning pass does that. Call
   * it with no batch staged: a staged stream is skipped (its batch counts
   * positions in its rows). Returns the bytes it freed.
   */
  dropExpired(now: number, budget: number = PRUNE_SLICE): number {
    const before = this.tally.bytes;
    let work = 0;
    for (let seen = 0; seen < this.streams.size && work < budget; seen++) {
      let next = (this.#sweep ??= this.streams.values()).next();
      if (next.done) next = (this.#sweep = this.streams.values()).next();
      if (next.done) break;
      const s = next.value;
      work++;
      if (s.nextExpiry <= now && s.staged === undefined) {
        work += s.retained + (s.keys?.size ?? 0);
        s.prune(now);
      }
    }
    return before - this.tally.bytes;
  }

  /**
   * Before appends are staged at `now`, `adding` of them in all (to any
   * stream), with no batch staged: lets `stream` go of what it retains that
   * has expired (StreamState.prune), when the cap may drop from it for them.
   * Counted, an expired notification took the place of one within its TTL,
   * which the cap dropped, its idempotency key with it, until a pruning pass
   * (never, with pruning off), while the SQLite store, which loads nothing
   * expired, kept it after a restart. Before the batch, as dropExpired, so
   * that WriteBatch.rollback stays exact: a write it takes back may have let
   * go of what had expired, which is never read again. One comparison when
   * nothing has expired (nextExpiry).
   */
  letExpiredGo(stream: string, now: number, adding: number): void {
    const s = this.streams.get(stream);
    if (s !== undefined && s.nextExpiry <= now && s.retained + adding > this.maxPerStream && s.staged === undefined) s.prune(now);
  }

  /** Removes every expired notification and key at once; returns how many notifications went. */
  prune(now: number): number {
    return this.pruneSlices(now, Infinity).next().value;
  }

  /**
   * pruneSlices run to the end, giving the event loop a turn between slices
   * (a large backlog is never one long stall); stops early once `stopped()`
   * says so (the store closed). Returns how many notifications went.
   */
  async pruneYielding(now: number, budget: number, stopped: () => boolean, evict?: EvictHook): Promise<number> {
    const slices = this.pruneSlices(now, budget, evict);
    let removed = 0;
    for (;;) {
      const slice = slices.next();
      removed += slice.value;
      if (slice.done || stopped()) return removed;
      await yieldToLoop();
    }
  }
}

/** What a batch will change in one stream. */
export interface Pending {
  readonly stream: string;
  readonly state: StreamState | undefined;
  readonly epoch: string;
  lastSeq: number;
  acked: number;
  ackChanged: boolean;
  /** Retained after the batch: the state's plus the added minus the dropped. */
  retained: number;
  /** Dropped from the head of [state's retained…, added…]. */
  dropped: number;
  added: Retained[];
  keys: Map<string, KeyUse> | undefined;
  /** The WriteBatch mark it was created or saved at: one saved at an older mark is saved again when the write after it changes it. */
  mark: number;
  /** What it was at that mark, for rollback(). */
  atMark: PendingAtMark | undefined;
}

/** What a Pending was at a WriteBatch's mark: what rollback() restores. */
interface PendingAtMark {
  lastSeq: number;
  retained: number;
  dropped: number;
  added: number;
  hadKeys: boolean;
  /** Keys staged before the mark that an append since staged again (their earlier one had expired or was dropped), as they were. */
  replaced: Array<readonly [string, KeyUse]> | undefined;
}

/**
 * Appends and acks staged against a StreamIndex, in call order, applied in
 * one step (or discarded). Reusable: apply() and discard() empty it.
 */
export class WriteBatch {
  readonly #index: StreamIndex;
  /** In the order first touched; those of existing streams also hang on their state, new ones are in #fresh. */
  readonly #pending: Pending[] = [];
  readonly #fresh = new Map<string, Pending>();
  /**
   * After an append that dropped notifications for the cap: the lowest SEQ the
   * stream still retains (every lower one is gone); 0 after any other append.
   */
  lastFloor = 0;
  /** What the staged appends add to the index's tally, less what the cap drops for them. */
  #bytes = 0;
  /** Counts the marks: a Pending carries the one it was created or saved at. */
  #mark = 0;
  /** #pending's length at the last mark(); -1 when there is none to roll back to. */
  #pendingAtMark = -1;
  #bytesAtMark = 0;
  /** The Pendings of before the mark that appends changed since: each holds what it was (atMark). */
  readonly #saved: Pending[] = [];

  constructor(index: StreamIndex) {
    this.#index = index;
  }

  #pendingFor(stream: string, state = this.#index.get(stream)): Pending {
    let p = state ? state.staged : this.#fresh.get(stream);
    if (p) return p;
    p = {
      stream, state, epoch: state?.epoch ?? this.#index.newEpoch(stream),
      lastSeq: state?.lastSeq ?? this.#index.seqFloor, acked: state?.acked ?? this.#index.seqFloor, ackChanged: false,
      retained: state?.retained ?? 0, dropped: 0, added: [], keys: undefined, mark: this.#mark, atMark: undefined,
    };
    if (state) state.staged = p;
    else this.#fresh.set(stream, p);
    this.#pending.push(p);
    return p;
  }

  /**
   * Stages an append: assigns its SEQ, checks its idempotency key, applies
   * the cap. A key is a duplicate while its notification is retained: not
   * once it expired, nor once the cap dropped it (an earlier append of the
   * batch may have), as when the appends come one by one.
   */
  append(input: AppendInput, now: number): AppendResult {
    const p = this.#pendingFor(input.stream);
    const key = input.idempotencyKey;
    this.lastFloor = 0;
    if (this.#pendingAtMark >= 0 && p.mark !== this.#mark) this.#save(p);
    if (key !== undefined) {
      const staged = p.keys?.get(key);
      const seen = staged ?? p.state?.keys?.get(key);
      if (seen && seen.expiresAt > now && seen.seq >= this.#firstKept(p)) {
        return { id: messageId(p.epoch, seen.seq, p.stream), seq: seen.seq, epoch: p.epoch, duplicate: true, dropped: 0 };
      }
      // Set again below, after the keys staged since: p.keys stays in SEQ order, as StreamKeys wants them.
      if (staged) {
        p.keys!.delete(key);
        // One staged before the mark (a Pending the write was first to touch has no atMark) is put back by rollback().
        if (this.#pendingAtMark >= 0 && p.atMark && staged.seq <= p.atMark.lastSeq) (p.atMark.replaced ??= []).push([key, staged]);
      }
    }
    const seq = ++p.lastSeq;
    p.added.push({ seq, json: input.json, expiresAt: input.expiresAt });
    if (key !== undefined) (p.keys ??= new Map()).set(key, { seq, expiresAt: input.expiresAt });
    let dropped = 0;
    if (++p.retained > this.#index.maxPerStream) {
      dropped = p.retained - this.#index.maxPerStream;
      p.retained -= dropped;
      p.dropped += dropped;
      this.lastFloor = this.#seqAt(p, p.dropped);
    }
    const cap = this.#index.maxRetainedBytes;
    if (cap > 0) {
      // What the store would retain with this append: what it does, what the batch staged
      // before it, and this one, less what the stream's cap drops for it. After a throw the
      // caller takes back its write (rollback: both stores' flushes), this append with it.
      let change = input.json.length;
      for (let i = p.dropped - dropped; i < p.dropped; i++) change -= this.#lengthAt(p, i);
      const before = this.#index.tally.bytes + this.#bytes;
      if (before + change > cap) throw storeFull(before, input.json.length, cap);
      this.#bytes += change;
    }
    return { id: messageId(p.epoch, seq, p.stream), seq, epoch: p.epoch, duplicate: false, dropped };
  }

  /**
   * Marks where the next write (one caller's appends: all of them or none)
   * starts, so that rollback() can take it back when the cap refuses one of
   * its appends (maxRetainedBytes): the stores then commit the rest of the
   * batch without it instead of dropping the batch (docs/delivery.md,
   * *Stores*, its Batched writes). Acks are not taken back: stage them with no mark set.
   */
  mark(): void {
    this.#mark++;
    this.#pendingAtMark = this.#pending.length;
    this.#bytesAtMark = this.#bytes;
    this.#saved.length = 0;
  }

  /**
   * Takes back every append staged since mark(), before anything else is
   * staged: the writes staged after see the batch exactly as if that write
   * had never been (SEQs, keys, the tally, what the streams' cap drops).
   */
  rollback(): void {
    if (this.#pendingAtMark < 0) throw new Error('WriteBatch.rollback without a mark');
    for (const p of this.#saved) {
      const at = p.atMark!;
      p.lastSeq = at.lastSeq;
      p.retained = at.retained;
      p.dropped = at.dropped;
      p.added.length = at.added;
      if (!at.hadKeys) p.keys = undefined;
      else if (p.keys) {
        // A key staged since the mark has a SEQ past the mark's last.
        for (const [key, use] of p.keys) if (use.seq > at.lastSeq) p.keys.delete(key);
        if (at.replaced) {
          for (const [key, use] of at.replaced) p.keys.set(key, use);
          p.keys = new Map([...p.keys].sort((a, b) => a[1].seq - b[1].seq));
        }
      }
    }
    // Those the write was the first to touch.
    while (this.#pending.length > this.#pendingAtMark) {
      const p = this.#pending.pop()!;
      if (p.state) p.state.staged = undefined;
      else this.#fresh.delete(p.stream);
    }
    this.#bytes = this.#bytesAtMark;
    this.lastFloor = 0;
    this.#unmark();
  }

  #save(p: Pending): void {
    p.mark = this.#mark;
    const at = (p.atMark ??= { lastSeq: 0, retained: 0, dropped: 0, added: 0, hadKeys: false, replaced: undefined });
    at.lastSeq = p.lastSeq;
    at.retained = p.retained;
    at.dropped = p.dropped;
    at.added = p.added.length;
    at.hadKeys = p.keys !== undefined;
    at.replaced = undefined;
    this.#saved.push(p);
  }

  #unmark(): void {
    this.#pendingAtMark = -1;
    this.#saved.length = 0;
  }

  /** The JSON length of the notification at position i of [state's retained…, added…]. */
  #lengthAt(p: Pending, i: number): number {
    const committed = p.state?.retained ?? 0;
    return i < committed ? p.state!.lengthAt(i) : p.added[i - committed]!.json.length;
  }

  /** The oldest SEQ the stream keeps after the appends staged so far (lastSeq + 1 when it keeps none). */
  #firstKept(p: Pending): number {
    return p.retained > 0 ? this.#seqAt(p, p.dropped) : p.lastSeq + 1;
  }

  /** The SEQ at position i of [state's retained…, added…]. */
  #seqAt(p: Pending, i: number): number {
    const committed = p.state?.retained ?? 0;
    return i < committed ? p.state!.seqAt(i) : p.added[i - committed]!.seq;
  }

  /** Stages a cumulative ack (the maximum is kept, never past the last SEQ); a stream never written is left alone. */
  ack(stream: string, seq: number): void {
    const state = this.#index.get(stream);
    if (!state && !this.#fresh.has(stream)) return;
    const p = this.#pendingFor(stream, state);
    if (seq > p.acked) {
      const acked = Math.min(seq, p.lastSeq);
      if (acked > p.acked) {
        p.acked = acked;
        p.ackChanged = true;
      }
    }
  }

  /** Streams this batch writes first (they have no state yet), with their epochs. */
  *created(): Generator<{ stream: string; epoch: string }> {
    for (const p of this.#pending) if (!p.state && p.added.length > 0) yield { stream: p.stream, epoch: p.epoch };
  }

  /** Streams whose acknowledged SEQ this batch raises, with the new value. */
  *acks(): Generator<{ stream: string; acked: number }> {
    for (const p of this.#pending) if (p.ackChanged) yield { stream: p.stream, acked: p.acked };
  }

  /** Makes the staged writes the index's state; `touched` is told of each stream changed. */
  apply(touched?: (stream: string, state: StreamState) => void): void {
    for (let i = 0; i < this.#pending.length; i++) {
      const p = this.#pending[i]!;
      if (!p.state && p.added.length === 0) continue;
      const s = p.state ?? this.#index.create(p.stream, p.epoch);
      s.lastSeq = p.lastSeq;
      s.acked = p.acked;
      for (let j = 0; j < p.added.length; j++) s.push(p.added[j]!);
      // The keys before the drop, which takes those of the notifications it drops, the batch's own included.
      if (p.keys) for (const [k, use] of p.keys) s.setKey(k, use);
      if (p.dropped > 0) s.dropOldest(p.dropped);
      touched?.(p.stream, s);
    }
    this.discard();
  }

  discard(): void {
    this.#bytes = 0;
    this.#unmark();
    for (const p of this.#pending) if (p.state) p.state.staged = undefined;
    this.#pending.length = 0;
    if (this.#fresh.size > 0) this.#fresh.clear();
  }
}

/** What a refusal for the store's cap (maxRetainedBytes) carries in its `details`. */
export const STORE_FULL = 'store full';

/**
 * The refusal of an append past maxRetainedBytes: 503, as for a store that
 * cannot write (a client may try again once older notifications have gone;
 * the stores refuse only once they let go of what had expired: dropExpired),
 * naming the option and the figures. Live-only sends store nothing and still go.
 */
function storeFull(retained: number, adding: number, cap: number): HeraldError {
  return new HeraldError(
    'HERALD_ERR_UNAVAILABLE',
    `the store is full: it retains ${retained} bytes of notifications and this one's ${adding} would take it past maxRetainedBytes (${cap}); `
    + 'stored sends are refused until enough of those retained expire or are dropped (maxPerStream), live-only sends (ttl 0) still go',
    { reason: STORE_FULL, option: 'maxRetainedBytes', retainedBytes: retained, maxRetainedBytes: cap },
  );
}

/** Whether `e` is the refusal of an append past maxRetainedBytes (not a failed write). */
export function isStoreFull(e: unknown): boolean {
  return e instanceof HeraldError && (e.details as { reason?: unknown } | undefined)?.reason === STORE_FULL;
}
