/**
 * Runs a store's prune() every `intervalMs` in the background: one pass at a
 * time (a slow pass is never overlapped by the next), unref'd so it never
 * keeps the process alive, stopped by the store's close().
 */
export class PruneTimer {
  readonly #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(
    prune: (now: number) => Promise<number>,
    intervalMs: number,
    onResult: (removed: number, error?: unknown) => void = () => {},
  ) {
    if (intervalMs <= 0) return;
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = true;
      prune(Date.now()).then(
        (removed) => onResult(removed),
        (error: unknown) => onResult(0, error),
      ).finally(() => {
        this.#running = false;
      });
    }, intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}
