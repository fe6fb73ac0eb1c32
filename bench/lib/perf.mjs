// With --perf: Linux `perf` samples the server's real CPU over one measured
// phase, every thread of it and the kernel's work on its behalf, and the
// summary says where that CPU went per unit of work (per connection, per
// message). V8's own profiler (--cpu-prof) samples the main thread's stack
// on a clock, so it cannot see GC helper threads or the optimising
// compiler, and it counts a thread waiting for a core inside a system call
// as time spent in that call; on two cores shared with the load generators
// that is a large share of a W1 or W2 profile.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Samples a second: a prime, so the sampling does not beat with a timer of the server. */
const HZ = 4999;

/** Says why --perf cannot work here, or undefined when it can. */
export function perfUnavailable() {
  const r = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'the `perf` command is not installed (Debian: apt-get install linux-perf)';
  return undefined;
}

/**
 * Starts `perf record` on process `pid` (all its threads, with call graphs)
 * into `file`; resolves once it samples, with a function that stops it and
 * resolves once the file is written.
 */
export async function perfRecord(pid, file) {
  // -k mono: the clock of V8's jit-<pid>.dump, for `perf inject --jit`; -N:
  // no copies of every binary it sampled into ~/.debug. -D -1 with a control
  // channel (fd 3 in, fd 4 out): perf attaches with its events off, turns
  // them on when told and answers "ack" once they are on. Its output file
  // appears before that: on a slow machine sampling began some 300 ms after
  // it, and the start of the measured phase went unseen.
  const perf = spawn('perf', ['record', '-N', '-k', 'mono', '-F', String(HZ), '-g', '-D', '-1', '--control', 'fd:3,4', '-p', String(pid), '-o', file], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
  });
  let err = '';
  perf.stderr.on('data', (c) => { err += c; });
  perf.stdio[3].on('error', () => { /* perf exited: reported below */ });
  const exited = new Promise((resolve) => perf.once('exit', (code) => resolve(code)));
  const enabled = new Promise((resolve) => perf.stdio[4].once('data', () => resolve(true)));
  perf.stdio[3].write('enable\n');
  let timer;
  const sampling = await Promise.race([enabled, exited.then(() => false), new Promise((resolve) => { timer = setTimeout(() => resolve(false), 20_000); })]);
  clearTimeout(timer);
  if (!sampling) {
    perf.kill('SIGKILL');
    throw new Error(`perf record failed: ${err.trim().split('\n').pop() || 'its events were not enabled within 20 s'}`);
  }
  return async () => {
    perf.kill('SIGINT');
    const code = await exited;
    if (code !== 0 && !existsSync(file)) throw new Error(`perf record failed: ${err.trim().split('\n').pop()}`);
  };
}

// What a sample's stack says it was doing, tried in this order.
const SYSCALL = /^(?:__x64_sys_|__do_sys_|__se_sys_|ksys_|__sys_|do_)?(\w+)$/;
const GC = /^v8::internal::(?:Heap::|Scavenger|ScavengerCollector|MarkCompact|MinorMarkSweep|ConcurrentMarking|IncrementalMarking|Sweeper|MarkingVisitor|MainMarkingVisitor|ConcurrentMarkingVisitor|GCTracer|MemoryAllocator|ArrayBufferSweeper)/;
const COMPILE = /^v8::internal::(?:compiler::|maglev::|baseline::|Compiler::|parsing::|OptimizingCompileDispatcher|BaselineBatchCompiler|interpreter::BytecodeGenerator)/;

/** Where a JS frame's function is: node_modules/<package>/…, or the last two parts of its path. */
function shortLocation(where) {
  const path = where.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm);
  return path.startsWith('/') ? path.split('/').slice(-2).join('/') : path;
}

/** One sample's category: a system call, page faults, other kernel work, GC, compiling, the JS function it was in, or a native function. */
export function categorise(frames) {
  const leaf = frames[0];
  if (leaf?.kernel) {
    // The system call is the frame the kernel's entry called (leaf-first: just before do_syscall_64).
    const entry = frames.findIndex((f) => f.sym === 'do_syscall_64');
    const call = entry > 0 ? frames[entry - 1].sym : '';
    const m = SYSCALL.exec(call);
    if (m && !call.startsWith('exit_to_user_mode')) return `syscall ${m[1]}`;
    if (frames.some((f) => f.kernel && /exc_page_fault/.test(f.sym))) return 'kernel: page faults';
  }
  if (frames.some((f) => GC.test(f.sym))) return 'V8: garbage collection';
  if (frames.some((f) => COMPILE.test(f.sym))) return 'V8: compiling';
  if (leaf?.kernel) return 'kernel: other (interrupts, scheduling)';
  const js = frames.find((f) => f.sym.startsWith('JS:'));
  if (js) {
    // `JS:*name where`, the mark saying which tier ran it.
    const m = /^JS:[*^~+]?(.*?) ?(\S+)$/.exec(js.sym);
    return m ? `js ${m[1] || '(anonymous)'} ${shortLocation(m[2])}` : `js ${js.sym.slice(3)}`;
  }
  return `native ${leaf ? leaf.sym : '?'}`;
}

