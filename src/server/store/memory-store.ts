import type {
  AppendInput, AppendResult, MessageStatus, MessageStore, MessageStoreLimits, ReadResult, StoreCounts, StreamHead,
} from './message-store.js';
import { newEpoch } from './message-id.js';
import { HeraldError } from '../errors.js';
import { PruneTimer } from './prune-timer.js';
import { isStoreFull, PRUNE_SLICE, StreamIndex, WriteBatch } from './stream-index.js';

export { newEpoch } from './message-id.js';

export interface MemoryStoreOptions extends MessageStoreLimits {
  /** Background pruning of expired messages every this many ms; 0 or absent = only when prune() is called. */
  pruneIntervalMs?: number;
  /** Told how each background pruning pass went. */
  onPrune?: (removed: number, error?: unknown) => void;
}

/** Appends waiting for the end of the turn of the event loop, with their callers. */
interface QueuedAppends {
  readonly inputs: readonly AppendInput[];
  readonly now: number;
  readonly resolve: (results: AppendResult[]) => void;
  readonly reject: (error: unknown) => void;
}

/**
 * Keeps everything in this process's memory: for tests and for deployments
 * that accept losing queued notifications on restart (every epoch changes).
 * The state is a StreamIndex, the same one the SQLite store keeps in front of
 * its journal. Appends wait for the end of the turn of the event loop, as the
 * SQLite store's do, and the appends of every request read in that turn apply
 * in one step: their callers go on (and the Notifier delivers) together, after
 * the turn's I/O, instead of one request at a time between reads. Measured
 * in W2: about 6% less server CPU per notification, 7% more throughput
 * (docs/bench-history.md, sixth round).
 * Acks apply at once, without a promise (the AckBuffer already gathers them per turn).
 */
export class MemoryStore implements MessageStore {
  // Streams that were never written take their epoch from the store's, so reading a head allocates no stream.
  readonly #index: StreamIndex;
  readonly #writes: WriteBatch;
  readonly #pruner: PruneTimer;
  #queue: QueuedAppends[] = [];
  #closed = false;

  constructor(options: MemoryStoreOptions) {
    this.#index = new StreamIndex(options.maxPerStream, newEpoch());
    this.#index.maxRetainedBytes = options.maxRetainedBytes ?? 0;
    this.#writes = new WriteBatch(this.#index);
    this.#pruner = new PruneTimer((now) => this.prune(now), options.pruneIntervalMs ?? 0, options.onPrune);
  }

  async append(input: AppendInput, now: number): Promise<AppendResult> {
    return (await this.appendMany([input], now))[0]!;
  }

  appendMany(inputs: readonly AppendInput[], now: number): Promise<AppendResult[]> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    return new Promise((resolve, reject) => {
      if (this.#queue.push({ inputs, now, resolve, reject }) === 1) setImmediate(() => this.#flush());
    });
  }

  /**
   * Applies every queued append in one step, then answers their callers in
   * order. A call refused (the cap, maxRetainedBytes) is taken back
   * (WriteBatch.rollback) and the others apply without it, as if it had never
   * come. The first refusal of a flush lets go of what has expired
   * (StreamIndex.dropExpired, with nothing staged, once a flush: a turn of
   * refused sends walks one slice of streams, not one each) and stages the
   * calls again, as the room it made may take them.
   */
  #flush(): void {
    const queue = this.#queue;
    this.#queue = [];
    if (queue.length === 0) return;
    const results: Array<AppendResult[] | undefined> = [];
    const refusals: unknown[] = [];
    /** False, having discarded the batch and let go of what expired, at the first refusal when `sweep`. */
    const stageAll = (sweep: boolean): boolean => {
      for (const q of queue) {
        this.#writes.mark();
        try {
          results.push(q.inputs.map((input) => this.#writes.append(input, q.now)));
        } catch (e) {
          if (sweep && isStoreFull(e)) {
            this.#writes.discard();
            this.#index.dropExpired(q.now);
            results.length = refusals.length = 0;
            return false;
          }
          // Whatever it was, it fails only its own call.
          this.#writes.rollback();
          refusals[results.length] = e;
          results.push(undefined);
        }
      }
      return true;
    };
    // What has expired holds no place under the cap (StreamIndex.letExpiredGo).
    let adding = 0;
    for (const q of queue) adding += q.inputs.length;
    for (const q of queue) for (const input of q.inputs) this.#index.letExpiredGo(input.stream, q.now, adding);
    if (!stageAll(true)) stageAll(false);
    try {
      this.#writes.apply();
    } catch (e) {
      // Not expected of memory; but its callers are answered, never left waiting.
      this.#writes.discard();
      for (const q of queue) q.reject(e);
      return;
    }
    queue.forEach((q, i) => {
      const r = results[i];
      if (r) q.resolve(r);
      else q.reject(refusals[i]);
    });
  }

  /** Synchronous: every tab's connect reads two heads. */
  head(stream: string): StreamHead {
    return this.#index.head(stream);
  }

  async readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> {
    return this.#index.readAfter(stream, afterSeq, limit, now);
  }

  async ack(stream: string, seq: number): Promise<void> {
    this.ackMany(new Map([[stream, seq]]));
  }

  /** Applied at once: no promise. */
  ackMany(acks: ReadonlyMap<string, number>): undefined {
    for (const [stream, seq] of acks) this.#writes.ack(stream, seq);
    this.#writes.apply();
    return undefined;
  }

  async status(id: string, now: number): Promise<MessageStatus | undefined> {
    return this.#index.status(id, now);
  }

  /** In slices, giving the event loop a turn between them (as the SQLite store does). */
  async prune(now: number): Promise<number> {
    return this.#index.pruneYielding(now, PRUNE_SLICE, () => this.#closed);
  }

  counts(): StoreCounts {
    return this.#index.counts();
  }

  async close(): Promise<void> {
    // What was accepted before the close is applied (and answered), as the SQLite store commits its queue.
    this.#flush();
    this.#closed = true;
    this.#pruner.stop();
    this.#index.streams.clear();
  }
}
