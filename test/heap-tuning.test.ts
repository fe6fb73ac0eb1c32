// tuneHeap (src/server/heap-tuning.ts) on real V8: a child process keeps a
// live heap and promotes garbage at a steady pace, and counts its full
// collections. Set after start-up, the growing percent must change how often
// they come; one given on node's own command line must win.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('../src/server/heap-tuning.ts', import.meta.url));

// 300,000 live objects, then 6,000 batches of 1,000 objects, each kept
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
for (let i = 0; i < 6000; i++) {
  ring[i % 400] = Array.from({ length: 1000 }, (_, k) => ({ k, s: 'x' + k }));
  if (i % 10 === 0) await new Promise(setImmediate);
}
await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify({ applied, majors, live: globalThis.live.length }));
`;

/** Runs the workload with tuneHeap(percent); returns what the child saw. */
async function fullCollections(percent: number, nodeFlags: string[] = []): Promise<{ applied: boolean; majors: number }> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', '--input-type=module', '-e', CHILD], {
    env: { ...process.env, HEAP_MODULE: MODULE, PERCENT: String(percent) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, out);
  return JSON.parse(out) as { applied: boolean; majors: number };
}

test('the growing percent set after start-up changes how often V8 runs a full collection', async () => {
  const low = await fullCollections(10);
  const high = await fullCollections(300);
  assert.deepEqual([low.applied, high.applied], [true, true]);
  // Measured: 15–16 against 2.
  assert.ok(low.majors >= 3 * Math.max(1, high.majors), `10%: ${low.majors} full collections, 300%: ${high.majors}`);
});

test('a --heap-growing-percent on node\'s command line wins, and 0 leaves V8 alone', async () => {
  const overridden = await fullCollections(300, ['--heap-growing-percent=10']);
  const high = await fullCollections(300);
  assert.equal(overridden.applied, false);
  assert.ok(overridden.majors >= 3 * Math.max(1, high.majors), `command line 10%: ${overridden.majors}, 300%: ${high.majors}`);
  assert.equal((await fullCollections(0)).applied, false);
});
