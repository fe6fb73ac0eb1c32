/**
 * How many session look-ups may be at the panel at once. After a restart
 * every open tab reconnects within seconds, and the cache in front of the
 * resolver merges only look-ups of the same session: 10,000 users with
 * 10,000 sessions would otherwise be 10,000 requests to the panel at once,
 * and as many sockets. The rest wait their turn in order, within the
 * look-up's own deadline; past `maxWaiting` a handshake is answered
 * "unavailable" (HTTP 503, the tab retries later) at once rather than
 * joining a queue it could not leave in time.
 */
export class LookUpGate {
  readonly #size: number;
  readonly #maxWaiting: number;
  #active = 0;
  /** Waiting look-ups, oldest first (a Set: one that gives up leaves from the middle). */
  readonly #waiting = new Set<() => void>();

  constructor(size: number, maxWaiting: number) {
    this.#size = size;
    this.#maxWaiting = maxWaiting;
  }

  /** Look-ups at the panel now, and waiting for a turn. */
  get active(): number {
    return this.#active;
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  /**
   * Takes a turn: `true` at once when one is free, else a promise of `true`
   * when one frees, or of `false` if `signal` aborts first; `false` at once
   * when `maxWaiting` look-ups are already waiting. Every `true` must be
   * followed by one `leave()`.
   */
  enter(signal: AbortSignal): boolean | Promise<boolean> {
    if (this.#active < this.#size) {
      this.#active++;
      return true;
    }
    if (this.#waiting.size >= this.#maxWaiting || signal.aborted) return false;
    return new Promise<boolean>((resolve) => {
      const gaveUp = (): void => {
        this.#waiting.delete(turn);
        resolve(false);
      };
      const turn = (): void => {
        signal.removeEventListener('abort', gaveUp);
        resolve(true);
      };
      this.#waiting.add(turn);
      signal.addEventListener('abort', gaveUp, { once: true });
    });
  }

  /** Ends a turn; the oldest waiting look-up takes it. */
  leave(): void {
    for (const next of this.#waiting) {
      this.#waiting.delete(next);
      next(); // the turn passes on: #active stays the same
      return;
    }
    this.#active--;
  }
}
