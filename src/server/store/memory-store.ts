import type {
  AppendInput, AppendResult, MessageStatus, MessageStore, MessageStoreLimits, ReadResult, StreamHead,
} from './message-store.js';
import { newEpoch } from './message-id.js';
import { HeraldError } from '../errors.js';
import { PruneTimer } from './prune-timer.js';
import { PRUNE_SLICE, StreamIndex, WriteBatch } from './stream-index.js';

export { newEpoch } from './message-id.js';

export interface MemoryStoreOptions extends MessageStoreLimits {
  /** Background pruning of expired messages every this many ms; 0 or absent = only when prune() is called. */
  pruneIntervalMs?: number;
  /** Told how each background pruning pass went. */
  onPrune?: (removed: number, error?: unknown) => void;
}

/**
 * Keeps everything in this process's memory: for tests and for deployments
 * that accept losing queued notifications on restart (every epoch changes).
 * The state is a StreamIndex, the same one the SQLite store keeps in front of
 * its journal; here each write applies at once.
 */
export class MemoryStore implements MessageStore {
  // Streams that were never written take their epoch from the store's, so reading a head allocates no stream.
  readonly #index: StreamIndex;
  readonly #writes: WriteBatch;
  readonly #pruner: PruneTimer;
  #closed = false;

  constructor(options: MemoryStoreOptions) {
    this.#index = new StreamIndex(options.maxPerStream, newEpoch());
    this.#writes = new WriteBatch(this.#index);
    this.#pruner = new PruneTimer((now) => this.prune(now), options.pruneIntervalMs ?? 0, options.onPrune);
  }

  async append(input: AppendInput, now: number): Promise<AppendResult> {
    if (this.#closed) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed');
    const result = this.#writes.append(input, now);
    this.#writes.apply();
    return result;
  }

  async appendMany(inputs: readonly AppendInput[], now: number): Promise<AppendResult[]> {
    if (this.#closed) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed');
    const results = inputs.map((input) => this.#writes.append(input, now));
    this.#writes.apply();
    return results;
  }

  /** Synchronous: every tab's connect reads two heads. */
  head(stream: string): StreamHead {
    return this.#index.head(stream);
  }

  async readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> {
    return this.#index.readAfter(stream, afterSeq, limit, now);
  }

  async ack(stream: string, seq: number): Promise<void> {
    this.#writes.ack(stream, seq);
    this.#writes.apply();
  }

  async status(id: string, now: number): Promise<MessageStatus | undefined> {
    return this.#index.status(id, now);
  }

  /** In slices, giving the event loop a turn between them (as the SQLite store does). */
  async prune(now: number): Promise<number> {
    return this.#index.pruneYielding(now, PRUNE_SLICE, () => this.#closed);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#pruner.stop();
    this.#index.streams.clear();
  }
}
