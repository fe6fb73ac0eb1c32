// `npm run bench -- --perf` on a real process: `perf record` attached to a
// node child that spends its time first in a named JS function, then in
// read(2) calls (from /dev/zero: the kernel's time, filling the buffer), and
// the summary must put the CPU where it went.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// @ts-expect-error: the bench is plain JavaScript (bench/lib/perf.mjs), without type declarations
import { perfRecord, perfUnavailable, readPerf } from '../bench/lib/perf.mjs';

interface PerfFigures { main: Map<string, number>; others: Map<string, number>; mainNs: number; otherNs: number }

/** Under CI=true a missing perf is an error (.ci/run installs it); elsewhere the test skips, saying why. */
function perfSkipReason(): string | false {
  const why = (perfUnavailable as () => string | undefined)();
  if (!why) return false;
  if (process.env.CI === 'true') throw new Error(why);
  console.log(`# skipping the perf test: ${why}`);
  return why;
}

// Waits for a line on stdin (perf is attached by then), spins in spinHere()
// for 600 ms of its own CPU time, reads 1 MiB at a time from /dev/zero for
// 600 ms more, and exits. CPU time, not wall time: on a busy machine a child
// given 600 ms of the clock may get half of it on a core (seen in CI), and
// perf counts only the time it ran. The clock only bounds a starved child.
const CHILD = `
const { openSync, readSync } = require('node:fs');
const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const deadline = Date.now() + 20000;
function spinHere(until) { let x = 0; while (cpuMs() < until && Date.now() < deadline) for (let i = 0; i < 1e4; i++) x = (x * 31 + i) | 0; return x; }
process.stdin.once('data', () => {
  spinHere(cpuMs() + 600);
  const fd = openSync('/dev/zero', 'r');
  const buf = Buffer.alloc(1 << 20);
  const until = cpuMs() + 600;
  while (cpuMs() < until && Date.now() < deadline) readSync(fd, buf);
  process.exit(0);
});
process.stdout.write('ready\\n');
`;

test('--perf: the summary puts a process\'s CPU in its JS function and its system calls', { skip: perfSkipReason() }, async () => {
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
    const perf = (readPerf as (f: string) => PerfFigures)(file);
    const ms = (key: string): number => (perf.main.get(key) ?? 0) / 1e6;
    const spin = [...perf.main.keys()].find((k) => k.startsWith('js spinHere '));
    const report = [...perf.main].map(([k, ns]) => `${(ns / 1e6).toFixed(1)} ms ${k}`).join('\n');
    assert.ok(spin, `no sample in spinHere:\n${report}`);
    // 600 ms of CPU in each: at least half of it must be found where it was spent.
    assert.ok(ms(spin) >= 300, `spinHere: ${ms(spin)} ms\n${report}`);
    assert.ok(ms('syscall read') >= 300, `read(2): ${ms('syscall read')} ms\n${report}`);
    assert.ok(perf.mainNs / 1e6 < 2000, `more CPU than the child ran for: ${perf.mainNs / 1e6} ms`);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
