import type { Logger } from 'pino';

/** Refused handshakes logged one by one in each window, at most. */
const LOGGED_PER_WINDOW = 20;
const WINDOW_MS = 10_000;

/**
 * The log lines of refused handshakes (no token, a foreign Origin, the
 * resolver unavailable, too many tabs), bounded. A refusal costs a client one
 * request and no credential, and wrote one line each: a client refused in a
 * loop wrote the log as fast as it could connect. The first LOGGED_PER_WINDOW
 * refusals of each WINDOW_MS are logged as they come, which is what an
 * operator reading the log after a misconfiguration needs; the rest are
 * counted and said in one line when the window ends.
 */
export class RefusalLog {
  readonly #logger: Logger;
  readonly #now: () => number;
  #windowStart = -Infinity;
  #logged = 0;
  /** Refusals of the current window not logged one by one, by error code (a bounded set: a message may hold what a client sent). */
  #quiet = new Map<string, number>();
  #summary: NodeJS.Timeout | undefined;

  constructor(logger: Logger, now: () => number) {
    this.#logger = logger;
    this.#now = now;
  }

  refused(level: 'info' | 'warn', code: string, fields: object, message: string): void {
    const now = this.#now();
    if (now - this.#windowStart >= WINDOW_MS) {
      this.#windowStart = now;
      this.#logged = 0;
    }
    if (this.#logged < LOGGED_PER_WINDOW) {
      this.#logged++;
      this.#logger[level](fields, message);
      return;
    }
    this.#quiet.set(code, (this.#quiet.get(code) ?? 0) + 1);
    if (this.#summary === undefined) {
      this.#summary = setTimeout(() => this.flush(), Math.max(0, this.#windowStart + WINDOW_MS - now));
      this.#summary.unref();
    }
  }

  /** Logs the refusals counted and not yet said (the window's end, or the Gateway's close). */
  flush(): void {
    if (this.#summary !== undefined) clearTimeout(this.#summary);
    this.#summary = undefined;
    if (this.#quiet.size === 0) return;
    const byCode = Object.fromEntries(this.#quiet);
    const refused = [...this.#quiet.values()].reduce((a, b) => a + b, 0);
    this.#quiet = new Map();
    this.#logger.warn({ refused, byCode, windowMs: WINDOW_MS }, `handshakes refused and not logged one by one: more than ${LOGGED_PER_WINDOW} in ${WINDOW_MS / 1000} s`);
  }
}
