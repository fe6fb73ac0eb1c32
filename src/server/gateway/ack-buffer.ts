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
  /** Batches taken by a flush whose store writes have not finished: still counted by pending(). */
  readonly #inFlight = new Set<Map<string, number>>();
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
    for (const batch of this.#inFlight) seq = Math.max(seq, batch.get(stream) ?? 0);
    return seq;
  }

  async flush(): Promise<void> {
    this.#scheduled = false;
    if (this.#pending.size === 0) return;
    const batch = this.#pending;
    this.#pending = new Map();
    this.#inFlight.add(batch);
    const writes = [...batch].map(([stream, seq]) => this.#store.ack(stream, seq).catch((err: unknown) => {
      this.#log.warn({ err: (err as Error).message, stream }, 'could not record an acknowledgement');
    }));
    await Promise.all(writes);
    this.#inFlight.delete(batch);
  }
}
