import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/**
 * How far V8 lets its old generation grow past what the last full
 * collection kept, before the next one.
 *
 * Herald keeps what it retains outside the JavaScript heap (json-arena.ts,
 * the StreamIndex's row tables), so its live heap stays small: tens of MB.
 * From so small a heap V8 sets a low limit and, under a steady send rate,
 * started a full collection about every half second (3–4 in a W2 run, none
 * for the bare `ws` floor; docs/bench-history.md, eighth round). 300% is V8's own
 * largest growing factor (4×): a full collection then waits for the old
 * generation to reach four times what the last one kept, bounded as always
 * by --max-old-space-size.
 *
 * V8 reads the flag each time it sets the limit, so it can be set after
 * start-up. A `--heap-growing-percent` on node's own command line wins.
 * Returns whether it set the flag.
 */
export function tuneHeap(percent: number, execArgv: readonly string[] = process.execArgv): boolean {
  if (percent <= 0 || onCommandLine(execArgv, 'heap-growing-percent')) return false;
  setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
  return true;
}

/**
 * Whether V8 scavenges (collects the young generation) on the main thread
 * alone or splits each scavenge across helper threads, which the main
 * thread then waits for.
 *
 * On a machine with 2 CPUs or fewer the helpers wait for a core that the
 * event loop, the load and every other process want: the pause lasts until
 * the slowest of them got one, and the split costs CPU of its own (a
 * scavenge-heavy loop here: 173 ms of CPU on the main thread alone against
 * 111 ms there plus 158 ms on the helpers). On the bench's 2 CPUs under
 * load, scavenging on the main thread alone cut the share of time Herald's
 * event loop stood still for GC in W2 from 1.7–2.2% to 1.2–1.5%, in every
 * pair (docs/bench-history.md, ninth round).
 * `auto` therefore turns the split off at 2 CPUs or fewer and leaves V8's
 * default (on) above; `true` and `false` force it.
 *
 * V8 reads the flag at each scavenge, so it can be set after start-up. A
 * `--parallel-scavenge` or `--no-parallel-scavenge` on node's own command
 * line wins. Returns the flag it set, or undefined.
 */
export function tuneScavenger(
  mode: 'auto' | boolean, cpus: number = availableParallelism(), execArgv: readonly string[] = process.execArgv,
): '--parallel-scavenge' | '--no-parallel-scavenge' | undefined {
  if (onCommandLine(execArgv, 'parallel-scavenge')) return undefined;
  const parallel = mode === 'auto' ? cpus > 2 : mode;
  if (mode === 'auto' && parallel) return undefined;
  const flag = parallel ? '--parallel-scavenge' : '--no-parallel-scavenge';
  setFlagsFromString(flag);
  return flag;
}

/**
 * Whether V8 may decide, from what survived its scavenges, to allocate an
 * allocation site's objects straight into the old generation (allocation-
 * site pretenuring).
 * A batch's short-lived objects (a store flush's staged appends, the
 * Notifier's plans, an ack flush's entries) are all alive while their batch
 * runs; a scavenge that lands inside one finds nearly every object from
 * those sites alive, and V8 then pretenures them for good. From then on
 * every such object is old garbage, its pointers to young objects go into
 * the remembered set, and the scavenges slow down. With 10,000 tabs on the
 * bench's machine, storing 2,000 notifications a second: 1.4 MB promoted
 * and a 14 ms pause per scavenge with it, 0.5 MB and 8–9 ms without, the
 * event loop paused by GC 1.1–1.4% of the time against 0.7–0.9%, and no
 * difference in W1's connects (docs/bench-history.md, fifteenth round).
 * V8 reads the flag each time it weighs the sites, so it can be set after
 * start-up. An `--allocation-site-pretenuring` or its `--no-` form on
 * node's own command line wins. Returns the flag it set, or undefined.
 */
export function tunePretenuring(
  enabled: boolean, execArgv: readonly string[] = process.execArgv,
): '--allocation-site-pretenuring' | '--no-allocation-site-pretenuring' | undefined {
  if (onCommandLine(execArgv, 'allocation-site-pretenuring')) return undefined;
  const flag = enabled ? '--allocation-site-pretenuring' : '--no-allocation-site-pretenuring';
  setFlagsFromString(flag);
  return flag;
}

/** Whether node was started with V8 flag `name` (`--name`, `--name=…`, `--no-name`; `-` or `_` between words). */
function onCommandLine(execArgv: readonly string[], name: string): boolean {
  const words = name.split('-').join('[-_]');
  const flag = new RegExp(`^--(no[-_])?${words}(=|$)`);
  return execArgv.some((a) => flag.test(a));
}
