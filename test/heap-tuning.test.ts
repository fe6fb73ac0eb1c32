// tuneHeap, tuneScavenger and tunePretenuring (src/server/heap-tuning.ts) on
// real V8, each in child processes. tuneHeap: a child keeps a live heap and
// promotes garbage at a steady pace, and counts its full collections. Set
// after start-up, the growing percent must change how often they come; one
// given on node's own command line must win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundled } from './helpers/bundle.js';
import { runModule } from './helpers/node-child.js';

// 300,000 live objects, then 3,000 batches of 1,000 objects, each kept
// while the next 400 are made: long enough to be promoted, then old garbage.
const CHILD = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
const { tuneHeap } = await import(process.env.HEAP_MODULE);
const applied = tuneHeap(Number(process.env.PERCENT));
let majors = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++; }).observe({ entryTypes: ['gc'] });
globalThis.live = Array.from({ length: 300_000 }, (_, i) => ({ a: i, b: 'v' + i }));
const ring = new Array(400).fill(null);
for (let i = 0; i < 200; i++) { ring[i % 400] = Array.from({ length: 1000 }, (_, k) => ({ k })); await new Promise(setImmediate); }
majors = 0;
for (let i = 0; i < 3000; i++) {
  ring[i % 400] = Array.from({ length: 1000 }, (_, k) => ({ k, s: 'x' + k }));
  if (i % 10 === 0) await new Promise(setImmediate);
}
await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify({ applied, majors, live: globalThis.live.length }));
`;

/**
 * Runs `code` in a child node with `nodeFlags` and `env` (and the module under test,
 * bundled: a child through the tsx loader cost about a second of CPU more); returns its stdout.
 */
function runChild(code: string, env: Record<string, string>, nodeFlags: string[] = []): Promise<string> {
  return runModule(code, { env: { HEAP_MODULE: bundled('src/server/heap-tuning.ts'), ...env }, nodeFlags, tsx: false });
}

/** Runs the workload with tuneHeap(percent); returns what the child saw. */
async function fullCollections(percent: number, nodeFlags: string[] = []): Promise<{ applied: boolean; majors: number }> {
  return JSON.parse(await runChild(CHILD, { PERCENT: String(percent) }, nodeFlags)) as { applied: boolean; majors: number };
}

/** Runs `run` once, on the first call; later calls get the same result (a child's run that two tests compare against). */
function once<T>(run: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => (result ??= run());
}

/** The workload with tuneHeap(300) and nothing on node's command line: both tuneHeap tests compare against it. */
const at300 = once(() => fullCollections(300));

test('the growing percent set after start-up changes how often V8 runs a full collection', async () => {
  const [low, high] = await Promise.all([fullCollections(10), at300()]);
  assert.deepEqual([low.applied, high.applied], [true, true]);
  // Measured: 9–12 against 1.
  assert.ok(low.majors >= 3 * Math.max(1, high.majors), `10%: ${low.majors} full collections, 300%: ${high.majors}`);
});

test('a --heap-growing-percent on node\'s command line wins, and 0 leaves V8 alone', async () => {
  const [overridden, high, zero] = await Promise.all([fullCollections(300, ['--heap-growing-percent=10']), at300(), fullCollections(0)]);
  assert.equal(overridden.applied, false);
  assert.ok(overridden.majors >= 3 * Math.max(1, high.majors), `command line 10%: ${overridden.majors}, 300%: ${high.majors}`);
  assert.equal(zero.applied, false);
});

// tuneScavenger: a child makes young garbage with some survivors, runs with
// --trace-gc-nvp, and counts its scavenges in which V8's helper threads
// took part (background.scavenge.parallel above 0). The scavenges while the
// child starts, before the flag is set, count too; so each check compares
// two runs.
const SCAVENGER_CHILD = `
const { tuneScavenger } = await import(process.env.HEAP_MODULE);
const mode = process.env.MODE === 'auto' ? 'auto' : process.env.MODE === 'true';
const flag = tuneScavenger(mode, Number(process.env.CPUS));
const keep = [];
for (let i = 0; i < 3e6; i++) { const o = { a: i, b: 'x' + i, c: [i] }; if (i % 10 === 0) keep.push(o); if (keep.length > 50000) keep.length = 0; }
console.log('RESULT ' + JSON.stringify({ flag: flag ?? null }));
`;

/** Runs the workload with tuneScavenger(mode, cpus); returns the flag it set and the scavenges' helper time. */
async function scavenges(mode: 'auto' | boolean, cpus: number, nodeFlags: string[] = []): Promise<{ flag: string | null; count: number; helperMs: number; helped: number }> {
  const out = await runChild(SCAVENGER_CHILD, { MODE: String(mode), CPUS: String(cpus) }, [...nodeFlags, '--trace-gc-nvp']);
  const result = /^RESULT (.*)$/m.exec(out);
  assert.ok(result, out.slice(-2000));
  let count = 0;
  let helperMs = 0;
  let helped = 0;
  for (const line of out.split('\n')) {
    if (!/\bgc=s\b/.test(line)) continue;
    count++;
    const ms = Number(/\bbackground\.scavenge\.parallel=([0-9.]+)/.exec(line)?.[1] ?? 0);
    helperMs += ms;
    if (ms > 0) helped++;
  }
  return { ...(JSON.parse(result[1]!) as { flag: string | null }), count, helperMs, helped };
}

/** tuneScavenger(false, 2) without node flags: both scavenger tests compare against it. */
const scavengerOff = once(() => scavenges(false, 2));

/**
 * `many` used V8's helper threads in (nearly) all its scavenges, `few` only in
 * those before the flag was set (while the child started). Counted, not timed: the
 * helpers' time grows on a busy machine, where they wait for a core (a run
 * without them once summed 134 ms of it from its first scavenges alone).
 */
function helpedMore(many: { helped: number; count: number; helperMs: number }, few: { helped: number; count: number; helperMs: number }, what: string): void {
  assert.ok(many.count >= 10 && few.count >= 10, `${what}: too few scavenges (${many.count}, ${few.count})`);
  // Measured: 44–45 of about 45 against none.
  assert.ok(many.helped - few.helped >= 20, `${what}: ${many.helped} of ${many.count} scavenges used helpers (${many.helperMs} ms) against ${few.helped} of ${few.count} (${few.helperMs} ms)`);
}

test('parallelScavenge: false scavenges on the main thread alone, true with V8\'s helpers', async () => {
  const off = await scavengerOff();
  const on = await scavenges(true, 2);
  assert.equal(off.flag, '--no-parallel-scavenge');
  assert.equal(on.flag, '--parallel-scavenge');
  // Measured: about 45 scavenges each, none of them with helpers against 44.
  helpedMore(on, off, 'true against false');
});

test('parallelScavenge auto: off at 2 CPUs or fewer, V8\'s default above; node\'s command line wins', async () => {
  const off = await scavengerOff();
  const two = await scavenges('auto', 2);
  assert.equal(two.flag, '--no-parallel-scavenge');
  const eight = await scavenges('auto', 8);
  assert.equal(eight.flag, null);
  helpedMore(eight, two, 'auto at 8 CPUs against auto at 2');
  const overridden = await scavenges(false, 2, ['--parallel-scavenge']);
  assert.equal(overridden.flag, null);
  helpedMore(overridden, off, 'false under node --parallel-scavenge against false');
});

// tunePretenuring: a child makes batches of objects from one allocation site
// and keeps them alive for a while (what a scavenge inside a batch sees),
// with --trace-pretenuring-statistics, which prints a line for each site V8
// weighs for pretenuring. With the tuning off V8 weighs none.
const PRETENURING_CHILD = `
const { tunePretenuring } = await import(process.env.HEAP_MODULE);
const flag = tunePretenuring(process.env.ENABLED === 'true');
const ring = new Array(400).fill(null);
function batchOf(n) { const b = new Array(n); for (let k = 0; k < n; k++) b[k] = { k, s: 'x', added: [] }; return b; }
for (let i = 0; i < 1500; i++) ring[i % ring.length] = batchOf(500);
console.log('RESULT ' + JSON.stringify({ flag: flag ?? null }));
`;

/** Runs the batches with tunePretenuring(enabled); returns the flag it set and how many allocation sites V8 weighed. */
async function pretenuring(enabled: boolean, nodeFlags: string[] = []): Promise<{ flag: string | null; weighed: number }> {
  const out = await runChild(PRETENURING_CHILD, { ENABLED: String(enabled) }, [...nodeFlags, '--trace-pretenuring-statistics']);
  const result = /^RESULT (.*)$/m.exec(out);
  assert.ok(result, out.slice(-2000));
  const weighed = out.split('\n').filter((l) => l.includes('pretenuring: AllocationSite(')).length;
  return { ...(JSON.parse(result[1]!) as { flag: string | null }), weighed };
}

test('allocationSitePretenuring: false stops V8 pretenuring allocation sites, true leaves it on; node\'s command line wins', async () => {
  // Three children at once: what V8 weighs is counted, not timed.
  const [off, on, overridden] = await Promise.all([pretenuring(false), pretenuring(true), pretenuring(false, ['--allocation-site-pretenuring'])]);
  assert.equal(off.flag, '--no-allocation-site-pretenuring');
  assert.equal(on.flag, '--allocation-site-pretenuring');
  // Measured: 2–8 sites weighed with it on, none off.
  assert.equal(off.weighed, 0, `${off.weighed} sites weighed with pretenuring off`);
  assert.ok(on.weighed > 0, 'no site weighed with pretenuring on');
  assert.equal(overridden.flag, null);
  assert.ok(overridden.weighed > 0, 'node --allocation-site-pretenuring lost to the tuning');
});
