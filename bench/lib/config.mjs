// The benchmark's sizes: defaults from issue 7, overridable by environment
// (BENCH_*) or flags (--reps 5, --servers floor,herald-memory, --quick, ...).
import { parseArgs } from 'node:util';

/**
 * The issue's three servers, Herald with each store, and for reference the
 * floor plus what storing needs (bench/servers/floor-stored.mjs).
 */
const SERVERS = ['floor', 'floor-stored', 'socketio', 'herald-memory', 'herald-sqlite'];
const WORKLOADS = ['w1', 'w2', 'w3', 'w4'];

const DEFAULTS = {
  reps: 3,
  servers: SERVERS.join(','),
  workloads: WORKLOADS.join(','),
  loadgens: 2,
  w1Conns: 10_000,
  connectConcurrency: 50, // handshakes in flight per load generator
  w2People: 1_000,
  w2Total: 200_000,
  w2Batch: 100, // notifications per HTTP request
  w2Concurrency: 4, // requests in flight
  w2Warmup: 10_000, // sent and received before the measured run (JIT warm-up)
  w3Broadcasts: 20,
  w4Fraction: 0.2, // of the floor's median W2 rate
  w4Rate: 0, // >0 overrides the fraction (msg/s)
  // 15 s: the steady load W4 is meant to measure, past the tabs' ack pace
  // settling in its first seconds, with three times the notifications behind
  // its p99 (docs/bench-history.md, eighteenth round)
  w4DurationMs: 15_000,
  w4TickMs: 5, // W4's sender sends what is due as one request every this many ms (at most w2Batch notifications each)
  ackDelayMs: 1_000, // as the browser library (src/client/delivery.ts): own stream
  broadcastAckDelayMs: 2_000, // and the broadcast stream
  waitTimeoutMs: 120_000,
  heraldBatch: 'auto', // auto | on | off: POST /api/v1/send/batch
  heraldTtl: '', // seconds, sent as every Herald notification's "ttl" ('' = the server's default; 0 = live only, nothing stored)
  cpuProf: false, // --cpu-prof on the Herald processes (bench/profiles/)
  perf: false, // --perf: Linux perf on every server over each measured phase, summarised per connection / message (bench/profiles/*.perf.txt)
  heapPromoted: false, // --heap-promoted: what outlived the young collections in each measured phase, by allocation site (bench/profiles/*.heapprofile + .heap.txt)
  timeline: false, // --timeline: W2/W4 send times, latencies and GC pauses (bench/profiles/*.timeline.json)
  profilesDir: '', // where --cpu-prof, --perf, --heap-promoted and --timeline write ('' = bench/profiles)
  serverNodeFlags: '', // node/V8 flags for every server process, space-separated (--server-node-flags=--trace-gc); the targets are then not judged
  firstTouchProbes: 3, // fresh processes that price a first touch of memory before the runs, and as many after (lib/page-cost.mjs); the median is printed; 0: not measured
  pin: '', // SERVER_CPUS:CLIENT_CPUS (taskset lists, e.g. 0:1): every server on the first CPUs, the load generators, the sender and the runner on the others; the targets are then not judged
  out: '',
};

const QUICK = { w1Conns: 2_000, w2People: 500, w2Total: 40_000, w2Warmup: 4_000, w3Broadcasts: 10, w4DurationMs: 2_000 };

function envName(k) {
  return `BENCH_${k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

function coerce(k, raw) {
  const d = DEFAULTS[k];
  if (typeof d === 'number') {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${k}: expected a non-negative number, got ${raw}`);
    return n;
  }
  if (typeof d === 'boolean') return raw === true || ['1', 'true', 'yes', 'on'].includes(String(raw).toLowerCase());
  return String(raw);
}

const CPU_LIST = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;

/** `--pin 0:1` → { server: '0', clients: '1' }; '' → undefined (nothing pinned). */
export function parsePin(raw) {
  if (raw === '' || raw === undefined) return undefined;
  const [server, clients, ...rest] = String(raw).split(':');
  if (rest.length > 0 || !CPU_LIST.test(server ?? '') || !CPU_LIST.test(clients ?? '')) {
    throw new Error(`pin: expected SERVER_CPUS:CLIENT_CPUS as taskset lists (0:1, 0:1-3), got ${raw}`);
  }
  return { server, clients };
}

export function loadConfig(argv = process.argv.slice(2), env = process.env) {
  const options = { quick: { type: 'boolean' }, help: { type: 'boolean' } };
  for (const k of Object.keys(DEFAULTS)) {
    const flag = k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    options[flag] = { type: typeof DEFAULTS[k] === 'boolean' ? 'boolean' : 'string' };
  }
  const { values } = parseArgs({ args: argv, options, strict: true });
  if (values.help) {
    console.log('usage: npm run bench -- [--quick] ' + Object.keys(DEFAULTS).map((k) => `[--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${DEFAULTS[k]}]`).join(' '));
    console.log('each also as environment variable, e.g. ' + envName('w1Conns'));
    process.exit(0);
  }
  const quick = values.quick === true || env.BENCH_QUICK === '1';
  const c = { ...DEFAULTS, ...(quick ? QUICK : {}), quick };
  for (const k of Object.keys(DEFAULTS)) {
    if (env[envName(k)] !== undefined) c[k] = coerce(k, env[envName(k)]);
    const flag = k.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`);
    if (values[flag] !== undefined) c[k] = coerce(k, values[flag]);
  }
  c.servers = c.servers.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of c.servers) if (!SERVERS.includes(s)) throw new Error(`unknown server ${s} (known: ${SERVERS.join(', ')})`);
  c.workloads = c.workloads.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  for (const w of c.workloads) if (!WORKLOADS.includes(w)) throw new Error(`unknown workload ${w}`);
  if (!c.out) c.out = quick ? 'bench/results-quick.md' : 'bench/results.md';
  if (c.heraldTtl !== '' && !(Number(c.heraldTtl) >= 0)) throw new Error(`heraldTtl: expected seconds (a non-negative number), got ${c.heraldTtl}`);
  c.serverNodeFlags = c.serverNodeFlags.split(/\s+/).filter(Boolean);
  for (const f of c.serverNodeFlags) if (!f.startsWith('--')) throw new Error(`serverNodeFlags: expected node flags (--name or --name=value), got ${f}`);
  c.pin = parsePin(c.pin);
  c.w4TickMs = Math.max(1, c.w4TickMs);
  c.reps = Math.max(1, Math.floor(c.reps));
  c.loadgens = Math.max(1, Math.floor(c.loadgens));
  return c;
}
