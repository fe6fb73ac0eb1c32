import type { Logger } from 'pino';

export interface ThrottledLogOptions {
  /** Lines logged one by one in each window, at most: of all keys together, or of each key (`budget`). Default 20. */
  perWindow?: number;
  /**
   * `shared` (the default): the keys share `perWindow`. `per key`: each key has
   * `perWindow` lines of its own, so a flood of one key (a loop of handshakes
   * without a token) does not hide the first lines of another (a foreign
   * Origin); the lines a window can hold are then `perWindow` times the keys.
   */
  budget?: 'shared' | 'per key';
  /** The window, in ms. Default 10 s. */
  windowMs?: number;
  /**
   * The clock the window is measured on, in ms: a monotonic one (default performance.now),
   * injectable for tests. Not the wall clock: a step back of it (NTP, a VM resumed) froze the
   * window for the length of the step, 20 lines and then silence, not even a summary.
   */
  now?: () => number;
  /**
   * The line that says what was counted and not logged one by one: by key, each key's weights
   * added up; `samples`, for the keys whose events carried one, the most frequent values
   * (at most SAMPLES_KEPT a key, each with its count: see TopValues).
   */
  summary(byKey: Record<string, number>, windowMs: number, perWindow: number, samples: Record<string, Record<string, number>>): { fields: object; message: string };
}

/** Distinct sample values a key keeps while its events are counted (TopValues). */
export const SAMPLES_KEPT = 5;
/** A sample value is kept to at most this many characters (it is what a client sent: an Origin, a program). */
export const SAMPLE_CHARS = 200;

/**
 * The most frequent of a stream of values, in bounded memory: at most `size`
 * distinct values are held (the Space-Saving algorithm, Metwally et al. 2005).
 * A value not held takes the place of the least counted one, and its count
 * from there: so a value seen more often than 1/size of the time is always
 * held, whatever a client sends around it (a flood of made-up Origins cannot
 * push out the one that keeps coming back), and a count is an upper bound,
 * too high by at most the count of the value it replaced.
 */
export class TopValues {
  readonly #size: number;
  readonly #counts = new Map<string, number>();

  constructor(size = SAMPLES_KEPT) {
    this.#size = size;
  }

  add(value: string, weight = 1): void {
    const v = value.length > SAMPLE_CHARS ? `${value.slice(0, SAMPLE_CHARS)}…` : value;
    const had = this.#counts.get(v);
    if (had !== undefined) {
      this.#counts.set(v, had + weight);
      return;
    }
    if (this.#counts.size < this.#size) {
      this.#counts.set(v, weight);
      return;
    }
    let least: string | undefined;
    let min = Infinity;
    for (const [k, n] of this.#counts) {
      if (n < min) {
        min = n;
        least = k;
      }
    }
    this.#counts.delete(least as string);
    this.#counts.set(v, min + weight);
  }

  /** The values, most counted first. */
  top(): Record<string, number> {
    return Object.fromEntries([...this.#counts].sort((a, b) => b[1] - a[1]));
  }
}

/**
 * A log line for an event a client or a sender can repeat as fast as it
 * likes (a refused handshake, a notification dropped from a full stream, a
 * tab closed for not reading), bounded. The first `perWindow` events of each
 * window (of each key, with `budget: 'per key'`) are logged as they come,
 * which is what an operator reading the log needs; the rest are counted by a
 * key (keep the set of keys small: an error code, not what a client sent),
 * with the most frequent of a sample value each may carry (an Origin: bounded,
 * TopValues), and said in one line when the window ends, or at flush().
 * Unbounded, each wrote one line: a loop of them wrote the log as fast as it ran.
 */
export class ThrottledLog {
  readonly #logger: Pick<Logger, 'info' | 'warn'>;
  readonly #now: () => number;
  readonly #perWindow: number;
  readonly #perKey: boolean;
  readonly #windowMs: number;
  readonly #summary: ThrottledLogOptions['summary'];
  #windowStart = -Infinity;
  /** Lines logged one by one this window: under the key '' when the budget is shared. */
  #logged = new Map<string, number>();
  #quiet = new Map<string, number>();
  #samples = new Map<string, TopValues>();
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param clock the window's clock (a test's), unless `options.now` is given; Date.now itself,
   *   which most callers pass, is taken as performance.now: the window must not follow the wall clock.
   */
  constructor(logger: Pick<Logger, 'info' | 'warn'>, clock: (() => number) | undefined, options: ThrottledLogOptions) {
    this.#logger = logger;
    this.#now = options.now ?? (clock === undefined || clock === Date.now ? () => performance.now() : clock);
    this.#perWindow = options.perWindow ?? 20;
    this.#perKey = options.budget === 'per key';
    this.#windowMs = options.windowMs ?? 10_000;
    this.#summary = options.summary;
  }

  /**
   * Logs the line, or counts `weight` under `key` (and `sample`, when given, among the key's
   * values) when this window has had its lines. True when the line was logged.
   */
  log(level: 'info' | 'warn', key: string, fields: object, message: string, weight = 1, sample?: string): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#logged.clear();
    }
    const budgetKey = this.#perKey ? key : '';
    const logged = this.#logged.get(budgetKey) ?? 0;
    if (logged < this.#perWindow) {
      this.#logged.set(budgetKey, logged + 1);
      this.#logger[level](fields, message);
      return true;
    }
    this.#quiet.set(key, (this.#quiet.get(key) ?? 0) + weight);
    if (sample !== undefined) {
      let top = this.#samples.get(key);
      if (top === undefined) this.#samples.set(key, (top = new TopValues()));
      top.add(sample, weight);
    }
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), Math.max(0, this.#windowStart + this.#windowMs - now));
      this.#timer.unref();
    }
    return false;
  }

  /** Says what was counted and not yet said (the window's end, or the owner's close). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#quiet.size === 0) return;
    const byKey = Object.fromEntries(this.#quiet);
    const samples = Object.fromEntries([...this.#samples].map(([k, top]) => [k, top.top()]));
    this.#quiet = new Map();
    this.#samples = new Map();
    const { fields, message } = this.#summary(byKey, this.#windowMs, this.#perWindow, samples);
    this.#logger.warn(fields, message);
  }
}
