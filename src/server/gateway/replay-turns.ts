/**
 * Replayed bytes (of frame text) sent in one turn of the event loop at most,
 * besides replayBatch frames: large notifications cost by their size, and
 * 500 of 64 KB would be 32 MB in one turn.
 */
const REPLAY_TURN_BYTES = 256 * 1024;

/** A grant of ReplayTurns: the tab holding it replays now. */
type ReplayGrant = object;

/**
 * The turn of the event loop that the replays of every tab in this process
 * share: at most replayBatch frames or REPLAY_TURN_BYTES of them in all,
 * one tab at a time, people taking turns. Each tab had a budget of its own,
 * so a hundred tabs replaying at once (a person's hundred tabs sending
 * RESUMEs) did a hundred budgets' work in one turn, and another person's ping
 * waited 140 ms, at times 380 ms, behind them (docs/delivery.md, At size).
 * The event loop is the process's, so is the budget: several Heralds in one
 * process (tests) share it too.
 *
 * A tab holds the turn while it reads a page and sends what the budget has
 * room for, so only one page is in hand at a time however many tabs wait
 * (a waiting tab holds none). A holder whose store read outlasts the turn
 * (a networked store) keeps no one waiting past it: the next one is let in
 * at the next turn, and each frame is still counted against the budget.
 */
export class ReplayTurns {
  #frames = 0;
  #bytes = 0;
  #holder: ReplayGrant | undefined;
  /** Tabs waiting, by person, people in the order they are served: one served goes to the back. */
  readonly #waiting = new Map<string, Array<{ maxFrames: number; resolve: (grant: ReplayGrant) => void }>>();
  #turnEnding = false;

  /** Whether this turn has replayed `maxFrames` (the tab's replayBatch) or REPLAY_TURN_BYTES. */
  full(maxFrames: number): boolean {
    return this.#frames >= maxFrames || this.#bytes >= REPLAY_TURN_BYTES;
  }

  /** Frames this turn has room for, at most `maxFrames`. */
  framesLeft(maxFrames: number): number {
    return maxFrames - this.#frames;
  }

  bytesLeft(): number {
    return REPLAY_TURN_BYTES - this.#bytes;
  }

  /** Counts a replayed frame of `bytes` against this turn. */
  spend(bytes: number): void {
    this.#frames++;
    this.#bytes += bytes;
    this.#endTurnLater();
  }

  /** Resolves with a grant when it is this tab's turn; `leave` it when done. */
  enter(person: string, maxFrames: number): Promise<ReplayGrant> {
    return new Promise((resolve) => {
      const queue = this.#waiting.get(person);
      if (queue) queue.push({ maxFrames, resolve });
      else this.#waiting.set(person, [{ maxFrames, resolve }]);
      if (this.#holder !== undefined) this.#endTurnLater();
      this.#next();
    });
  }

  leave(grant: ReplayGrant): void {
    if (this.#holder !== grant) return;
    this.#holder = undefined;
    this.#next();
  }

  /** Lets the next tab in, now if no one holds the turn and it has room, else at the next turn. */
  #next(): void {
    if (this.#holder !== undefined) return;
    const first = this.#waiting.entries().next();
    if (first.done) return;
    const [person, queue] = first.value;
    const waiter = queue[0]!;
    if (this.full(waiter.maxFrames)) {
      this.#endTurnLater();
      return;
    }
    queue.shift();
    this.#waiting.delete(person);
    if (queue.length > 0) this.#waiting.set(person, queue);
    const grant: ReplayGrant = {};
    this.#holder = grant;
    waiter.resolve(grant);
  }

  /**
   * Begins a new budget at the next turn. setImmediate, not a microtask:
   * only a new turn lets I/O in (other tabs' sends, HTTP requests, heartbeats).
   */
  #endTurnLater(): void {
    if (this.#turnEnding) return;
    this.#turnEnding = true;
    setImmediate(() => {
      this.#turnEnding = false;
      this.#frames = 0;
      this.#bytes = 0;
      this.#holder = undefined;
      this.#next();
    });
  }
}

/** The process's one: the event loop is the process's. */
export const replayTurns = new ReplayTurns();
