// The bench's load generator (bench/loadgen.mjs) before a measured phase:
// its reset collects the garbage that connecting and the warm-up left, so
// that no collection of its own pauses it while it measures, and that
// collection is not listed among the phase's pauses in a timeline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { forkBenchChild } from './helpers/bench-child.js';

/** Forks a load generator, as the bench's pool does (typed arrays cross its channel as they are). */
const startLoadgen = (execArgv: string[]) => forkBenchChild('bench/loadgen.mjs', { execArgv, serialization: 'advanced' });

test('a load generator collects its garbage at reset, and a timeline does not count that collection as the phase\'s', async () => {
  const gen = await startLoadgen(['--expose-gc']);
  try {
    assert.deepEqual(await gen.call('reset', { timeline: true, expected: 300_000 }), { collected: true });
    // The gc observer hears of a pause a moment after it: give it that moment.
    await sleep(200);
    const got = await gen.call('wait', { count: 0, timeoutMs: 1000 }) as { received: number; gc: unknown[]; majorGcs: number };
    assert.equal(got.received, 0);
    assert.ok(got.majorGcs >= 1, `a full collection ran (${got.majorGcs})`);
    assert.deepEqual(got.gc, [], 'the collection at reset is not listed');
  } finally {
    gen.child.kill();
  }
  // Without --expose-gc (a generator started by hand) it says it could not.
  const plain = await startLoadgen([]);
  try {
    assert.deepEqual(await plain.call('reset', {}), { collected: false });
  } finally {
    plain.child.kill();
  }
});
