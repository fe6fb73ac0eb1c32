/**
 * The idempotency keys of live-only sends (a plain string message, `ttl: 0`).
 * Nothing of such a send is stored, so the store, which keeps the keys of
 * stored sends, cannot recognise a repeat: without this, a backend that sent
 * one again after a lost answer had it delivered twice although it gave a key.
 *
 * A key is kept for `windowMs` after its send, per stream (a person's, or a
 * kind's broadcast stream), as the store keeps keys per stream, and only when
 * the send reached a tab: one that reached nobody keeps nothing, so that
 * sending it again once the person is online delivers it (Notifier.sendBatch). Its limits
 * (docs/delivery.md, Sending): this process's memory only, so a repeat that
 * reaches the node after a restart, or another node of a cluster, is delivered
 * again; and at most `maxKeys` keys, the oldest forgotten first when more are
 * sent within the window.
 *
 * Keys are forgotten when their window ends, whether or not another keyed send
 * comes: a timer (unref'd: it never keeps the process alive) is armed for the
 * oldest key. Before it, pruning ran only on the next claim, and a burst of
 * 50,000 keys followed by silence held ~9 MB until the next keyed send.
 */

export interface LiveKeysOptions {
  /** How long a key is remembered after its send, ms. Default 5 minutes. */
  windowMs?: number;
  /** At most this many keys (about 0.15–0.9 KB each with the key and its stream: 0.3 KB at 200 ASCII characters, 0.9 KB at 200 emoji; docs/delivery.md); when full, the oldest is forgotten early. Default 100 000. */
  maxKeys?: number;
  /** Told when a key was forgotten before its window ended (the record was full), at most once a window. */
  onFull?: (maxKeys: number) => void;
  /**
   * The clock the window is measured on, in ms: a monotonic one (default performance.now),
   * injectable for tests. Not the wall clock: a step forward of it (NTP, a VM resumed) ended
   * every key's window at once, and a backend's retry after a lost answer was delivered twice.
   */
  now?: () => number;
}

export const LIVE_KEY_WINDOW_MS = 5 * 60_000;
export const LIVE_KEY_MAX = 100_000;
/** Longest delay setTimeout takes (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class LiveKeys {
  readonly #windowMs: number;
  readonly #maxKeys: number;
  readonly #onFull: ((maxKeys: number) => void) | undefined;
  readonly #now: () => number;
  /**
   * `stream \n key` → when it is forgotten. The window is the same for every key, so the
   * Map's insertion order is the order of expiry: pruning looks only at its first entries.
   * A stream name holds no newline (`admin:7`, `user:*`), so the pair is unambiguous.
   */
  readonly #until = new Map<string, number>();
  #lastFullAt = -Infinity;
  /** Armed for the oldest key's end while any key is remembered. */
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: LiveKeysOptions = {}) {
    this.#windowMs = options.windowMs ?? LIVE_KEY_WINDOW_MS;
    this.#maxKeys = options.maxKeys ?? LIVE_KEY_MAX;
    this.#onFull = options.onFull;
    this.#now = options.now ?? (() => performance.now());
    if (!(this.#windowMs > 0) || !(this.#maxKeys >= 1)) throw new TypeError('LiveKeys: windowMs and maxKeys must be positive');
  }

  /** How many keys are remembered now (one whose window just ended may count until the timer runs). */
  get size(): number {
    return this.#until.size;
  }

  /**
   * Whether the key is remembered for the stream (within the window): a send
   * with it now is a repeat. Asked before a send that may reach nobody, which
   * then claims the key only if it reached a tab (Notifier.sendBatch).
   * `_wallNow` is not used (the window is on the `now` option's clock): the Notifier still passes its own.
   */
  has(stream: string, key: string, _wallNow?: number): boolean {
    this.#prune(this.#now());
    return this.#until.has(`${stream}\n${key}`);
  }

  /**
   * Remembers the key for the stream. Returns false if it was already
   * remembered (within the window): the send is a repeat. `_wallNow`: as for has().
   */
  claim(stream: string, key: string, _wallNow?: number): boolean {
    const now = this.#now();
    this.#prune(now);
    const id = `${stream}\n${key}`;
    if (this.#until.has(id)) return false;
    if (this.#until.size >= this.#maxKeys) {
      this.#until.delete(this.#until.keys().next().value!);
      if (now - this.#lastFullAt >= this.#windowMs) {
        this.#lastFullAt = now;
        this.#onFull?.(this.#maxKeys);
      }
    }
    this.#until.set(id, now + this.#windowMs);
    this.#arm(now);
    return true;
  }

  /** Forgets a key claimed by a send that then failed, so that sending it again is not taken for a repeat. */
  release(stream: string, key: string): void {
    this.#until.delete(`${stream}\n${key}`);
  }

  /** Stops the timer and forgets every key (Herald's close): nothing is left to run after it. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#until.clear();
  }

  #prune(now: number): void {
    for (const [id, until] of this.#until) {
      if (until > now) return;
      this.#until.delete(id);
    }
  }

  /**
   * Arms the timer for the oldest key's end, unless it is armed already (for that key or an
   * older one, since released or forgotten: it then finds nothing to prune, and re-arms).
   * The timer counts the delay from `now` and prunes on the `now` option's clock when it
   * fires (a test's clock may not have moved as far: it then re-arms for what is left).
   */
  #arm(now: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    const first = this.#until.values().next();
    if (first.done) return;
    const delay = Math.min(Math.max(0, first.value - now), MAX_TIMER_MS);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const at = this.#now();
      this.#prune(at);
      this.#arm(at);
    }, delay);
    this.#timer.unref();
  }
}
