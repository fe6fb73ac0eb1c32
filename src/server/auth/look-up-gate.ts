/**
 * How many session look-ups may be at the panel at once. After a restart
 * every open tab reconnects within seconds, and the cache in front of the
 * resolver merges only look-ups of the same session: 10,000 users with
 * 10,000 sessions would otherwise be 10,000 requests to the panel at once,
 * and as many sockets. The rest wait their turn in order, at most
 * `maxWaitMs`; past `maxWaiting` a handshake is answered "unavailable"
 * (HTTP 503, the tab retries later) at once rather than joining a queue it
 * could not leave in time.
 */
export class LookUpGate {
  readonly #size: number;
  readonly #maxWaiting: number;
  readonly #maxWaitMs: number;
  #active = 0;
  /** Waiting look-ups, oldest first (a Set: one that gives up leaves from the middle). */
  readonly #waiting = new Set<Waiter>();

  /**
   * @param size look-ups at the panel at once at most
   * @param maxWaiting look-ups waiting for a turn at most
   * @param maxWaitMs longest a look-up waits for a turn, in ms (default: until its signal aborts).
   *   Turns go oldest first, so under sustained overload (more look-ups a
   *   second than the panel answers) without it every turn went to a look-up
   *   a few ms from its deadline, whose answer came too late: nobody was
   *   admitted at all (test/resolver-http-overload.test.ts). A look-up that
   *   has not had its turn by then gives up at once instead, and the turns go
   *   to look-ups that can still use their answer.
   */
  constructor(size: number, maxWaiting: number, maxWaitMs = Infinity) {
    this.#size = size;
    this.#maxWaiting = maxWaiting;
    this.#maxWaitMs = maxWaitMs;
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
   * when one frees, or of `false` if `signal` aborts or `maxWaitMs` passes
   * first; `false` at once when `maxWaiting` look-ups are already waiting.
   * Every `true` must be followed by one `leave()`.
   */
  enter(signal: AbortSignal): boolean | Promise<boolean> {
    if (this.#active < this.#size) {
      this.#active++;
      return true;
    }
    if (this.#waiting.size >= this.#maxWaiting || signal.aborted) return false;
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (turn: boolean): void => {
        this.#waiting.delete(waiter);
        clearTimeout(timer);
        signal.removeEventListener('abort', gaveUp);
        resolve(turn);
      };
      const gaveUp = (): void => settle(false);
      const waiter: Waiter = { startBy: performance.now() + this.#maxWaitMs, settle };
      this.#waiting.add(waiter);
      signal.addEventListener('abort', gaveUp, { once: true });
      if (Number.isFinite(this.#maxWaitMs)) timer = setTimeout(gaveUp, this.#maxWaitMs);
    });
  }

  /** Ends a turn; the oldest waiting look-up still within `maxWaitMs` takes it. */
  leave(): void {
    const now = performance.now();
    for (const next of this.#waiting) {
      // Its timer is due but has not run yet (a busy event loop): too late all the same.
      if (next.startBy <= now) {
        next.settle(false);
        continue;
      }
      next.settle(true); // the turn passes on: #active stays the same
      return;
    }
    this.#active--;
  }
}

interface Waiter {
  /** When it gives up waiting, in ms on the monotonic clock (performance.now: a wall clock step must not move it). */
  readonly startBy: number;
  /** Leaves the queue, with a turn or without. */
  readonly settle: (turn: boolean) => void;
}
