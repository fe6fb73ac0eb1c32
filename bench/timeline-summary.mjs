#!/usr/bin/env node
// Reads a timeline written by `npm run bench -- --timeline` and says where a
// phase's tail comes from: when the slowest notifications were sent, how
// many of them were in flight while the server, or the load generator that
// received them, stood still for a garbage collection, and the busiest 20 ms
// windows with the pauses around them.
// usage: node bench/timeline-summary.mjs FILE.timeline.json [windows=15]
import { readFileSync } from 'node:fs';
import { constants } from 'node:perf_hooks';

const [file, windowsArg] = process.argv.slice(2);
if (!file) { console.error('usage: node bench/timeline-summary.mjs FILE.timeline.json [windows]'); process.exit(2); }
const { server, phase, sentAt, latency, gc, client, clientGc } = JSON.parse(readFileSync(file, 'utf8'));
const n = latency.length;
if (n === 0) { console.log(`${file}: no notifications`); process.exit(0); }
const sorted = Float64Array.from(latency).sort();
const q = (p) => sorted[Math.min(n - 1, Math.floor(n * p))];
// Not Math.min(...sentAt): a long run's hundreds of thousands of arguments overflow the stack.
const t0 = sentAt.reduce((a, t) => Math.min(a, t), Infinity);
// The `kind` of node's gc performance entries (its constants: 1, 4, 8 and 16; 2 is none).
const KIND = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

// "Slow": at or above the p99.
const p99 = q(0.99);
const slow = [];
for (let i = 0; i < n; i++) if (latency[i] >= p99) slow.push(i);
// In flight during a pause: sent before it ended and received after it began.
const inFlightDuring = (pauses, i) => pauses.some(([start, ms]) => start < sentAt[i] + latency[i] && start + ms > sentAt[i]);
const duringGc = slow.filter((i) => inFlightDuring(gc, i)).length;
// Timelines written before the load generators' pauses were recorded have no `clientGc`.
const duringClientGc = clientGc ? slow.filter((i) => inFlightDuring(clientGc[client[i]], i)).length : undefined;
const paused = gc.reduce((a, [, ms]) => a + ms, 0);
const spanMs = sentAt.reduce((a, t) => Math.max(a, t), -Infinity) - t0;

console.log(`${server} ${phase}: ${n} notifications over ${(spanMs / 1000).toFixed(1)} s; p50 ${q(0.5).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${sorted[n - 1].toFixed(1)} ms`);
console.log(`GC: ${gc.length} pauses, ${paused.toFixed(0)} ms in all (${((100 * paused) / spanMs).toFixed(2)}% of the time); ` +
  Object.entries(KIND).map(([k, name]) => `${gc.filter((e) => String(e[2]) === k).length} ${name}`).join(', '));
console.log(`at or above p99: ${slow.length}, of which ${duringGc} (${((100 * duringGc) / slow.length).toFixed(0)}%) were in flight during a pause`);
if (duringClientGc !== undefined) {
  const pauses = clientGc.flat();
  console.log(`load generators' GC: ${pauses.length} pauses, ${pauses.reduce((a, [, ms]) => a + ms, 0).toFixed(0)} ms in all; `
    + `${duringClientGc} (${((100 * duringClientGc) / slow.length).toFixed(0)}%) of those at or above p99 were in flight during a pause of the generator that received them`);
}

const windows = new Map();
for (const i of slow) {
  const w = Math.floor((sentAt[i] - t0) / 20);
  const cur = windows.get(w) ?? { count: 0, max: 0 };
  cur.count++;
  cur.max = Math.max(cur.max, latency[i]);
  windows.set(w, cur);
}
console.log(`\nthe 20 ms windows (by send time) with the most notifications at or above p99:`);
const top = [...windows].sort((a, b) => b[1].count - a[1].count).slice(0, Number(windowsArg ?? 15)).sort((a, b) => a[0] - b[0]);
for (const [w, { count, max }] of top) {
  const near = gc.filter(([start]) => start - t0 >= w * 20 - 20 && start - t0 < w * 20 + 40)
    .map(([start, ms, kind]) => `${KIND[kind] ?? kind} GC at ${(start - t0).toFixed(0)} ms for ${ms.toFixed(1)} ms`);
  console.log(`${String(w * 20).padStart(6)} ms: ${String(count).padStart(4)} slow, up to ${max.toFixed(1)} ms${near.length ? `; ${near.join(', ')}` : ''}`);
}
