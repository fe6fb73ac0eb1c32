// The four workloads. Each run starts a fresh server process, fresh load
// generators and a sender, measures, and stops them all (also on error).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startChild, stopChild, cpuMs, runDelayMs, machineCpuMs, allowedCpus } from './proc.mjs';
import { perfRecord, summarisePerf } from './perf.mjs';
import { summariseHeapProfile } from './heap.mjs';
import { mergeSorted, quantileSorted } from './stats.mjs';

const BENCH = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where --cpu-prof, --perf, --heap-promoted and --timeline write: --profiles-dir, or bench/profiles. */
function profilesDir(cfg) {
  return cfg.profilesDir ? resolve(cfg.profilesDir) : join(BENCH, 'profiles');
}

/** Starts the server `name` (floor, floor-stored, socketio, herald-memory, herald-sqlite). */
async function startServer(name, cfg) {
  // --server-node-flags: the same node/V8 flags for every server (GC or JIT traces, heap sizes).
  const execArgv = ['--expose-gc', ...cfg.serverNodeFlags];
  let cwd;
  const cpus = cfg.pin?.server;
  if (cfg.perf) {
    // --perf: V8 logs where it puts each piece of JIT code (jit-<pid>.dump,
    // in the working directory), so that `perf inject --jit` names the JS
    // functions right even where V8 reused an address.
    execArgv.push('--perf-prof');
    cwd = join(profilesDir(cfg), `jit-${name}-${Date.now()}`);
    mkdirSync(cwd, { recursive: true });
  }
  if (name === 'floor') return { ...(await startChild(name, join(BENCH, 'servers/floor.mjs'), { execArgv, cwd, cpus })), kind: 'floor' };
  if (name === 'floor-stored') return { ...(await startChild(name, join(BENCH, 'servers/floor-stored.mjs'), { execArgv, cwd, cpus })), kind: 'floor-stored' };
  if (name === 'socketio') return { ...(await startChild(name, join(BENCH, 'servers/socketio.mjs'), { execArgv, cwd, cpus })), kind: 'socketio' };
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  const env = {
    HERALD_STORE: name === 'herald-sqlite' ? 'sqlite' : 'memory',
    HERALD_DATA_DIR: dataDir,
    HERALD_SECRET: randomBytes(32).toString('hex'),
    HERALD_API_TOKEN: randomBytes(24).toString('hex'),
  };
  const s = await startChild(name, join(BENCH, 'servers/herald.mjs'), { execArgv, env, cwd, cpus });
  const srv = { ...s, kind: 'herald', dataDir };
  if (name === 'herald-sqlite' && !/sqlite/i.test(s.ready.storeClass)) {
    await stopServer(srv, cfg);
    throw new Error(`HERALD_STORE=sqlite built a ${s.ready.storeClass}: the SQLite store is not wired in yet`);
  }
  return srv;
}

async function stopServer(srv, cfg) {
  if (!srv) return;
  await stopChild(srv, 3_000);
  if (srv.dataDir) rmSync(srv.dataDir, { recursive: true, force: true });
}

/**
 * Does this Herald take a batch of different notifications in one request
 * (POST /api/v1/send/batch {"messages":[{"to":…,"message":…}, …]}), as the
 * floor's /send does? Probed with one live-only notification to nobody.
 */
