import type {
  AppendInput, AppendResult, MessageStatus, MessageStore, MessageStoreLimits, ReadResult, StoredMessage, StreamHead,
} from './message-store.js';
import { derivedEpoch, messageId, newEpoch, parseMessageId } from './message-id.js';
import { HeraldError } from '../errors.js';
import { PruneTimer } from './prune-timer.js';

export { newEpoch } from './message-id.js';

interface Stream {
  epoch: string;
  lastSeq: number;
  acked: number;
  messages: StoredMessage[];
  keys: Map<string, { id: string; seq: number; expiresAt: number }>;
}

export interface MemoryStoreOptions extends MessageStoreLimits {
  /** Background pruning of expired messages every this many ms; 0 or absent = only when prune() is called. */
  pruneIntervalMs?: number;
  /** Told how each background pruning pass went. */
  onPrune?: (removed: number, error?: unknown) => void;
}

/**
 * Keeps everything in this process's memory: for tests and for deployments
 * that accept losing queued notifications on restart (every epoch changes).
 */
export class MemoryStore implements MessageStore {
  readonly #streams = new Map<string, Stream>();
  readonly #limits: MessageStoreLimits;
  readonly #pruner: PruneTimer;
  #closed = false;

  constructor(options: MemoryStoreOptions) {
    this.#limits = { maxPerStream: options.maxPerStream };
    this.#pruner = new PruneTimer((now) => this.prune(now), options.pruneIntervalMs ?? 0, options.onPrune);
  }

  /** Streams that were never written to take their epoch from this one, so reading a head allocates no stream. */
  readonly #newStreamEpoch = newEpoch();

  #stream(key: string, create = false): Stream {
    let s = this.#streams.get(key);
    if (!s) {
      s = { epoch: derivedEpoch(this.#newStreamEpoch, key), lastSeq: 0, acked: 0, messages: [], keys: new Map() };
      if (create) this.#streams.set(key, s);
    }
    return s;
  }

  #head(s: Stream): StreamHead {
    return { epoch: s.epoch, lastSeq: s.lastSeq, firstSeq: s.messages[0]?.seq ?? s.lastSeq + 1, ackedSeq: s.acked };
  }

  async append(input: AppendInput, now: number): Promise<AppendResult> {
    if (this.#closed) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed');
    const s = this.#stream(input.stream, true);
    if (input.idempotencyKey !== undefined) {
      const seen = s.keys.get(input.idempotencyKey);
      if (seen && seen.expiresAt > now) return { id: seen.id, seq: seen.seq, epoch: s.epoch, duplicate: true, dropped: 0 };
    }
    const seq = ++s.lastSeq;
    const id = messageId(s.epoch, seq, input.stream);
    s.messages.push({ id, seq, json: input.json, expiresAt: input.expiresAt });
    if (input.idempotencyKey !== undefined) s.keys.set(input.idempotencyKey, { id, seq, expiresAt: input.expiresAt });
    let dropped = 0;
    while (s.messages.length > this.#limits.maxPerStream) {
      s.messages.shift();
      dropped++;
    }
    return { id, seq, epoch: s.epoch, duplicate: false, dropped };
  }

  async head(stream: string): Promise<StreamHead> {
    return this.#head(this.#stream(stream));
  }

  async readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> {
    const s = this.#stream(stream);
    const messages: StoredMessage[] = [];
    // Messages are ordered by seq: binary search would do, but streams are capped and small.
    for (const m of s.messages) {
      if (messages.length >= limit) break;
      if (m.seq > afterSeq && m.expiresAt > now) messages.push(m);
    }
    return { ...this.#head(s), messages };
  }

  async ack(stream: string, seq: number): Promise<void> {
    const s = this.#streams.get(stream);
    if (s && seq > s.acked) s.acked = Math.min(seq, s.lastSeq);
  }

  async status(id: string, now: number): Promise<MessageStatus | undefined> {
    // The id names its stream, epoch and SEQ: no index of ids to keep.
    const where = parseMessageId(id);
    if (!where) return undefined;
    const s = this.#streams.get(where.stream);
    if (!s || s.epoch !== where.epoch) return undefined;
    const m = s.messages.find((x) => x.seq === where.seq);
    if (!m) return undefined;
    return {
      id, stream: where.stream, seq: m.seq, epoch: s.epoch, expiresAt: m.expiresAt,
      acknowledged: s.acked >= m.seq, expired: m.expiresAt <= now,
    };
  }

  async prune(now: number): Promise<number> {
    let removed = 0;
    for (const s of this.#streams.values()) {
      const keep = s.messages.filter((m) => m.expiresAt > now);
      removed += s.messages.length - keep.length;
      s.messages = keep;
      for (const [k, v] of s.keys) if (v.expiresAt <= now) s.keys.delete(k);
    }
    return removed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pruner.stop();
    this.#streams.clear();
  }
}
