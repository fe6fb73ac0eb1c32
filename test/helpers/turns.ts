/**
 * Counts the turns of the event loop from now until stop(): a chain of
 * setImmediate, not a timer, since work that yields often may still take
 * less than a timer's 1 ms between turns. For tests that check a long task
 * lets the event loop run.
 */
export function countTurns(): { readonly turns: number; stop(): number } {
  let turns = 0;
  let counting = true;
  const turn = (): void => {
    turns++;
    if (counting) setImmediate(turn);
  };
  setImmediate(turn);
  return {
    get turns() {
      return turns;
    },
    /** Stops counting; returns the turns counted. */
    stop() {
      counting = false;
      return turns;
    },
  };
}
