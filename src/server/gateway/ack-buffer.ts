import type { Logger } from 'pino';
import type { MessageStore } from '../store/message-store.js';

/**
 * Coalesces acknowledgements. Acks are cumulative (the highest SEQ wins), and
 * every tab of a kind acks the same broadcast stream: after a broadcast to
 * 10,000 tabs, 10,000 acks of one stream become one store write per turn of
 * the event loop instead of 10,000.
 */
export class AckBuffer {
  readonly #store: MessageStore;
  readonly #log: Logger;
  #pending = new Map<string, number>();
  /** Batches taken by a flush whose store writes have not finished (still counted by pending()), with those writes. */
  readonly #inFlight = new Map<Map<string, number>, Promise<void>>();
  #scheduled = false;

  constructor(store: MessageStore, logger: Logger) {
    this.#store = store;
    this.#log = logger;
  }

  record(stream: string, seq: number): void {
    const prev = this.#pending.get(stream);
    if (prev !== undefined && prev >= seq) return;
    this.#pending.set(stream, seq);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  /** The highest SEQ acknowledged but not yet written, if any: a head read now must count it. */
  pending(stream: string): number {
    let seq = this.#pending.get(stream) ?? 0;
    // An asynchronous store (SQLite queues writes to the next turn) has not applied these yet.
    for (const batch of this.#inFlight.keys()) seq = Math.max(seq, batch.get(stream) ?? 0);
    return seq;
  }

  /**
   * Writes what was acked since the last flush, as one store write. With a
   * store that applies it at once (the memory store) there is no promise, and
   * the same map is emptied and reused: most turns carry one ack, and a
   * promise, a set entry and a map for each cost more than the ack itself.
   */
  flush(): Promise<void> | undefined {
    this.#scheduled = false;
    const batch = this.#pending;
    if (batch.size === 0) return undefined;
    let written: Promise<void> | undefined;
    try {
      written = this.#store.ackMany(batch);
    } catch (err) {
      this.#failed(err, batch);
    }
    if (written === undefined) {
      batch.clear();
      return undefined;
    }
    this.#pending = new Map();
    const done = written.then(
      () => { this.#inFlight.delete(batch); },
      (err: unknown) => {
        this.#inFlight.delete(batch);
        this.#failed(err, batch);
      },
    );
    this.#inFlight.set(batch, done);
    return done;
  }

  /**
   * Writes what is pending and waits for every write begun before, the
   * ones a scheduled flush began included (shutdown: the store is closed
   * next). Never rejects: a failed write is logged.
   */
  async settle(): Promise<void> {
    await this.flush();
    await Promise.all(this.#inFlight.values());
  }

  #failed(err: unknown, batch: ReadonlyMap<string, number>): void {
    this.#log.warn({ err: (err as Error).message, streams: batch.size, stream: batch.keys().next().value }, 'could not record acknowledgements');
  }
}
