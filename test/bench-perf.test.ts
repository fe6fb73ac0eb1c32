// `npm run bench -- --perf` on a real process: `perf record` attached to a
// node child that spends its time first in a named JS function, then in
// read(2) calls (from /dev/zero: the kernel's time, filling the buffer), then
// in JSON.stringify, and the summary must put the CPU where it went, both by
// category and by part of a server's work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error: the bench is plain JavaScript (bench/lib/perf.mjs), without type declarations
import { OTHER_PARTS, partNamed, perfRecord, perfUnavailable, readPerf } from '../bench/lib/perf.mjs';

interface PerfFigures { main: Map<string, number>; others: Map<string, number>; mainParts: Map<string, number>; mainNs: number; otherNs: number; inPart?: Map<string, number> }

/** Under CI=true a missing perf is an error (.ci/run installs it); elsewhere the test skips, saying why. */
function perfSkipReason(): string | false {
  const why = (perfUnavailable as () => string | undefined)();
  if (!why) return false;
  if (process.env.CI === 'true') throw new Error(why);
  console.log(`# skipping the perf test: ${why}`);
  return why;
}

// Waits for a line on stdin (perf is attached by then), spins in spinHere()
// for 400 ms of its own CPU time, reads 1 MiB at a time from /dev/zero for
// 400 ms more, serialises an object with JSON.stringify for 400 ms more, and
// exits (2,000 samples each at perf's 4999 Hz: plenty to place them). CPU
// time, not wall time: on a busy machine a child given 400 ms
// of the clock may get half of it on a core (seen in CI), and perf counts
// only the time it ran. The clock only bounds a starved child. The CPU
// clock is read once per 1,000 serialisations: reading it is a system call,
// on some machines dearer than a JSON.stringify, and its samples land in
// the kernel (seen in CI on AMD, 166 of 600 ms left in JSON.stringify).
const CHILD = `
const { openSync, readSync } = require('node:fs');
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const deadline = Date.now() + 20000;
function spinHere(until) { let x = 0; while (cpuMs() < until && Date.now() < deadline) for (let i = 0; i < 1e4; i++) x = (x * 31 + i) | 0; return x; }
process.stdin.once('data', () => {
  spinHere(cpuMs() + 400);
  const fd = openSync('/dev/zero', 'r');
  const buf = Buffer.alloc(1 << 20);
  const until = cpuMs() + 400;
  while (cpuMs() < until && Date.now() < deadline) readSync(fd, buf);
  const o = { TYPE: 'MESSAGE', TEXT: 'x'.repeat(200), list: [1, 2, 3], nested: { a: 'b' } };
  const until2 = cpuMs() + 400;
  let n = 0;
  while (cpuMs() < until2 && Date.now() < deadline) for (let i = 0; i < 1000; i++) n += JSON.stringify(o).length;
  process.exit(n > 0 ? 0 : 1);
});
process.stdout.write('ready\\n');
`;

test('--perf: the summary puts a process\'s CPU in its JS function, its system calls and the parts of the work', { skip: perfSkipReason() }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-perf-'));
  // As the bench runs its servers: V8's log of its JIT code (jit-<pid>.dump) in a directory of its own.
  const child = spawn(process.execPath, ['--perf-prof', '-e', CHILD], { cwd: dir, stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
    const file = join(dir, 'child.perf.data');
    const stop = await (perfRecord as (pid: number, file: string) => Promise<() => Promise<void>>)(child.pid!, file);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin!.write('go\n');
    await exited;
    await stop();
    const perf = (readPerf as (f: string, o: { part: string }) => PerfFigures)(file, { part: 'JSON.stringify' });
    const ms = (key: string): number => (perf.main.get(key) ?? 0) / 1e6;
    const spin = [...perf.main.keys()].find((k) => k.startsWith('js spinHere '));
    const report = [...perf.main].map(([k, ns]) => `${(ns / 1e6).toFixed(1)} ms ${k}`).join('\n');
    assert.ok(spin, `no sample in spinHere:\n${report}`);
    // 400 ms of CPU in each: at least half of it must be found where it was spent.
    assert.ok(ms(spin) >= 200, `spinHere: ${ms(spin)} ms\n${report}`);
    assert.ok(ms('syscall read') >= 200, `read(2): ${ms('syscall read')} ms\n${report}`);
    // By part: the spinning is none of a server's parts, the reads are the
    // kernel's, and the serialising is JSON.stringify's.
    const partMs = (key: string): number => (perf.mainParts.get(key) ?? 0) / 1e6;
    const parts = [...perf.mainParts].map(([k, ns]) => `${(ns / 1e6).toFixed(1)} ms ${k}`).join('\n');
    assert.ok(partMs(OTHER_PARTS.rest) >= 200, `the rest: ${partMs(OTHER_PARTS.rest)} ms\n${parts}`);
    assert.ok(partMs(OTHER_PARTS.kernel) >= 200, `the kernel: ${partMs(OTHER_PARTS.kernel)} ms\n${parts}`);
    assert.ok(partMs('JSON.stringify') >= 200, `JSON.stringify: ${partMs('JSON.stringify')} ms\n${parts}`);
    assert.ok(perf.mainNs / 1e6 < 2000, `more CPU than the child ran for: ${perf.mainNs / 1e6} ms`);
    // The part broken down: the JS function that called JSON.stringify, with what V8 ran under it.
    // Under it, not only the serialiser's own code: on a loaded machine, or one whose memory is
    // dear, more of the samples land in what it calls (allocating, looking up properties), once
    // 195 of 600 ms left in JsonStringifier itself. So the function's whole, and the serialiser in it.
    const inPart = [...perf.inPart!].map(([k, ns]) => `${(ns / 1e6).toFixed(1)} ms ${k}`).join('\n');
    const sumOf = (match: RegExp): number => [...perf.inPart!].filter(([k]) => match.test(k)).reduce((sum, [, ns]) => sum + ns, 0) / 1e6;
    const caller = sumOf(/^js \(anonymous\) \[eval\]:\d+:\d+ <- /);
    assert.ok(caller >= 200, `JSON.stringify's part by function: ${caller} ms under the function that called it\n${inPart}`);
    assert.ok(sumOf(/^js \(anonymous\) \[eval\]:\d+:\d+ <- v8::internal::JsonStringif/) > 0, `V8's serialiser under that function\n${inPart}`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--part names a part by the beginning of its name, and an unknown one lists the parts', () => {
  const named = partNamed as (name: string) => string;
  assert.equal(named('stor'), 'storing');
  assert.equal(named('the Notifier'), 'the Notifier (planning, results)');
  assert.throws(() => named('nope'), /no part begins "nope"; the parts: receiving frames/);
});