async function heraldHasBatch(srv, cfg) {
  if (cfg.heraldBatch === 'on') return true;
  if (cfg.heraldBatch === 'off') return false;
  const res = await fetch(`${srv.ready.http}/api/v1/send/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${srv.ready.apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ to: { aid: 999_999_999 }, message: { TYPE: 'MESSAGE', TEXT: 'probe' }, ttl: 0 }], answer: 'summary' }),
  });
  const text = await res.text();
  if (res.ok) return true;
  if (res.status !== 404) console.warn(`  POST /api/v1/send/batch answered ${res.status} ${text.slice(0, 200)}: sending one notification per request`);
  return false;
}

// Load generators and the sender, started once and reused by every session.
let thePool = null;

async function pool(cfg) {
  if (thePool && [...thePool.gens, thePool.sender].every((c) => c.child.exitCode === null && c.child.signalCode === null)) return thePool;
  await closePool();
  const gens = [];
  // --expose-gc: each generator collects its garbage before a measured phase (loadgen.mjs, reset).
  for (let k = 0; k < cfg.loadgens; k++) gens.push(await startChild(`loadgen${k}`, join(BENCH, 'loadgen.mjs'), { cpus: cfg.pin?.clients, execArgv: ['--expose-gc'] }));
  const sender = await startChild('sender', join(BENCH, 'sender.mjs'), { cpus: cfg.pin?.clients });
  thePool = { gens, sender };
  return thePool;
}

/** Stops the load generators and the sender (end of the run). */
export async function closePool() {
  const p = thePool;
  thePool = null;
  if (p) await Promise.allSettled([...p.gens, p.sender].map((c) => stopChild(c)));
}

function split(ids, parts) {
  const out = Array.from({ length: parts }, () => []);
  const per = Math.ceil(ids.length / parts);
  ids.forEach((id, i) => out[Math.floor(i / per)].push(id));
  return out;
}

function range(n) {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/**
 * One measured session: server + load generators (+ sender), `n` clients
 * connected (ids 1..n, split in blocks), then `body(ctx)`; everything stopped after.
 */
async function session(name, cfg, n, body) {
  let srv = null;
  let gens = [];
  let sender = null;
  try {
    srv = await startServer(name, cfg);
    ({ gens, sender } = await pool(cfg));
    const heraldBatch = srv.kind === 'herald' ? await heraldHasBatch(srv, cfg) : false;
    const ttl = srv.kind === 'herald' && cfg.heraldTtl !== '' ? Number(cfg.heraldTtl) : undefined;
    await sender.call('setup', { kind: srv.kind, http: srv.ready.http, apiToken: srv.ready.apiToken, heraldBatch, ttl });
    const shares = split(range(n), gens.length);
    const tokens = srv.kind === 'herald' ? await Promise.all(shares.map((ids) => srv.call('tokens', { ids }, 120_000))) : [];
    const wsUrl = srv.kind === 'herald' ? `${srv.ready.ws.replace(/\/$/, '')}/ws/admin` : srv.ready.ws;
    const mem0 = await srv.call('mem');
    const pids = { server: srv.pid, clients: gens.map((g) => g.pid), sender: sender.pid };
    const cpu0 = cpuOf(pids);
    const conns = await profiled(srv, cfg, `connect${n}`, () => Promise.all(gens.map((g, k) => g.call('connect', {
      kind: srv.kind, url: wsUrl, ids: shares[k], tokens: tokens[k], concurrency: cfg.connectConcurrency, ackDelay: cfg.ackDelayMs, broadcastAckDelay: cfg.broadcastAckDelayMs,
    }, 300_000))), () => ({ count: n, unit: 'connection' }));
    const cpu1 = cpuOf(pids);
    const mem1 = await srv.call('mem');
    const opened = conns.reduce((a, c) => a + c.opened, 0);
    const failed = conns.reduce((a, c) => a + c.failed, 0);
    const errors = conns.flatMap((c) => c.errors);
    if (failed > 0) console.warn(`  ${name}: ${failed} of ${n} connections failed: ${errors.slice(0, 3).join('; ')}`);
    const connect = {
      opened, failed, ms: Math.max(...conns.map((c) => c.t1)) - Math.min(...conns.map((c) => c.t0)),
      mem0, mem1, cpu: cpuDelta(cpu0, cpu1), shares: shares.map((s, k) => ({ ids: s, opened: conns[k].opened })),
    };
    const load1 = loadavg()[0];
    const result = await body({ srv, gens, sender, pids, connect, heraldBatch });
    // The box may be shared: keep the 1-minute load average next to each figure.
    const pinnedTo = cfg.pin ? { server: allowedCpus(srv.pid), clients: [...gens, sender].map((c) => allowedCpus(c.pid)).join(' / ') } : undefined;
    for (const m of Object.values(result)) {
      m.load1 = Math.max(load1, loadavg()[0]);
      // --pin: the CPUs every thread was allowed at the end of the session, read back from /proc.
      if (pinnedTo) m.pinnedTo = pinnedTo;
    }
    return result;
  } finally {
    // The generators and the sender outlive the session (closing their clients
    // is enough); one that fails to close is replaced.
    const closed = await Promise.allSettled(gens.map((g) => g.call('close', {}, 30_000)));
    if (closed.some((c) => c.status === 'rejected')) await closePool();
    await stopServer(srv, cfg);
  }
}

/** Notifications the load generators received in all (their `wait` answers). */
function receivedBy(got) {
  return got.reduce((a, g) => a + g.received, 0);
}

/** --perf recordings waiting for their summary. */
const perfPending = [];

/** Writes the summary of each --perf recording of the run beside it (<...>.perf.txt). */
export function writePerfSummaries() {
  for (const { file, count, unit } of perfPending.splice(0)) {
    const txt = file.replace(/\.data$/, '.txt');
    writeFileSync(txt, `${summarisePerf(file, { units: count, unit })}\n`);
    console.log(`  perf: ${file}, summary in ${txt}`);
  }
}

/**
 * With --cpu-prof: profiles the server during `fn` only, into
 * bench/profiles/<server>-<label>-<time>.cpuprofile. With --perf: `perf`
 * samples it over the same span, into <...>.perf.data, summarised per unit
 * of work (`units(result)`: how many connections or messages) in <...>.perf.txt.
 * With --heap-promoted: what outlived the young collections over the same
 * span, into <...>.heapprofile, summarised per unit in <...>.heap.txt.
 */
async function profiled(srv, cfg, label, fn, units = () => ({ count: 1, unit: 'run' })) {
  if (!cfg.cpuProf && !cfg.perf && !cfg.heapPromoted) return fn();
  const dir = profilesDir(cfg);
  mkdirSync(dir, { recursive: true });
  const base = join(dir, `${srv.name}-${label}-${Date.now()}`);
  if (cfg.cpuProf) await srv.call('profileStart');
  if (cfg.heapPromoted) await srv.call('heapPromotedStart');
  const stopPerf = cfg.perf ? await perfRecord(srv.pid, `${base}.perf.data`) : undefined;
  let result;
  try {
    result = await fn();
    return result;
  } finally {
    if (stopPerf) await stopPerf();
    if (cfg.cpuProf) {
      const file = await srv.call('profileStop', { file: `${base}.cpuprofile` }, 60_000);
      console.log(`  profile: ${file}`);
    }
    if (cfg.heapPromoted) {
      const file = await srv.call('heapPromotedStop', { file: `${base}.heapprofile` }, 60_000);
      if (file && result !== undefined) {
        const { count, unit } = units(result);
        const txt = `${base}.heap.txt`;
        writeFileSync(txt, `${summariseHeapProfile(file, { units: count, unit, title: file })}\n`);
        console.log(`  heap: ${file}, summary in ${txt}`);
      }
    }
    if (stopPerf && result !== undefined) {
      // Summarised at the end of the run (writePerfSummaries), not here, where its CPU would count against the next phase.
      const { count, unit } = units(result);
      perfPending.push({ file: `${base}.perf.data`, count, unit });
    }
  }
}

/**
 * With --timeline: every notification's send time, latency and receiving
 * load generator, and every GC pause of the server and of each generator, on
 * one clock, into bench/profiles/<server>-<phase>-<time>.timeline.json
 * (bench/timeline-summary.mjs reads it: when the slow ones were sent, and
 * what the server and the generators were doing).
 */
function writeTimeline(srv, cfg, label, got, gcEvents) {
  const dir = profilesDir(cfg);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${srv.name}-${label}-${Date.now()}.timeline.json`);
  const sentAt = [];
  const latency = [];
  // Which load generator received each one, and each generator's own GC pauses.
  const client = [];
  for (const [k, g] of got.entries()) {
    for (let i = 0; i < g.received; i++) {
      sentAt.push(Math.round(g.sentAt[i] * 1000) / 1000);
      latency.push(Math.round(g.latencies[i] * 1000) / 1000);
      client.push(k);
    }
  }
  const clientGc = got.map((g) => g.gc ?? []);
  writeFileSync(file, JSON.stringify({ server: srv.name, phase: label, sentAt, latency, gc: gcEvents ?? [], client, clientGc }));
  console.log(`  timeline: ${file}`);
}

