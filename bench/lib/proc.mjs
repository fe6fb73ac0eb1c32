// Child processes of the benchmark: forked with an IPC channel, tracked by
// PID so that every one of them is killed at the end, also on error.
import { fork, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { ipcClient } from './ipc.mjs';

const children = new Set();

/**
 * Forks `script` with node flags `execArgv`; resolves once it reports
 * {event:'ready'}, bound to the CPUs of `cpus` (a taskset list) when given.
 */
export async function startChild(name, script, { execArgv = [], env = {}, args = [], cwd = undefined, readyTimeoutMs = 30_000, cpus = undefined } = {}) {
  const child = fork(script, args, {
    execArgv,
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced', // typed arrays of latencies cross as they are
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const client = ipcClient(child, name);
  const ready = await client.waitEvent((m) => m && m.event === 'ready', readyTimeoutMs);
  if (cpus !== undefined) pinToCpus(child.pid, cpus);
  return { ...client, pid: child.pid, ready };
}

/** Stops one child: SIGTERM by PID, SIGKILL after `graceMs`. */
export async function stopChild(c, graceMs = 3000) {
  const child = c.child ?? c;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  try { process.kill(child.pid, 'SIGTERM'); } catch { return; }
  const timer = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Kills every child still alive, by PID (synchronous: usable in 'exit'). */
export function killAllChildren() {
  for (const child of children) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
  }
  children.clear();
}

/**
 * Binds every thread of process `pid` (V8's helpers too) to the CPUs of the
 * taskset list `cpus`; threads it starts later inherit the binding (--pin).
 */
export function pinToCpus(pid, cpus) {
  const r = spawnSync('taskset', ['--all-tasks', '--cpu-list', '--pid', cpus, String(pid)], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`taskset could not pin process ${pid} to CPUs ${cpus}: ${r.error?.message ?? r.stderr.trim()}`);
}

/**
 * The CPUs each thread of process `pid` may run on (Cpus_allowed_list of
 * /proc/<pid>/task/<tid>/status), the distinct lists joined by a space: what
 * --pin did, read back.
 */
export function allowedCpus(pid) {
  const lists = new Set();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
      if (m) lists.add(m[1]);
    } catch { /* the thread ended */ }
  }
  return [...lists].sort().join(' ');
}

const TICK = 100; // CLK_TCK on Linux (getconf CLK_TCK); /proc times are in ticks

/** CPU time (user+system, ms) the process has used so far, from /proc/<pid>/stat. */
export function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / TICK;
}

/**
 * How long the process's main thread (the event loop) has waited, runnable,
 * for a CPU (ms): /proc/<pid>/schedstat's second field. On a machine whose
 * cores the server shares with the load generators, this is the time the
 * server could have worked but another process had the core.
 */
export function runDelayMs(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
  } catch {
    return NaN; // a kernel without schedstats
  }
}

/**
 * This machine's CPU time so far, all CPUs together (ms), from /proc/stat:
 * `busy` what every process and the kernel used (user, nice, system, irq,
 * softirq), `steal` what the hypervisor took from the virtual CPUs.
 */
export function machineCpuMs() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].split(/\s+/).map(Number);
  // cpu user nice system idle iowait irq softirq steal ...
  return { busy: ((f[1] + f[2] + f[3] + f[6] + f[7]) * 1000) / TICK, steal: (f[8] * 1000) / TICK };
}

/** Resident set size in bytes, from /proc/<pid>/status. */
export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}
