/**
 * Reconnect delays: exponential backoff with "full jitter" (AWS Architecture
 * Blog, "Exponential Backoff And Jitter", 2015): a uniform random delay in
 * [0, min(cap, base·2^attempt)]. Full jitter spreads a thousand tabs that lost
 * the same server over the whole window instead of letting them return in
 * waves. There is no attempt limit: the old script gave up after 10 tries and
 * left the admin without notifications until a reload.
 */
export interface BackoffOptions {
  /** Base delay of the first retry, in ms. Default 500. */
  baseMs?: number;
  /** Upper bound of any delay, in ms. Default 30000. */
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
    this.#cap = options.capMs ?? 30_000;
    this.#random = options.random ?? Math.random;
    // Written so that NaN fails too: NaN delays are 0, a tight retry loop.
    if (!(this.#base > 0 && this.#cap >= this.#base && Number.isFinite(this.#cap))) {
      throw new TypeError(`backoff: baseMs must be > 0 and capMs a finite number ≥ baseMs, got ${String(options.baseMs)} and ${String(options.capMs)}`);
    }
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