function cpuOf(pids) {
  return { server: cpuMs(pids.server), clients: pids.clients.map(cpuMs), sender: cpuMs(pids.sender), serverWait: runDelayMs(pids.server), machine: machineCpuMs(), runner: process.cpuUsage() };
}

function cpuDelta(a, b) {
  const clientsEach = b.clients.map((x, i) => x - a.clients[i]);
  const clients = clientsEach.reduce((s, x) => s + x, 0);
  const server = b.server - a.server;
  const sender = b.sender - a.sender;
  const runner = (b.runner.user + b.runner.system - a.runner.user - a.runner.system) / 1000;
  return {
    server, clientsEach, clients, clientsMax: Math.max(...clientsEach), sender,
    serverWait: b.serverWait - a.serverWait,
    steal: b.machine.steal - a.machine.steal,
    // What the machine did besides the server, the generators, the sender and this runner.
    others: b.machine.busy - a.machine.busy - server - clients - sender - runner,
  };
}

/** CPU time over wall time, in % of one core. */
function pcts(cpu, wallMs) {
  return {
    serverCpuPct: (cpu.server / wallMs) * 100,
    clientMaxCpuPct: (cpu.clientsMax / wallMs) * 100,
    senderCpuPct: (cpu.sender / wallMs) * 100,
    serverWaitPct: (cpu.serverWait / wallMs) * 100,
    stealPct: (cpu.steal / wallMs) * 100,
    othersCpuPct: (Math.max(0, cpu.others) / wallMs) * 100,
  };
}

