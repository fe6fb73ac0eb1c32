// bench/results.md: the machine, the versions, the sizes, one table per
// workload (median, min–max, ratio to the floor) and the targets of issue 7.
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { summary } from './stats.mjs';
import { FIRST_TOUCH_PROBE } from './page-cost.mjs';

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(new URL(`../../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return '?';
  }
}

export function machineInfo() {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  return {
    date: new Date().toISOString(),
    nproc: os.availableParallelism(),
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    cpu: os.cpus()[0]?.model ?? '?',
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    herald: JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version,
    commit: git.status === 0 ? git.stdout.trim() : '?',
    packages: Object.fromEntries(['ws', 'socket.io', 'socket.io-client', 'fastify', 'better-sqlite3'].map((p) => [p, pkgVersion(p)])),
  };
}

const SERVER_LABEL = {
  floor: 'floor (ws)', 'floor-stored': 'floor, storing (ws)', socketio: 'Socket.IO', 'herald-memory': 'Herald (memory)', 'herald-sqlite': 'Herald (SQLite)',
};
/** Servers whose figures also carry their ratio to the floor's: Herald's, and the floor that stores. */
const withRatio = (server) => server.startsWith('herald') || server === 'floor-stored';

// The server's garbage-collection pauses over a measured phase (W2, W4).
const GC_ROWS = [
  ['gcPerSec', 'server GC pauses', '/s', 1],
  ['gcPct', 'server paused by GC', '%', 1],
  ['gcMaxMs', 'longest GC pause', 'ms', 1],
];

// [key, label, unit, decimals]
const METRICS = {
  w1: [
    ['connectRate', 'connect rate', 'conn/s', 0],
    ['rssPerConn', 'RSS per connection', 'B', 0],
    ['heapPerConn', 'heap per connection', 'B', 0],
    ['rssTotal', 'server RSS with all connected', 'B', 0, (x) => x / 2 ** 20, 'MiB'],
    ['serverCpuMs', 'server CPU while connecting', 'ms', 0],
    ['clientCpuMs', 'clients CPU (all generators)', 'ms', 0],
    ['serverCpuPct', 'server CPU busy', '%', 0],
    ['clientMaxCpuPct', 'busiest load generator CPU', '%', 0],
    ['serverWaitPct', 'server waiting for a CPU', '%', 1],
    ['othersCpuPct', 'CPU of other processes and the kernel (all CPUs)', '%', 1],
    ['stealPct', 'CPU taken by the hypervisor (all CPUs)', '%', 1],
    ['failed', 'failed connections', '', 0],
  ],
  w2: [
    ['msgPerSec', 'delivered (first send → last receipt)', 'msg/s', 0],
    ['serverCpuUsPerMsg', 'server CPU per message', 'µs', 2],
    ['p50Ms', 'latency p50', 'ms', 1],
    ['p99Ms', 'latency p99', 'ms', 1],
    ['serverCpuPct', 'server CPU busy', '%', 0],
    ['clientMaxCpuPct', 'busiest load generator CPU', '%', 0],
    ['serverWaitPct', 'server waiting for a CPU', '%', 1],
    ['othersCpuPct', 'CPU of other processes and the kernel (all CPUs)', '%', 1],
    ['stealPct', 'CPU taken by the hypervisor (all CPUs)', '%', 1],
    ['senderCpuPct', 'sender CPU', '%', 0],
    ...GC_ROWS,
    ['delivered', 'delivered', '%', 1, (x) => x * 100],
  ],
  w3: [
    ['deliveriesPerSec', 'deliveries', '/s', 0],
    ['reachAllMs', 'time to reach all, per broadcast', 'ms', 1],
    ['answerMs', 'HTTP answer to the broadcast request, median', 'ms', 1],
    ['serverCpuUsPerDelivery', 'server CPU per delivery', 'µs', 2],
    ['serverCpuPct', 'server CPU busy', '%', 0],
    ['clientMaxCpuPct', 'busiest load generator CPU', '%', 0],
    ['serverWaitPct', 'server waiting for a CPU', '%', 1],
    ['othersCpuPct', 'CPU of other processes and the kernel (all CPUs)', '%', 1],
    ['stealPct', 'CPU taken by the hypervisor (all CPUs)', '%', 1],
    ['delivered', 'delivered', '%', 1, (x) => x * 100],
  ],
  w4: [
    ['p50Ms', 'latency p50', 'ms', 2],
    ['p99Ms', 'latency p99', 'ms', 2],
    ['maxMs', 'latency max', 'ms', 1],
    ['serverCpuPct', 'server CPU busy', '%', 0],
    ['clientMaxCpuPct', 'busiest load generator CPU', '%', 0],
    ['serverWaitPct', 'server waiting for a CPU', '%', 1],
    ['othersCpuPct', 'CPU of other processes and the kernel (all CPUs)', '%', 1],
    ['stealPct', 'CPU taken by the hypervisor (all CPUs)', '%', 1],
    ...GC_ROWS,
    ['delivered', 'delivered', '%', 1, (x) => x * 100],
  ],
};

const TITLES = {
  w1: 'W1 connections',
  w2: 'W2 unicast throughput',
  w3: 'W3 broadcast',
  w4: 'W4 latency under a steady load',
};

function fmtNum(x, d) {
  if (!Number.isFinite(x)) return '—';
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** Median/min/max of one metric for one server. */
function stat(rows, w, server, key, scale) {
  const xs = rows.filter((r) => r.workload === w && r.server === server).map((r) => r.metrics[key]).map((x) => (scale && Number.isFinite(x) ? scale(x) : x));
  return summary(xs);
}

function table(rows, w, servers) {
  const lines = [];
  lines.push(`| ${['metric', ...servers.map((s) => SERVER_LABEL[s])].join(' | ')} |`);
  lines.push(`| ${['---', ...servers.map(() => '---')].join(' | ')} |`);
  for (const [key, label, unit0, d, scale, unit1] of METRICS[w]) {
    const unit = unit1 ?? unit0;
    const floor = stat(rows, w, 'floor', key, scale);
    const cells = servers.map((s) => {
      const st = stat(rows, w, s, key, scale);
      if (st.n === 0) return '—';
      let cell = `**${fmtNum(st.median, d)}** (${fmtNum(st.min, d)}–${fmtNum(st.max, d)})`;
      if (withRatio(s) && floor.n > 0 && floor.median !== 0 && !['delivered', 'failed'].includes(key) && !key.endsWith('Pct')) {
        cell += ` ×${fmtNum(st.median / floor.median, 2)}`;
      }
      return cell;
    });
    lines.push(`| ${label}${unit ? ` (${unit})` : ''} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

// Issue 7's targets: [workload, metric, server, comparison, bound, text]
const TARGETS = [
  ['w2', 'msgPerSec', 'herald-memory', '>=', 1.0, 'W2 throughput ≥ 1.0× floor (memory store)'],
  ['w2', 'msgPerSec', 'herald-sqlite', '>=', 0.8, 'W2 throughput ≥ 0.8× floor (SQLite store)'],
  ['w3', 'deliveriesPerSec', 'herald-memory', '>=', 1.0, 'W3 throughput ≥ 1.0× floor (memory store)'],
  ['w3', 'deliveriesPerSec', 'herald-sqlite', '>=', 0.8, 'W3 throughput ≥ 0.8× floor (SQLite store)'],
  ['w1', 'rssPerConn', 'herald-memory', '<=', 1.2, 'W1 RSS per connection ≤ 1.2× floor'],
  ['w1', 'connectRate', 'herald-memory', '>=', 0.8, 'W1 connect rate ≥ 0.8× floor'],
  ['w4', 'p99Ms', 'herald-memory', '<=', 1.2, 'W4 p99 ≤ 1.2× floor (memory store)'],
  ['w4', 'p99Ms', 'herald-sqlite', '<=', 1.2, 'W4 p99 ≤ 1.2× floor (SQLite store)'],
];

/**
 * Each target judged on the medians (`ratio`, `met`), and, beside it, the
 * ratio of each repetition to the floor's repetition of the same number
 * (`perRep`, in repetition order): repetitions are interleaved, so those two
 * ran minutes apart at most, and the spread of `perRep` shows how far a
 * verdict stands from the machine's noise. `metReps`: how many of them meet
 * the bound.
 */
export function targetVerdicts(rows) {
  return TARGETS.map(([w, key, server, cmp, bound, text]) => {
    const f = stat(rows, w, 'floor', key).median;
    const h = stat(rows, w, server, key).median;
    const ratio = h / f;
    const meets = (r) => (cmp === '>=' ? r >= bound : r <= bound);
    const met = Number.isFinite(ratio) ? meets(ratio) : null;
    const perRep = pairedRatios(rows, w, server, key);
    // The same figure for the floor that stores, where it ran: what storing alone does to the floor's.
    const storing = { ratio: stat(rows, w, 'floor-stored', key).median / f, perRep: pairedRatios(rows, w, 'floor-stored', key) };
    return { text, ratio, met, floor: f, herald: h, perRep, metReps: perRep.filter(meets).length, storing };
  });
}

/** `server`'s figure over the floor's, repetition by repetition, where both have one. */
function pairedRatios(rows, w, server, key) {
  const floorByRep = new Map(rows.filter((r) => r.workload === w && r.server === 'floor').map((r) => [r.rep, r.metrics[key]]));
  return rows
    .filter((r) => r.workload === w && r.server === server)
    .sort((a, b) => a.rep - b.rep)
    .map((r) => r.metrics[key] / floorByRep.get(r.rep))
    .filter((x) => Number.isFinite(x));
}

/** A first-touch cost, or a dash when the probe failed. */
function fmtTouch(us) {
  return Number.isFinite(us) ? us.toFixed(1) : '—';
}

export function renderMarkdown({ cfg, rows, info, durationS, failures = [] }) {
  const servers = cfg.servers;
  const out = [];
  out.push('# Herald benchmark results');
  out.push('');
  out.push('Written by `npm run bench` (bench/run.mjs; how to read and rerun it: docs/bench.md).');
  out.push('Every figure is the **median** of the repetitions, with (min–max); Herald\'s figures and those of the floor');
  out.push('that stores also carry their ratio to the floor measured in this same run (×1.00 = equal to the floor).');
  out.push('');
  out.push('## Machine');
  out.push('');
  out.push(`- date: ${info.date}; run took ${durationS.toFixed(0)} s${cfg.quick ? ' (**--quick**: reduced sizes)' : ''}`);
  out.push(`- ${info.nproc} CPUs (${info.cpu}), ${info.memGiB} GiB memory, ${info.kernel}`);
  out.push(`- node ${info.node}; herald ${info.herald} (commit ${info.commit}); ${Object.entries(info.packages).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  const loads = rows.map((r) => r.metrics.load1).filter(Number.isFinite);
  if (loads.length) out.push(`- 1-minute load average during the runs: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} (the run's own server, load generators and sender keep up to 4 processes busy on ${info.nproc} CPUs; compare ratios, not absolute figures)`);
  const touch = info.firstTouch;
  if (Number.isFinite(touch?.before) || Number.isFinite(touch?.after)) {
    out.push(`- memory touched for the first time: ${fmtTouch(touch.before)} µs a page before the runs, ${fmtTouch(touch.after)} after (a fresh process writing one byte a page into ${FIRST_TOUCH_PROBE.mib} MiB of new ${FIRST_TOUCH_PROBE.chunkMib} MiB Buffers, median of ${cfg.firstTouchProbes}). Herald (and the floor that stores) writes what it retains into new pages and the floor keeps nothing, so a dear page costs the floor nothing: from about 2 to 35 µs on the bench's virtual machines (docs/bench.md)`);
  }
  out.push('');
  out.push('## Sizes');
  out.push('');
  out.push(`- ${cfg.reps} repetitions, interleaved; ${cfg.loadgens} load-generator processes + 1 sender process; each server a fresh process per run; the generators and the sender serve W1–W3 and are started anew for W4, whose latencies they measure`);
  out.push(`- W1/W3: ${cfg.w1Conns} connections (${cfg.connectConcurrency} handshakes in flight per generator); W3: ${cfg.w3Broadcasts} broadcasts one after another`);
  out.push(`- W2: ${cfg.w2People} people, ${cfg.w2Total} notifications of ~200 bytes, ${cfg.w2Batch} per request, ${cfg.w2Concurrency} requests in flight (after ${cfg.w2Warmup} warm-up)`);
  out.push(`- Herald clients ack as the browser library does: the highest SEQ per stream, about once per ${cfg.ackDelayMs} ms or the longer wait WELCOME asks for the own stream (each wait 0.5–1.5× that; Herald asks its tabs for at most about 250 own-stream acks a second together) and per ${cfg.broadcastAckDelayMs} ms or the longer wait WELCOME asks for the broadcast stream (each wait 0–2× that; Herald asks the tabs of a kind for about 50 broadcast acks a second together)`);
  out.push(`- W4: ${cfg.w4RateUsed ?? '—'} msg/s for ${cfg.w4DurationMs} ms (${cfg.w4Rate > 0 ? 'set' : `${cfg.w4Fraction} × the floor's median W2 rate`}), one request every ${cfg.w4TickMs} ms`);
  if (servers.includes('floor-stored')) {
    out.push('- floor, storing (`bench/servers/floor-stored.mjs`): the floor plus the least that storing needs. It keeps every notification in its person\'s stream with a SEQ, sends SEQ and EPOCH in each frame, takes acks and replays after a cursor, with no auth, no heartbeats and no expiry. Its tabs ack as Herald\'s do, at the same paces. Its figures carry their ratio to the floor too: where storing alone puts a server written straight on `ws`');
  }
  const batch = rows.find((r) => r.workload === 'w2' && r.server.startsWith('herald'));
  if (cfg.heraldTtl !== '') {
    out.push(`- **Herald notifications carry \`"ttl": ${cfg.heraldTtl}\`** (\`--herald-ttl\`), not the server's default${Number(cfg.heraldTtl) === 0 ? ': live only, nothing stored, no SEQ, so the clients have nothing to ack. The targets of issue 7 are for stored notifications; this run measures what storing them costs' : ''}`);
  }
  if (cfg.serverNodeFlags.length > 0) {
    out.push(`- **Every server ran with the node flags \`${cfg.serverNodeFlags.join(' ')}\`** (\`--server-node-flags\`): a run to look into a server, not to judge the targets by`);
  }
  if (cfg.pin) {
    out.push(`- **Pinned** (\`--pin ${cfg.pin.server}:${cfg.pin.clients}\`): every server and all its threads on CPU ${cfg.pin.server}, the load generators, the sender and the runner on CPU ${cfg.pin.clients} (taskset). Each server has its CPUs to itself, so its figures follow its own CPU per message and connection, not how the scheduler shares two cores; the issue's targets are for the machine as it is shared, and are not judged here`);
  }
  if (batch) out.push(`- Herald sends: ${batch.metrics.heraldBatch ? '`POST /api/v1/send/batch` with `"answer":"summary"` (totals, as the floor answers a count) and the same batch size as the floor' : '**one `POST /api/v1/send` per notification** (no batch endpoint), the same number in flight as one floor batch'}`);
  out.push('');
  out.push('## Targets (issue 7)');
  out.push('');
  // With the floor that stores in the run, each target also gives its ratio to the floor, for reference: not judged.
  const storingColumn = servers.includes('floor-stored');
  out.push(`| target | floor | Herald | ratio | met | each repetition against the floor's |${storingColumn ? ' the floor that stores, for reference |' : ''}`);
  out.push(`| --- | --- | --- | --- | --- | --- |${storingColumn ? ' --- |' : ''}`);
  // A run that changes Herald (--herald-ttl), every server (--server-node-flags) or where they run (--pin) prints its ratios unjudged.
  const unjudgedBy = cfg.heraldTtl !== '' ? '--herald-ttl' : cfg.serverNodeFlags.length > 0 ? '--server-node-flags' : cfg.pin ? '--pin' : undefined;
  const judged = unjudgedBy === undefined;
  for (const v of targetVerdicts(rows)) {
    const verdict = v.met === null ? 'not measured'
      : !judged ? `not judged (\`${unjudgedBy}\`)`
        : v.met ? 'yes' : '**no**';
    const ratios = v.perRep.map((r) => `${fmtNum(r, 2)}×`).join(', ');
    const reps = v.perRep.length === 0 ? '—' : judged ? `${ratios} (${v.metReps} of ${v.perRep.length} met)` : ratios;
    const storing = !storingColumn ? ''
      : Number.isFinite(v.storing.ratio) ? ` ${fmtNum(v.storing.ratio, 2)}× (${v.storing.perRep.map((r) => fmtNum(r, 2)).join(', ')}) |` : ' — |';
    out.push(`| ${v.text} | ${fmtNum(v.floor, 2)} | ${fmtNum(v.herald, 2)} | ${fmtNum(v.ratio, 2)}× | ${verdict} | ${reps} |${storing}`);
  }
  out.push('');
  out.push('"met" judges the ratio of the medians. The last column pairs each repetition with the floor\'s of the same');
  out.push('number (both ran in the same round of the interleaved repetitions): its spread is how far the verdict stands');
  out.push('from this machine\'s noise.');
  if (storingColumn) {
    out.push('The last column gives the same ratio for the floor that stores (bench/servers/floor-stored.mjs), median and each');
    out.push('repetition: where storing alone puts a server written straight on `ws`. It judges nothing.');
  }
  for (const w of ['w1', 'w2', 'w3', 'w4']) {
    if (!rows.some((r) => r.workload === w)) continue;
    out.push('');
    out.push(`## ${TITLES[w]}`);
    out.push('');
    out.push(table(rows, w, servers));
  }
  if (failures.length) {
    out.push('');
    out.push('## Runs that did not complete');
    out.push('');
    const seen = new Map();
    for (const f of failures) {
      const key = f.error;
      seen.set(key, [...(seen.get(key) ?? []), f.label]);
    }
    for (const [error, labels] of seen) out.push(`- ${labels.join(', ')}: ${error}`);
  }
  out.push('');
  out.push('CPU percentages are CPU time over the measured wall time (100% = one core); the machine has');
  out.push(`${info.nproc} cores shared by the server, the generators and the sender. "Server waiting for a CPU" is the`);
  out.push('time its event loop was ready to run while other processes had the cores (/proc/<pid>/schedstat);');
  out.push('"CPU of other processes and the kernel" is the machine\'s busy time (/proc/stat) less what the server,');
  out.push('the generators, the sender and the runner used: work the benchmark did not ask for, and interrupts;');
  out.push('"CPU taken by the hypervisor" is the steal time of all the virtual CPUs together (/proc/stat).');
  out.push('');
  return out.join('\n');
}