/**
 * The parts of a notification server's work, tried in this order: a sample
 * belongs to the first part any frame of its stack matches, so a store write
 * made inside the Notifier's call counts as storing, and WELCOME written
 * inside a tab's acceptance as accepting it. Written for Herald and the
 * bench's floor (bench/servers/), so that the two can be set side by side
 * per notification or per connection; the rest of a server (Socket.IO's
 * own code, node's sockets and streams) falls in the last parts by what V8
 * and the kernel were doing. JSON has parts of its own because the floor
 * serialises inside its send loop and Herald inside the Notifier.
 */
export const PARTS = [
  ['receiving frames from the tabs (acks, PONGs)', /ws\/lib\/receiver\.js/],
  ['the token check', /auth\/token-resolver\.js/],
  ['accepting a tab (the upgrade, admission, WELCOME)', /gateway\/gateway\.js|gateway\/admission\.js|ws\/lib\/websocket-server\.js/],
  ['JSON.stringify', /^v8::internal::JsonStringif/],
  ['parsing the request body (JSON.parse, Fastify\'s checks)', /^v8::internal::JsonParser|secure-json-parse/],
  ['storing', /server\/store\//],
  ['delivering: framing, writing to the tabs', /gateway\/connection\.js|server\/hub\.js|gateway\/text-frame\.js|ws\/lib\/sender\.js|servers\/floor\.mjs/],
  ['the Notifier (planning, results)', /server\/notifier\.js/],
  ['the HTTP request otherwise (node\'s HTTP, Fastify, the answer)', /fastify|find-my-way|_http_|api\/http-api\.js|servers\/common\.mjs/],
];

/** The parts after PARTS, for a sample that is in none of them. */
export const OTHER_PARTS = {
  gc: 'V8: garbage collection',
  compiling: 'V8: compiling',
  kernel: 'the kernel otherwise (system calls, interrupts, the event loop\'s waits)',
  rest: 'the rest (the event loop, timers, streams, natives)',
};

/** Every part's name, in the order the summary lists them. */
const PART_NAMES = [...PARTS.map(([name]) => name), ...Object.values(OTHER_PARTS)];

/** The part of PARTS a sample's stack belongs to, or one of OTHER_PARTS. */
export function partOf(frames) {
  for (const [name, pattern] of PARTS) if (frames.some((f) => pattern.test(f.sym))) return name;
  if (frames.some((f) => GC.test(f.sym))) return OTHER_PARTS.gc;
  if (frames.some((f) => COMPILE.test(f.sym))) return OTHER_PARTS.compiling;
  if (frames[0]?.kernel) return OTHER_PARTS.kernel;
  return OTHER_PARTS.rest;
}

/**
 * Parses `perf script -F pid,tid,period,ip,sym,dso` output: one block per
 * sample, a header line then one frame a line, leaf first.
 */
export function parsePerfScript(text) {
  const samples = [];
  let cur = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (cur) samples.push(cur);
      cur = null;
      continue;
    }
    if (line[0] !== '\t') {
      const m = /^\s*(\d+)\/(\d+)\s+(\d+)/.exec(line);
      cur = m ? { pid: Number(m[1]), tid: Number(m[2]), ns: Number(m[3]), frames: [] } : null;
      continue;
    }
    if (!cur) continue;
    const m = /^\t\s*[0-9a-f]+ (.*) \(([^)]*)\)$/.exec(line);
    if (m) cur.frames.push({ sym: m[1].replace(/\+0x[0-9a-f]+$/, ''), kernel: m[2] === '[kernel.kallsyms]' });
  }
  if (cur) samples.push(cur);
  return samples;
}

/**
 * The recording with V8's JIT code named (`perf inject --jit`, once: it
 * writes <file>.jit and a jitted-<pid>-<n>.so per code object beside the
 * process's jit-<pid>.dump), or `file` itself when the process kept no dump
 * (run without --perf-prof: JS frames then have no names).
 */
