/**
 * Reconnect delays: exponential backoff with "full jitter" (AWS Architecture
 * Blog, "Exponential Backoff And Jitter", 2015): a uniform random delay in
 * [0, min(cap, base·2^attempt)]. Full jitter spreads a thousand tabs that lost
 * the same server over the whole window instead of letting them return in
 * waves. There is no attempt limit: the old script gave up after 10 tries and
 * left the admin without notifications until a reload.
 */
/**
 * The longest delay a browser timer can wait, in ms (2^31-1, as the
 * server's TIMER_MAX_MS). setTimeout's timeout is a WebIDL `long` (HTML
 * Standard, timers): a longer one wraps around, mostly to a negative number
 * taken as 0, and the timer fires at once.
 */
export const TIMER_MAX_MS = 2_147_483_647;

export interface BackoffOptions {
  /** Base delay of the first retry, in ms. Default 500. */
  baseMs?: number;
  /** Upper bound of any delay, in ms. Default 30000; at most 2147483647 (a longer cap counts as that). */
  capMs?: number;
  /** Source of randomness in [0, 1); tests may pass their own. */
  random?: () => number;
}

export class Backoff {
  readonly #base: number;
  readonly #cap: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#base = options.baseMs ?? 500;
    const cap = options.capMs ?? 30_000;
    this.#random = options.random ?? Math.random;
    // Written so that NaN fails too: NaN delays are 0, a tight retry loop.
    if (!(this.#base > 0 && cap >= this.#base && Number.isFinite(cap))) {
      throw new TypeError(`backoff: baseMs must be > 0 and capMs a finite number ≥ baseMs, got ${String(options.baseMs)} and ${String(options.capMs)}`);
    }
    // A longer delay would fire at once: late retries in a tight loop.
    this.#cap = Math.min(cap, TIMER_MAX_MS);
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The next delay, in ms. */
  next(): number {
    // 2^attempt overflows nothing for attempt ≤ 60; beyond that the cap rules anyway.
    const ceiling = Math.min(this.#cap, this.#base * 2 ** Math.min(this.#attempt, 30));
    this.#attempt++;
    return Math.floor(this.#random() * ceiling);
  }

  /** After a connection that worked, start again from the base delay. */
  reset(): void {
    this.#attempt = 0;
  }
}
