import type { Logger } from 'pino';
import { isHeraldError } from '../errors.js';
import type { MessageStore } from '../store/message-store.js';
import { ThrottledLog } from '../throttled-log.js';

export interface AckBufferOptions {
  /** How long after a failed write its acks are tried again (when no new ack flushes them first), in ms. Default 1000. */
  retryMs?: number;
}

/**
 * Coalesces acknowledgements. Acks are cumulative (the highest SEQ wins), and
 * every tab of a kind acks the same broadcast stream: after a broadcast to
 * 10,000 tabs, 10,000 acks of one stream become one store write per turn of
 * the event loop instead of 10,000.
 *
 * A write that fails (the disk full) is kept: its acks go back to the
 * pending ones (the highest SEQ per stream) and are written with the next
 * flush, or after `retryMs`. Forgotten, they were lost for good: the
 * notifications read then counted as unacknowledged after the disk had room
 * again, and a new tab was replayed them.
 */
export class AckBuffer {
  readonly #store: MessageStore;
  readonly #log: Logger;
  #pending = new Map<string, number>();
  /** Batches taken by a flush whose store writes have not finished (still counted by pending()), with those writes. */
  readonly #inFlight = new Map<Map<string, number>, Promise<void>>();
  #scheduled = false;
  readonly #retryMs: number;
  #retry: NodeJS.Timeout | undefined;
  /** While the store fails, every flush fails: 20 lines in 10 s at most, the rest counted. */
  readonly #failures: ThrottledLog;

  constructor(store: MessageStore, logger: Logger, options: AckBufferOptions = {}) {
    this.#store = store;
    this.#log = logger;
    this.#retryMs = options.retryMs ?? 1000;
    this.#failures = new ThrottledLog(logger, Date.now, {
      summary: (byCode, windowMs, perWindow) => ({
        fields: { failed: Object.values(byCode).reduce((a, b) => a + b, 0), byCode },
        message: `could not record acknowledgements, more times (past ${perWindow} lines in ${windowMs / 1000} s, counted here); they are kept and tried again`,
      }),
    });
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
      // `batch` is the pending map: its acks stay in it.
      this.#failed(err, batch);
      return undefined;
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
        // Cumulative: an ack of the same stream recorded since supersedes one of these only when higher.
        for (const [stream, seq] of batch) {
          if ((this.#pending.get(stream) ?? 0) < seq) this.#pending.set(stream, seq);
        }
        this.#failed(err, batch);
      },
    );
    this.#inFlight.set(batch, done);
    return done;
  }

  /**
   * Writes what is pending and waits for every write begun before, the
   * ones a scheduled flush began included (shutdown: the store is closed
   * next). Never rejects: a failed write is logged, and the failures counted
   * and not yet said are said now: their summary waited for the window's end
   * on an unref'd timer, and a stop within the window lost it.
   */
  async settle(): Promise<void> {
    await this.flush();
    await Promise.all(this.#inFlight.values());
    // No retry of what failed now: the store is closed next, and it could only fail again, after the summary.
    clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#failures.flush();
  }

  /** Logs a failed write, its acks pending again, and tries them again after retryMs. */
  #failed(err: unknown, batch: ReadonlyMap<string, number>): void {
    // The store closed (shutdown): nothing can write them any more.
    const closed = isHeraldError(err) && err.code === 'HERALD_ERR_SHUTTING_DOWN';
    const code = isHeraldError(err) ? err.code : 'error';
    this.#failures.log('warn', code, { err: (err as Error).message, streams: batch.size, stream: batch.keys().next().value }, closed ? 'could not record acknowledgements' : 'could not record acknowledgements; they are kept and tried again');
    if (closed) {
      this.#pending.clear();
      return;
    }
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.flush();
    }, this.#retryMs);
    // Not a reason to stay up: at shutdown settle() writes what is pending.
    this.#retry.unref();
  }
}