function withJitNames(file) {
  const injected = `${file}.jit`;
  if (existsSync(injected)) return injected;
  // perf inject copies every binary and jitted .so into a build-id cache
  // (~/.debug by default, hundreds of MB): a temporary one, removed after.
  const cache = mkdtempSync(join(tmpdir(), 'herald-perf-buildid-'));
  try {
    const r = spawnSync('perf', ['--buildid-dir', cache, 'inject', '--jit', '-i', file, '-o', injected], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`perf inject failed: ${r.stderr.trim().split('\n').pop()}`);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  return injected;
}

/**
 * A sample's category with, when it is a JS function's and the sample was
 * in native code under it (node's C++, V8's builtins, a library such as
 * SQLite: `perf` names them, and `categorise` counts them in the JS function
 * that called them), that native function: `js #write … <- walChecksumBytes`.
 */
export function categoriseWithNative(frames) {
  const c = categorise(frames);
  if (!c.startsWith('js ')) return c;
  const leaf = frames.find((f) => !f.kernel);
  return leaf && !leaf.sym.startsWith('JS:') ? `${c} <- ${leaf.sym}` : c;
}

/** The name in PARTS or OTHER_PARTS that `name` begins (`storing`, `the Notifier`); throws naming them when none does. */
export function partNamed(name) {
  const found = PART_NAMES.find((n) => n.startsWith(name));
  if (!found) throw new Error(`no part begins "${name}"; the parts: ${PART_NAMES.join('; ')}`);
  return found;
}

/**
 * Reads a perf.data file: each category's CPU (ns) on the main thread
 * (tid = pid: the event loop) and on the others (V8's GC helpers and
 * compiler, libuv's pool), and the main thread's CPU by part (partOf).
 * With `part` (a name of PARTS or OTHER_PARTS), also that part's samples
 * by categoriseWithNative: what the part is made of.
 */
export function readPerf(file, { part } = {}) {
  const r = spawnSync('perf', ['script', '-i', withJitNames(file), '-F', 'pid,tid,period,ip,sym,dso'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`perf script failed: ${r.stderr.trim().split('\n').pop()}`);
  const main = new Map();
  const others = new Map();
  const mainParts = new Map();
  const inPart = new Map();
  let mainNs = 0;
  let otherNs = 0;
  for (const s of parsePerfScript(r.stdout)) {
    const c = categorise(s.frames);
    const onMain = s.tid === s.pid;
    const into = onMain ? main : others;
    into.set(c, (into.get(c) ?? 0) + s.ns);
    if (onMain) {
      mainNs += s.ns;
      const p = partOf(s.frames);
      mainParts.set(p, (mainParts.get(p) ?? 0) + s.ns);
      if (p === part) {
        const k = categoriseWithNative(s.frames);
        inPart.set(k, (inPart.get(k) ?? 0) + s.ns);
      }
    } else {
      otherNs += s.ns;
    }
  }
  return { main, others, mainParts, mainNs, otherNs, ...(part === undefined ? {} : { inPart }) };
}

/**
 * readPerf's figures as text, per unit of work (`units` of them:
 * connections, messages); with `part` (a part's whole name: partNamed), what
 * that part of the main thread's work is made of.
 */
export function summarisePerf(file, { units = 1, unit = 'run', top = 30, part } = {}) {
  const { main, others, mainParts, mainNs, otherNs, inPart } = readPerf(file, { part });
  const us = (ns) => (ns / 1000 / units).toFixed(2).padStart(8);
  const lines = [
    `${file}`,
    `CPU sampled by perf: ${((mainNs + otherNs) / 1e6).toFixed(0)} ms; per ${unit} (${units}): ${us(mainNs + otherNs).trim()} µs,`
      + ` of which the main thread ${us(mainNs).trim()} µs and the other threads ${us(otherNs).trim()} µs`,
    '',
    `main thread by part of the work (each sample in the first part its stack shows), µs per ${unit}:`,
    ...PART_NAMES.filter((p) => mainParts.has(p)).map((p) => `${us(mainParts.get(p))}  ${p}`),
    '',
    `main thread, µs per ${unit}:`,
    ...[...main].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ns]) => `${us(ns)}  ${k}`),
    '',
    `other threads (V8's GC helpers and compiler, libuv's pool), µs per ${unit}:`,
    ...[...others].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([k, ns]) => `${us(ns)}  ${k}`),
  ];
  if (inPart) {
    lines.push(
      '',
      `main thread, ${part}, by JS function and the native function it was in (\`<-\`), µs per ${unit}:`,
      ...[...inPart].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, ns]) => `${us(ns)}  ${k}`),
    );
  }
  return lines.join('\n');
}
