// The benchmark harness end to end at toy sizes: every workload against the
// floor, the floor that stores and Herald (memory store), so that a change to Herald's API or
// protocol that would break `npm run bench` shows up in `npm test`.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

interface Row { workload: string; server: string; rep: number; metrics: Record<string, number> }

/** Runs bench/run.mjs with `args`; resolves with its output once it exited 0. */
async function runBench(args: string[]): Promise<string> {
  const child = spawn(process.execPath, ['bench/run.mjs', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (c: Buffer) => { log += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { log += c.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 0, log);
  return log;
}

/** Runs `body` with a results path in a fresh temporary directory, removed after. */
async function withResultsFile(prefix: string, body: (out: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    await body(join(dir, 'results.md'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Two bench runs at a time: each spends much of its time waiting on its
// children (servers starting and stopping, the first-touch probes), and
// nothing is judged by its figures here; every run has its own servers on
// ports of their own and its own results directory.
describe('the benchmark harness end to end', { concurrency: 2 }, () => {
  test('npm run bench runs every workload at toy sizes and writes its results', () => withResultsFile('herald-bench-smoke-', async (out) => {
    const args = [
      '--servers', 'floor,floor-stored,herald-memory', '--reps', '1', '--loadgens', '1',
      '--w1-conns', '40', '--w2-people', '20', '--w2-total', '400', '--w2-warmup', '40', '--w2-batch', '20',
      '--w3-broadcasts', '2', '--w4-duration-ms', '300', '--w4-rate', '500', '--w4-tick-ms', '10', '--wait-timeout-ms', '20000', '--out', out,
      // One process prices a first touch before the runs and one after, not three each.
      '--first-touch-probes', '1',
    ];
    const log = await runBench(args);
    const json = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8')) as { rows: Row[] };
    for (const server of ['floor', 'floor-stored', 'herald-memory']) {
      for (const w of ['w1', 'w2', 'w3', 'w4']) {
        const row = json.rows.find((r) => r.server === server && r.workload === w);
        assert.ok(row, `no ${w} result for ${server}\n${log}`);
        if (w === 'w1') assert.equal(row.metrics.failed, 0, `${server}: failed connections\n${log}`);
        else assert.equal(row.metrics.delivered, 1, `${server} ${w}: not everything delivered\n${log}`);
      }
    }
    const md = readFileSync(out, 'utf8');
    assert.match(md, /## Targets \(issue 7\)/);
    assert.match(md, /Herald \(memory\)/);
    // The floor that stores is described, and its figures carry a ratio to the floor's.
    assert.match(md, /- floor, storing \(`bench\/servers\/floor-stored\.mjs`/);
    assert.match(md, /\| connect rate \(conn\/s\) \| [^|]+ \| \*\*[\d,]+\*\* \([^)]+\) ×[\d.]+ \|/);
    assert.match(md, /- W4: 500 msg\/s for 300 ms \(set\), one request every 10 ms/);
    // Measured by fresh processes before and after the runs: a price in µs, not a dash.
    const touch = /- memory touched for the first time: ([\d.]+) µs a page before the runs, ([\d.]+) after/.exec(md);
    assert.ok(touch && Number(touch[1]) > 0 && Number(touch[2]) > 0, `no first-touch price in the machine section:\n${md.slice(0, 1500)}`);
    assert.match(md, /MiB Buffers, median of 1\)/);
    // 300 ms at one request every 10 ms (the sender's default tick, 5 ms, would make about 60).
    for (const server of ['floor', 'herald-memory']) {
      const requests = json.rows.find((r) => r.server === server && r.workload === 'w4')?.metrics.requests ?? -1;
      assert.ok(requests > 0 && requests <= 32, `${server}: ${requests} W4 requests in 300 ms`);
    }
  }));

  test('--herald-ttl 0 sends live-only notifications, all delivered, and does not judge the targets', () => withResultsFile('herald-bench-ttl-', async (out) => {
    const args = [
      '--servers', 'floor,herald-memory', '--workloads', 'w2', '--reps', '1', '--loadgens', '1',
      '--w2-people', '20', '--w2-total', '400', '--w2-warmup', '40', '--w2-batch', '20', '--herald-ttl', '0', '--wait-timeout-ms', '20000', '--out', out, '--first-touch-probes', '0',
    ];
    const log = await runBench(args);
    const json = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8')) as { rows: Row[] };
    const row = json.rows.find((r) => r.server === 'herald-memory' && r.workload === 'w2');
    assert.equal(row?.metrics.delivered, 1, log);
    const md = readFileSync(out, 'utf8');
    assert.match(md, /Herald notifications carry `"ttl": 0`/);
    assert.doesNotMatch(md, /memory touched for the first time/, '--first-touch-probes 0 prices nothing');
    assert.match(md, /W2 throughput ≥ 1\.0× floor \(memory store\) \|[^\n]*not judged/);
    // The repetition's ratio is printed, but not counted as met or not.
    assert.match(md, /W2 throughput ≥ 1\.0× floor \(memory store\) \|[^\n]*not judged \(`--herald-ttl`\) \| [\d.]+× \|/);
  }));

  test('--server-node-flags starts every server with those node flags and does not judge the targets', () => withResultsFile('herald-bench-flags-', async (out) => {
    const args = [
      '--servers', 'floor,herald-memory', '--workloads', 'w2', '--reps', '1', '--loadgens', '1',
      '--w2-people', '20', '--w2-total', '400', '--w2-warmup', '40', '--w2-batch', '20', '--wait-timeout-ms', '20000', '--out', out, '--first-touch-probes', '0',
      // --print-flag-values: V8 lists every flag's value as it starts, one `--name=value` a line; once per server process.
      '--server-node-flags=--max-semi-space-size=4 --print-flag-values',
    ];
    const log = await runBench(args);
    assert.equal(log.match(/^--max-semi-space-size=4$/gm)?.length, 2, log.slice(0, 2000));
    const md = readFileSync(out, 'utf8');
    assert.match(md, /Every server ran with the node flags `--max-semi-space-size=4 --print-flag-values`/);
    assert.match(md, /W2 throughput ≥ 1\.0× floor \(memory store\) \|[^\n]*not judged \(`--server-node-flags`\)/);
  }));

  test('--pin 0:1 runs every server thread on CPU 0 and the clients on CPU 1, and does not judge the targets', () => withResultsFile('herald-bench-pin-', async (out) => {
    const args = [
      '--servers', 'floor,herald-memory', '--workloads', 'w2', '--reps', '1', '--loadgens', '1',
      '--w2-people', '20', '--w2-total', '400', '--w2-warmup', '40', '--w2-batch', '20', '--wait-timeout-ms', '20000', '--out', out, '--first-touch-probes', '0',
      '--pin', '0:1',
    ];
    const log = await runBench(args);
    const json = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8')) as { rows: Array<Row & { metrics: { pinnedTo?: { server: string; clients: string } } }> };
    for (const server of ['floor', 'herald-memory']) {
      const row = json.rows.find((r) => r.server === server && r.workload === 'w2');
      assert.equal(row?.metrics.delivered, 1, log);
      // Read back from /proc at the end of the session: every thread of the server (V8's helpers too) on CPU 0 only.
      assert.deepEqual(row?.metrics.pinnedTo, { server: '0', clients: '1 / 1' }, `${server}\n${log}`);
    }
    const md = readFileSync(out, 'utf8');
    assert.match(md, /\*\*Pinned\*\* \(`--pin 0:1`\)/);
    assert.match(md, /W2 throughput ≥ 1\.0× floor \(memory store\) \|[^\n]*not judged \(`--pin`\)/);
  }));

  test('--pin refuses what is not two CPU lists', async () => {
    const child = spawn(process.execPath, ['bench/run.mjs', '--pin', '0', '--out', '/dev/null'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.notEqual(code, 0);
    assert.match(err, /pin: expected SERVER_CPUS:CLIENT_CPUS as taskset lists \(0:1, 0:1-3\), got 0/);
  });

  test('--heap-promoted writes each measured phase\'s profile and its summary per unit into --profiles-dir', () => withResultsFile('herald-bench-heap-', async (out) => {
    const profiles = join(out, '..', 'profiles');
    const args = [
      '--servers', 'herald-memory', '--workloads', 'w1', '--reps', '1', '--loadgens', '1',
      '--w1-conns', '200', '--wait-timeout-ms', '20000', '--heap-promoted', '--profiles-dir', profiles, '--out', out, '--first-touch-probes', '0',
    ];
    const log = await runBench(args);
    const files = readdirSync(profiles);
    const heap = files.find((f) => /^herald-memory-connect200-\d+\.heapprofile$/.test(f));
    assert.ok(heap, `no W1 heap profile among ${files.join(', ')}\n${log}`);
    const profile = JSON.parse(readFileSync(join(profiles, heap), 'utf8')) as { head: { children: unknown[] } };
    assert.ok(profile.head.children.length > 0, 'an empty profile');
    const summary = readFileSync(join(profiles, heap.replace(/\.heapprofile$/, '.heap.txt')), 'utf8');
    assert.match(summary, /^outlived the young collections: [\d.]+ B per connection \(200 connections;/m);
    // Each of the 200 tabs is kept, so the tab object itself outlived the young collections.
    assert.match(summary, /^\s+[\d.]+\s+Connection dist\/server\/gateway\/connection\.js:\d+$/m);
  }));
});
