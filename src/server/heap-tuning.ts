import { setFlagsFromString } from 'node:v8';

/**
 * How far V8 lets its old generation grow past what the last full
 * collection kept, before the next one.
 *
 * Herald keeps what it retains outside the JavaScript heap (json-arena.ts,
 * the StreamIndex's row tables), so its live heap stays small: tens of MB.
 * From so small a heap V8 sets a low limit and, under a steady send rate,
 * started a full collection about every half second (3–4 in a W2 run, none
 * for the bare `ws` floor; docs/bench.md, eighth round). 300% is V8's own
 * largest growing factor (4×): a full collection then waits for the old
 * generation to reach four times what the last one kept, bounded as always
 * by --max-old-space-size.
 *
 * V8 reads the flag each time it sets the limit, so it can be set after
 * start-up. A `--heap-growing-percent` on node's own command line wins.
 * Returns whether it set the flag.
 */
export function tuneHeap(percent: number, execArgv: readonly string[] = process.execArgv): boolean {
  if (percent <= 0 || execArgv.some((a) => a.startsWith('--heap-growing-percent') || a.startsWith('--heap_growing_percent'))) return false;
  setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
  return true;
}
