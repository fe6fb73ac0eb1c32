// CPU cost of a store's appends themselves, without HTTP or WebSockets: N
// appends of ~200-byte notifications spread over S streams, issued P per turn
// of the event loop (each turn's appends form one write batch, as sends parsed
// in one turn do) in calls of C (`appendMany`, as a /send/batch request of C
// notifications makes; C = 1 calls `append` for each), awaited turn by turn.
// Measures process CPU time (user + system, so SQLite's writes count) per
// append, then the time to reopen the SQLite file and rebuild its state from
// the retained backlog.
//
//   node bench/store-append.mjs [--appends 200000] [--streams 1000] [--per-turn 100]
//       [--per-call 100] [--repeat 3] [--stores memory,sqlite] [--baseline DIR]
//
// Uses the built store (`npm run build`). --baseline DIR adds `sqlite-baseline`,
// the SqliteStore of another build (DIR is a copy of a dist/ folder), measured
// in the same process, interleaved with the others, so the machine's load hits
// both alike. Prints the medians and writes bench/out/store-append.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const { values } = parseArgs({
  options: {
    appends: { type: 'string', default: '200000' },
    streams: { type: 'string', default: '1000' },
    'per-turn': { type: 'string', default: '100' },
    'per-call': { type: 'string', default: '100' },
    repeat: { type: 'string', default: '3' },
    stores: { type: 'string', default: 'memory,sqlite' },
    baseline: { type: 'string' },
  },
});
const appends = Number(values.appends);
const streams = Number(values.streams);
const perTurn = Number(values['per-turn']);
const perCall = Math.max(1, Number(values['per-call']));
const repeat = Number(values.repeat);

const { MemoryStore } = await import(pathToFileURL(join(root, 'dist/server/store/memory-store.js')).href);
const { SqliteStore } = await import(pathToFileURL(join(root, 'dist/server/store/sqlite-store.js')).href);
const impls = new Map();
for (const name of values.stores.split(',')) {
  if (name === 'memory') impls.set(name, { make: (limits) => new MemoryStore(limits) });
  else if (name === 'sqlite') impls.set(name, { Sqlite: SqliteStore });
  else throw new Error(`unknown store ${name}`);
}
if (values.baseline) {
  const { SqliteStore: Baseline } = await import(pathToFileURL(resolve(values.baseline, 'server/store/sqlite-store.js')).href);
  impls.set('sqlite-baseline', { Sqlite: Baseline });
}

// A notification of about 200 bytes, as the Notifier stores it (JSON text).
function notification(i) {
  return JSON.stringify({
    TYPE: 'MESSAGE', TITLE: `Платіж отримано #${i}`,
    TEXT: `Subscriber ${i % 10_000} paid 100.00 UAH for tariff "Home 100"; balance 250.00 UAH.<br/>Ticket ${i}`,
  });
}

const cpuMs = (since) => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};
const sysMs = (since) => process.cpuUsage(since).system / 1000;

async function run(name, impl) {
  const dir = mkdtempSync(join(os.tmpdir(), 'herald-bench-append-'));
  const file = join(dir, 's.sqlite');
  const limits = { maxPerStream: 1000 };
  const open = () => (impl.make ? impl.make(limits) : new impl.Sqlite({ file, ...limits }));
  const now = Date.now();
  const expiresAt = now + 86_400_000;
  const inputs = Array.from({ length: appends }, (_, i) => ({ stream: `admin:${1 + (i % streams)}`, json: notification(i), expiresAt }));
  let store = open();
  const wall0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < appends; i += perTurn) {
    const turn = [];
    const end = Math.min(appends, i + perTurn);
    for (let j = i; j < end; j += perCall) {
      turn.push(perCall === 1 ? store.append(inputs[j], now) : store.appendMany(inputs.slice(j, Math.min(end, j + perCall)), now));
    }
    await Promise.all(turn);
  }
  const cpu = cpuMs(cpu0);
  const sys = sysMs(cpu0);
  const wall = Number(process.hrtime.bigint() - wall0) / 1e6;
  const result = {
    store: name, cpuUsPerAppend: (cpu * 1000) / appends, sysUsPerAppend: (sys * 1000) / appends, wallUsPerAppend: (wall * 1000) / appends,
  };
  if (impl.Sqlite) {
    await store.close();
    const r0 = process.hrtime.bigint();
    const rc0 = process.cpuUsage();
    store = open();
    await store.head('admin:1');
    result.reopenCpuMs = cpuMs(rc0);
    result.reopenWallMs = Number(process.hrtime.bigint() - r0) / 1e6;
    const h = await store.head('admin:1');
    if (h.lastSeq !== Math.ceil(appends / streams)) throw new Error(`${name}: lastSeq ${h.lastSeq} after reopen`);
  }
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return result;
}

const runs = new Map([...impls.keys()].map((k) => [k, []]));
for (let r = 0; r < repeat; r++) {
  for (const [name, impl] of impls) {
    globalThis.gc?.();
    runs.get(name).push(await run(name, impl));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [...runs].map(([store, rs]) => ({
  store,
  cpuUsPerAppend: median(rs.map((x) => x.cpuUsPerAppend)),
  sysUsPerAppend: median(rs.map((x) => x.sysUsPerAppend)),
  wallUsPerAppend: median(rs.map((x) => x.wallUsPerAppend)),
  reopenCpuMs: rs[0].reopenCpuMs === undefined ? undefined : median(rs.map((x) => x.reopenCpuMs)),
  reopenWallMs: rs[0].reopenWallMs === undefined ? undefined : median(rs.map((x) => x.reopenWallMs)),
  runs: rs,
}));
const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg().map((l) => l.toFixed(2)) };
console.log(`\n${appends} appends over ${streams} streams, ${perTurn} per turn of the loop in calls of ${perCall}, median of ${repeat}; ${machine.cpus} × ${machine.cpu}, node ${machine.node}, load ${machine.loadavg.join(' ')}`);
console.log('| store | CPU µs/append | of which system | wall µs/append | reopen: CPU ms | reopen: wall ms |');
console.log('| --- | --- | --- | --- | --- | --- |');
const f = (x, d) => (x === undefined ? '—' : x.toFixed(d));
for (const r of results) console.log(`| ${r.store} | ${f(r.cpuUsPerAppend, 2)} | ${f(r.sysUsPerAppend, 2)} | ${f(r.wallUsPerAppend, 2)} | ${f(r.reopenCpuMs, 0)} | ${f(r.reopenWallMs, 0)} |`);
mkdirSync(join(root, 'bench/out'), { recursive: true });
writeFileSync(join(root, 'bench/out/store-append.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, appends, streams, perTurn, perCall, results }, null, 2)}\n`);
