// How long the SQLite store holds up the event loop under a steady write
// load, without HTTP or WebSockets: `--per-tick` appends of ~200-byte
// notifications every `--tick-ms` (55 per 5 ms = W4's 11,000 a second) for
// `--seconds`, spread over 1,000 streams. Reports each batch's commit latency
// (appendMany called → resolved) and the event loop's delay (p99, max): a WAL
// checkpoint run on the event loop shows as a max of 6–17 ms here.
//
//   node bench/store-stall.mjs [--seconds 5] [--per-tick 55] [--tick-ms 5] [--dist DIR]
//                              [--wal-sync-ms N] [--checkpoint-bytes N]
//
// Uses the built store (`npm run build`); --dist DIR measures another build's
// (a copy of its dist/ folder), for a before/after.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    'per-tick': { type: 'string', default: '55' },
    'tick-ms': { type: 'string', default: '5' },
    dist: { type: 'string', default: join(root, 'dist') },
    // The store's own options, to see what the background WAL fsync and the checkpoints cost.
    'wal-sync-ms': { type: 'string' },
    'checkpoint-bytes': { type: 'string' },
  },
});
const dist = resolve(values.dist);
const { SqliteStore } = await import(pathToFileURL(join(dist, 'server/store/sqlite-store.js')).href);
const dir = mkdtempSync(join(tmpdir(), 'herald-stall-'));
const store = new SqliteStore({
  file: join(dir, 'herald.sqlite'),
  maxPerStream: 1000,
  ...(values['wal-sync-ms'] === undefined ? {} : { walSyncMs: Number(values['wal-sync-ms']) }),
  ...(values['checkpoint-bytes'] === undefined ? {} : { checkpointBytes: Number(values['checkpoint-bytes']) }),
});
const body = JSON.stringify({ TYPE: 'MESSAGE', TITLE: 'Payment received', TEXT: 'x'.repeat(150), t: 1 });
const perTick = Number(values['per-tick']);
const latencies = [];
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
let appends = 0;
const t0 = performance.now();
try {
  while (performance.now() - t0 < Number(values.seconds) * 1000) {
    const started = performance.now();
    const inputs = Array.from({ length: perTick }, () => ({ stream: `admin:${(appends++ % 1000) + 1}`, json: body, expiresAt: Date.now() + 3_600_000 }));
    store.appendMany(inputs, Date.now()).then(() => latencies.push(performance.now() - started));
    await new Promise((r) => setTimeout(r, Number(values['tick-ms'])));
  }
} finally {
  loop.disable();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.floor(p * (latencies.length - 1))].toFixed(2);
console.log(`${dist}: ${appends} appends in ${latencies.length} batches`);
console.log(`  commit latency: p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, p99.9 ${q(0.999)} ms, max ${q(1)} ms`);
console.log(`  event loop delay: p99 ${(loop.percentile(99) / 1e6).toFixed(1)} ms, max ${(loop.max / 1e6).toFixed(1)} ms`);
if (store.checkpointer) {
  const c = store.checkpointer;
  // catchUps and holds are counted from the thirty-third round's build on.
  const caught = c.catchUps === undefined ? '' : `, of which ${c.catchUps} catch-ups, ${c.holds} of them holding the commits`;
  console.log(`  WAL checkpoints by the worker thread: ${c.checkpoints}${caught}`);
}