/** W1 (connections) and W3 (broadcast) share one session of `w1Conns` clients. */
export async function runConnections(name, cfg, { w1, w3 }) {
  const n = cfg.w1Conns;
  return session(name, cfg, n, async (ctx) => {
    const { gens, sender, pids, connect } = ctx;
    const out = {};
    if (w1) {
      const { opened, ms, mem0, mem1, cpu } = connect;
      out.w1 = {
        connectRate: (opened / ms) * 1000,
        rssPerConn: (mem1.rss - mem0.rss) / opened,
        heapPerConn: (mem1.heapUsed - mem0.heapUsed) / opened,
        rssTotal: mem1.rss,
        heapTotal: mem1.heapUsed,
        failed: connect.failed,
        serverCpuMs: cpu.server,
        clientCpuMs: cpu.clients,
        ...pcts(cpu, ms),
        wallMs: ms,
      };
    }
    if (w3) {
      const count = cfg.w3Broadcasts;
      await Promise.all(gens.map((g, k) => g.call('reset', { expected: count * connect.shares[k].opened })));
      const waits = gens.map((g, k) => g.call('wait', { count: count * connect.shares[k].opened, timeoutMs: cfg.waitTimeoutMs }, cfg.waitTimeoutMs + 10_000));
      const cpu0 = cpuOf(pids);
      const { sendTimes, answerMs, got } = await profiled(ctx.srv, cfg, 'w3', async () => {
        const sent = await sender.call('broadcast', { count }, cfg.waitTimeoutMs);
        return { ...sent, got: await Promise.all(waits) };
      }, (r) => ({ count: receivedBy(r.got), unit: 'delivery' }));
      const cpu1 = cpuOf(pids);
      const received = receivedBy(got);
      const last = Math.max(...got.map((g) => g.lastRecv));
      const perB = sendTimes.map((t, b) => Math.max(...got.map((g) => g.perBroadcastLast[b] ?? NaN)) - t);
      const cpu = cpuDelta(cpu0, cpu1);
      const wall = last - sendTimes[0];
      const sortedPerB = [...perB].sort((a, b) => a - b);
      out.w3 = {
        deliveriesPerSec: (received / wall) * 1000,
        reachAllMs: wall / count,
        reachAllP50Ms: quantileSorted(sortedPerB, 0.5),
        answerMs: quantileSorted([...answerMs].sort((a, b) => a - b), 0.5),
        delivered: received / (count * connect.opened),
        serverCpuUsPerDelivery: (cpu.server * 1000) / received,
        serverCpuMs: cpu.server,
        clientCpuMs: cpu.clients,
        senderCpuMs: cpu.sender,
        ...pcts(cpu, wall),
        wallMs: wall,
      };
    }
    return out;
  });
}

/** How many of the notifications 0..total-1 (recipient ids[i % P]) land on each share. */
function expectedPerShare(shares, people, from, total) {
  // Notification i goes to person i % P + 1: count the i in [from, from+total) per id.
  const per = (j) => Math.floor((from + total - 1 - j) / people) - Math.floor((from - 1 - j) / people);
  return shares.map((s) => s.ids.reduce((a, id) => a + per(id - 1), 0));
}

/**
 * Calls whose answers are awaited after another call: should that one fail
 * first, the repetition ends with its error, the generators are stopped, and
 * these then fail too (the generator exited during the call) with nobody
 * awaiting them, which would end the whole run. Marked as handled here, they
 * still fail the Promise.all that awaits them.
 */
function awaitedLater(calls) {
  for (const c of calls) c.catch(() => undefined);
  return calls;
}

