import type { Logger } from 'pino';

export interface ThrottledLogOptions {
  /** Lines logged one by one in each window, at most. Default 20. */
  perWindow?: number;
  /** The window, in ms. Default 10 s. */
  windowMs?: number;
  /** The line that says what was counted and not logged one by one: by key, each key's weights added up. */
  summary(byKey: Record<string, number>, windowMs: number, perWindow: number): { fields: object; message: string };
}

/**
 * A log line for an event a client or a sender can repeat as fast as it
 * likes (a refused handshake, a notification dropped from a full stream, a
 * tab closed for not reading), bounded. The first `perWindow` events of each
 * window are logged as they come, which is what an operator reading the log
 * needs; the rest are counted by a key (keep the set of keys small: an error
 * code, not what a client sent) and said in one line when the window ends,
 * or at flush(). Unbounded, each wrote one line: a loop of them wrote the
 * log as fast as it ran.
 */
export class ThrottledLog {
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #summary: ThrottledLogOptions['summary'];
  #windowStart = -Infinity;
  #logged = 0;
  #quiet = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(logger: Logger, now: () => number, options: ThrottledLogOptions) {
    this.#logger = logger;
    this.#now = now;
    this.#perWindow = options.perWindow ?? 20;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#summary = options.summary;
  }

  /** Logs the line, or counts `weight` under `key` when this window has had its lines. */
  log(level: 'info' | 'warn', key: string, fields: object, message: string, weight = 1): void {
    const now = this.#now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#logged = 0;
    }
    if (this.#logged < this.#perWindow) {
      this.#logged++;
      this.#logger[level](fields, message);
      return;
    }
    this.#quiet.set(key, (this.#quiet.get(key) ?? 0) + weight);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), Math.max(0, this.#windowStart + this.#windowMs - now));
      this.#timer.unref();
    }
  }

  /** Says what was counted and not yet said (the window's end, or the owner's close). */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#quiet.size === 0) return;
    const byKey = Object.fromEntries(this.#quiet);
    this.#quiet = new Map();
    const { fields, message } = this.#summary(byKey, this.#windowMs, this.#perWindow);
    this.#logger.warn(fields, message);
  }
}
