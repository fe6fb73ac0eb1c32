#!/usr/bin/env node
// `npm run bench`: Herald against the bare `ws` floor and Socket.IO, in one
// run (issue 7). Every server, load generator and the sender is its own
// process; each figure is the median of `reps` runs with min and max, and
// every Herald figure is also a ratio to the floor of this same run.
// Results: bench/results.md (bench/results-quick.md with --quick) and a .json beside it.
import { readFileSync, writeFileSync } from 'node:fs';
import { loadConfig } from './lib/config.mjs';
import { killAllChildren, pinToCpus } from './lib/proc.mjs';
import { runConnections, runUnicast, runSteady, closePool, writePerfSummaries } from './lib/workloads.mjs';
import { perfUnavailable } from './lib/perf.mjs';
import { median } from './lib/stats.mjs';
import { renderMarkdown, machineInfo } from './lib/report.mjs';
import { firstTouchUsPerPage } from './lib/page-cost.mjs';

const cfg = loadConfig();

// Every child is killed by PID whatever happens.
process.on('exit', killAllChildren);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { killAllChildren(); process.exit(130); });

function fdLimit() {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? (m[1] === 'unlimited' ? Infinity : Number(m[1])) : Infinity;
}

// The server holds every connection; the children inherit our limit and Node
// cannot raise it, so refuse sizes that cannot fit rather than fail midway.
const limit = fdLimit();
if (cfg.w1Conns + 512 > limit) {
  const fit = Math.max(100, limit - 512);
  console.warn(`open-file limit is ${limit} (ulimit -n): W1/W3 lowered from ${cfg.w1Conns} to ${fit} connections; raise it (ulimit -n 20000) for the full size`);
  cfg.w1Conns = fit;
}

const noPerf = cfg.perf ? perfUnavailable() : undefined;
if (noPerf) {
  console.error(`--perf: ${noPerf}`);
  process.exit(2);
}

// --pin: the runner (it reads /proc and relays results between runs) keeps off the servers' CPUs too.
if (cfg.pin) pinToCpus(process.pid, cfg.pin.clients);

const started = Date.now();
// The price of a new page before and after the runs: the machine drifts (lib/page-cost.mjs).
const firstTouch = { before: firstTouchUsPerPage(cfg.firstTouchProbes), after: undefined };
const rows = []; // { workload, server, rep, metrics }
const failures = []; // { label, error }
const want = (w) => cfg.workloads.includes(w);
const log = (s) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${s}`);

async function attempt(label, fn) {
  try {
    return await fn();
  } catch (e) {
    log(`${label} FAILED: ${e?.stack ?? e}`);
    failures.push({ label, error: String(e?.message ?? e).split('\n')[0] });
    return null;
  }
}

function push(server, rep, result) {
  if (!result) return;
  for (const [workload, metrics] of Object.entries(result)) rows.push({ workload, server, rep, metrics });
}

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : String(x));

try {
  log(`config: ${JSON.stringify({ ...cfg, servers: cfg.servers.join(','), workloads: cfg.workloads.join(',') })}`);
  // Repetitions are interleaved (rep 1 of every server, then rep 2, ...) so
  // that a slow minute of the machine does not land on one server only.
  if (want('w1') || want('w3')) {
    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const s of cfg.servers) {
        const r = await attempt(`W1/W3 ${s} rep ${rep}`, () => runConnections(s, cfg, { w1: want('w1'), w3: want('w3') }));
        push(s, rep, r);
        if (r?.w1) log(`W1 ${s} #${rep}: ${fmt(r.w1.connectRate)} conn/s, ${fmt(r.w1.rssPerConn)} B RSS/conn, ${fmt(r.w1.heapPerConn)} B heap/conn, ${r.w1.failed} failed`);
        if (r?.w3) log(`W3 ${s} #${rep}: ${fmt(r.w3.deliveriesPerSec)} deliveries/s, ${fmt(r.w3.reachAllMs, 1)} ms per broadcast, delivered ${fmt(r.w3.delivered * 100, 1)}%`);
      }
    }
  }
  if (want('w2')) {
    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const s of cfg.servers) {
        const r = await attempt(`W2 ${s} rep ${rep}`, () => runUnicast(s, cfg));
        push(s, rep, r);
        if (r?.w2) log(`W2 ${s} #${rep}: ${fmt(r.w2.msgPerSec)} msg/s, ${fmt(r.w2.serverCpuUsPerMsg, 1)} µs CPU/msg, p50 ${fmt(r.w2.p50Ms, 1)} ms, p99 ${fmt(r.w2.p99Ms, 1)} ms, delivered ${fmt(r.w2.delivered * 100, 1)}%`);
      }
    }
  }
  if (want('w4')) {
    const floorW2 = median(rows.filter((r) => r.workload === 'w2' && r.server === 'floor').map((r) => r.metrics.msgPerSec));
    const rate = cfg.w4Rate > 0 ? cfg.w4Rate : Number.isFinite(floorW2) ? Math.round(floorW2 * cfg.w4Fraction) : 11_000;
    cfg.w4RateUsed = rate;
    const perTick = (rate * cfg.w4TickMs) / 1000;
    if (perTick > cfg.w2Batch) console.warn(`W4: ${perTick.toFixed(0)} notifications are due every ${cfg.w4TickMs} ms, more than a request holds (--w2-batch ${cfg.w2Batch}): the sender will fall behind the rate`);
    // W4 measures latency at the clients, so it starts with new load
    // generators and sender: what W1-W3 left in theirs (tens of thousands of
    // closed connections, 210,000 notifications a W2 session) slowed their
    // own collections (after W1/W3: young collections of 3-6 ms instead of
    // 1-2), and each of their pauses is latency they measure (docs/bench-history.md,
    // tenth round). Each W4 session warms them up as it warms the server.
    await closePool();
    log(`W4 at ${rate} msg/s (${cfg.w4Rate > 0 ? 'set' : Number.isFinite(floorW2) ? `${cfg.w4Fraction} × floor W2 ${fmt(floorW2)}` : 'no floor W2 in this run: fallback'})`);
    for (let rep = 1; rep <= cfg.reps; rep++) {
      for (const s of cfg.servers) {
        const r = await attempt(`W4 ${s} rep ${rep}`, () => runSteady(s, cfg, rate));
        push(s, rep, r);
        if (r?.w4) log(`W4 ${s} #${rep}: p50 ${fmt(r.w4.p50Ms, 2)} ms, p99 ${fmt(r.w4.p99Ms, 2)} ms, max ${fmt(r.w4.maxMs, 1)} ms, delivered ${fmt(r.w4.delivered * 100, 1)}%`);
      }
    }
  }
} finally {
  await closePool();
  killAllChildren();
}
writePerfSummaries();
firstTouch.after = firstTouchUsPerPage(cfg.firstTouchProbes);

const info = { ...machineInfo(), firstTouch };
const durationS = (Date.now() - started) / 1000;
const md = renderMarkdown({ cfg, rows, info, durationS, failures });
writeFileSync(cfg.out, md);
writeFileSync(cfg.out.replace(/\.md$/, '.json'), JSON.stringify({ info, cfg, durationS, rows, failures }, null, 1));
log(`wrote ${cfg.out} (${durationS.toFixed(0)} s)`);
console.log(md);
