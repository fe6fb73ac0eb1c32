// bench/timeline-summary.mjs on a timeline as `npm run bench -- --timeline`
// writes it: a slow notification counts as waiting for a load generator's
// garbage collection only when the generator that received it paused while
// it was in flight, and for the server's when the server did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('the timeline summary tells the server\'s and each load generator\'s GC pauses apart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-timeline-'));
  try {
    // 100 notifications sent 1 ms apart, 1 ms each, except three of 10 ms:
    // #10 (generator 0) while generator 0 paused, #20 (generator 1) while
    // generator 0 paused, #30 (generator 0) while the server paused.
    const sentAt = Array.from({ length: 100 }, (_, i) => 1000 + i);
    const latency = sentAt.map((_, i) => (i === 10 || i === 20 || i === 30 ? 10 : 1));
    const client = sentAt.map((_, i) => (i === 20 ? 1 : i % 2 === 0 ? 0 : 1));
    const timeline = {
      server: 'herald-memory', phase: 'steady', sentAt, latency, client,
      gc: [[1032, 2, 1], [1070, 1, 4]],
      clientGc: [[[1012, 3, 1], [1022, 3, 1]], [[1090, 1, 1]]],
    };
    const file = join(dir, 't.timeline.json');
    writeFileSync(file, JSON.stringify(timeline));
    const out = execFileSync(process.execPath, ['bench/timeline-summary.mjs', file, '0'], { encoding: 'utf8' });
    assert.match(out, /at or above p99: 3, of which 1 \(33%\) were in flight during a pause/);
    // Named by node's kinds (perf_hooks constants): 1 minor, 4 major.
    assert.match(out, /GC: 2 pauses, 3 ms in all \([\d.]+% of the time\); 1 minor, 1 major, 0 incremental, 0 weak callbacks/);
    assert.match(out, /load generators' GC: 3 pauses, 7 ms in all; 1 \(33%\) of those at or above p99 were in flight during a pause of the generator that received them/);

    // A timeline from before the generators' pauses were recorded still reads.
    writeFileSync(file, JSON.stringify({ server: 'floor', phase: 'steady', sentAt, latency, gc: [] }));
    const old = execFileSync(process.execPath, ['bench/timeline-summary.mjs', file, '0'], { encoding: 'utf8' });
    assert.match(old, /at or above p99: 3, of which 0 \(0%\)/);
    assert.doesNotMatch(old, /load generators' GC/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
