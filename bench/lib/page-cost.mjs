// What memory touched for the first time costs on this machine now. Herald
// writes every notification it retains into new pages (the store's arena)
// and the floor keeps nothing, so the price of a new page moves Herald's
// figures and not the floor's; on the bench's virtual machines it went from
// about 2 to 35 µs a page between days (docs/bench.md, twenty-first round).
// The runner measures it before and after the runs and results.md prints it
// beside the machine, as it prints the load average.
import { spawnSync } from 'node:child_process';
import { median } from './stats.mjs';

const PAGE = 4096;

// Run in a fresh process, so that no page it touches was mapped before:
// allocates `mib` MiB as Buffers of `chunk` MiB (as the arena does), writes
// one byte a page, and prints the wall time per page in µs.
const PROBE = `
const [mib, chunk, page] = process.argv.slice(1).map(Number);
const keep = [];
const t0 = process.hrtime.bigint();
for (let n = 0; n < mib / chunk; n++) {
  const b = Buffer.allocUnsafeSlow(chunk * 2 ** 20);
  for (let i = 0; i < b.length; i += page) b[i] = 1;
  keep.push(b);
}
const ns = Number(process.hrtime.bigint() - t0);
console.log(JSON.stringify({ usPerPage: ns / 1000 / ((mib * 2 ** 20) / page) }));
`;

/** How the probe measures: `mib` MiB in Buffers of `chunkMib` MiB, the median of `probes` fresh processes (the bench's --first-touch-probes). */
export const FIRST_TOUCH_PROBE = { mib: 64, chunkMib: 1, probes: 3 };

/**
 * What a first touch costs, µs a page (FIRST_TOUCH_PROBE, the median of
 * `probes` processes), or undefined when a probe failed or `probes` is 0:
 * the run goes on without the figure.
 */
export function firstTouchUsPerPage(probes = FIRST_TOUCH_PROBE.probes) {
  const { mib, chunkMib } = FIRST_TOUCH_PROBE;
  if (probes <= 0) return undefined;
  const each = [];
  for (let i = 0; i < probes; i++) {
    const r = spawnSync(process.execPath, ['-e', PROBE, String(mib), String(chunkMib), String(PAGE)], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) return undefined;
    try {
      each.push(JSON.parse(r.stdout).usPerPage);
    } catch {
      return undefined;
    }
  }
  return median(each);
}