async function measureUnicast(ctx, cfg, send) {
  const { gens, sender, pids, connect } = ctx;
  const ids = range(cfg.w2People);
  const expected = expectedPerShare(connect.shares, cfg.w2People, 0, send.total);
  await Promise.all(gens.map((g, k) => g.call('reset', { timeline: cfg.timeline, expected: expected[k] })));
  const waits = awaitedLater(gens.map((g, k) => g.call('wait', { count: expected[k], timeoutMs: cfg.waitTimeoutMs }, cfg.waitTimeoutMs + 10_000)));
  const cpu0 = cpuOf(pids);
  await ctx.srv.call('gcStart', { timeline: cfg.timeline });
  const { sent, got } = await profiled(ctx.srv, cfg, send.cmd, async () => {
    const sent = await sender.call(send.cmd, { ids, ...send.args }, cfg.waitTimeoutMs);
    return { sent, got: await Promise.all(waits) };
  }, (r) => ({ count: receivedBy(r.got), unit: 'message' }));
  const gc = await ctx.srv.call('gcStop');
  const cpu1 = cpuOf(pids);
  if (cfg.timeline) writeTimeline(ctx.srv, cfg, send.cmd, got, gc.events);
  const received = receivedBy(got);
  const last = Math.max(...got.map((g) => g.lastRecv));
  const lat = mergeSorted(got.map((g) => g.latencies));
  const cpu = cpuDelta(cpu0, cpu1);
  return {
    sent, received, wallMs: last - sent.t0, cpu, gc,
    delivered: received / send.total,
    p50: quantileSorted(lat, 0.5), p99: quantileSorted(lat, 0.99), max: lat.length ? lat[lat.length - 1] : NaN,
  };
}

async function warmUp(ctx, cfg) {
  if (cfg.w2Warmup <= 0) return;
  const { gens, sender, connect } = ctx;
  await Promise.all(gens.map((g) => g.call('reset')));
  const expected = expectedPerShare(connect.shares, cfg.w2People, 0, cfg.w2Warmup);
  const waits = awaitedLater(gens.map((g, k) => g.call('wait', { count: expected[k], timeoutMs: 60_000 }, 70_000)));
  await sender.call('unicast', { ids: range(cfg.w2People), total: cfg.w2Warmup, batch: cfg.w2Batch, concurrency: cfg.w2Concurrency }, 60_000);
  await Promise.all(waits);
}

/** W2: `w2Total` notifications to `w2People` people, as fast as the server takes them. */
export async function runUnicast(name, cfg) {
  return session(name, cfg, cfg.w2People, async (ctx) => {
    await warmUp(ctx, cfg);
    const m = await measureUnicast(ctx, cfg, { cmd: 'unicast', total: cfg.w2Total, args: { total: cfg.w2Total, batch: cfg.w2Batch, concurrency: cfg.w2Concurrency } });
    return {
      w2: {
        msgPerSec: (m.received / m.wallMs) * 1000,
        serverCpuUsPerMsg: (m.cpu.server * 1000) / m.received,
        p50Ms: m.p50, p99Ms: m.p99,
        delivered: m.delivered,
        ...gcFigures(m),
        serverCpuMs: m.cpu.server, clientCpuMs: m.cpu.clients, senderCpuMs: m.cpu.sender, wallMs: m.wallMs,
        ...pcts(m.cpu, m.wallMs),
        requests: m.sent.requests,
        heraldBatch: ctx.heraldBatch,
      },
    };
  });
}

/** The server's garbage-collection pauses over a measured phase: share of the wall time, and the longest. */
function gcFigures(m) {
  return { gcPct: (100 * m.gc.totalMs) / m.wallMs, gcMaxMs: m.gc.maxMs, gcPerSec: (1000 * m.gc.count) / m.wallMs };
}

/** W4: a steady `rate` msg/s for `w4DurationMs`; latency percentiles. */
export async function runSteady(name, cfg, rate) {
  return session(name, cfg, cfg.w2People, async (ctx) => {
    await warmUp(ctx, cfg);
    const total = Math.round((rate * cfg.w4DurationMs) / 1000);
    const m = await measureUnicast(ctx, cfg, { cmd: 'steady', total, args: { rate, durationMs: cfg.w4DurationMs, tickMs: cfg.w4TickMs, maxBatch: cfg.w2Batch } });
    return {
      w4: {
        p50Ms: m.p50, p99Ms: m.p99, maxMs: m.max,
        rate, delivered: m.delivered, lagged: m.sent.lagged, requests: m.sent.requests,
        ...gcFigures(m),
        serverCpuMs: m.cpu.server, clientCpuMs: m.cpu.clients, senderCpuMs: m.cpu.sender, wallMs: m.wallMs,
        ...pcts(m.cpu, m.wallMs),
      },
    };
  });
}
