import { existsSync, readFileSync } from 'node:fs';

/**
 * Signals to a whole process group. Every command is spawned `detached`, so
 * it leads a new process group whose id is its pid; signalling `-pid` reaches
 * the program and every child it started that did not leave the group, so a
 * timeout or a cancel never leaves a grandchild running. Linux keeps a group
 * id allocated while any member lives, so `-pid` cannot name a stranger's
 * group as long as one of ours is still there.
 */

/**
 * What became of a signal sent to a group: `sent` (to at least one member),
 * `gone` (no member left), `denied` (members remain, but none is ours to
 * signal: they run as another user, e.g. through sudo or a set-user-ID program).
 */
export type GroupSignalResult = 'sent' | 'gone' | 'denied';

/**
 * Sends `signal` to the group led by `pid`. Never throws for a group that is
 * gone or out of reach: it is called from timers, where a throw would end
 * the whole server.
 */
export function signalGroup(pid: number, signal: NodeJS.Signals): GroupSignalResult {
  try {
    process.kill(-pid, signal);
    return 'sent';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'gone';
    if (code === 'EPERM') return 'denied';
    throw e;
  }
}

/**
 * True when our child `pid` has already exited (a zombie waiting to be reaped, or already
 * reaped), though Node may not have emitted its 'exit' event yet: libuv reaps on SIGCHLD and
 * reports on a later turn of the event loop, a window of up to milliseconds. Read from
 * /proc/<pid>/stat (Linux), synchronously, so no event can come between this answer and the
 * caller's next step; elsewhere it says false (not known to have exited).
 */
export function childExited(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    // No such pid while /proc is there: reaped, its 'exit' event queued. No /proc: not Linux.
    return existsSync('/proc/self/stat');
  }
  // "pid (comm) S ppid pgrp session tty tpgid flags …" (proc(5)): comm may hold spaces and
  // parentheses, so the fields are counted from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  // PF_EXITING: in exit_group() already, with its status decided; a signal now is ignored, and
  // it becomes a zombie only once the kernel has freed its memory and files (1 in 30 cancels of
  // `sleep 0.05` at its end met this, not the zombie, in tests).
  const exiting = (Number(fields[6]) & PF_EXITING) !== 0;
  return state === 'Z' || state === 'X' || exiting;
}

/** The kernel's per-task flag "getting shut down" (include/linux/sched.h), in /proc/<pid>/stat field 9. */
const PF_EXITING = 0x4;

/** True while any process of the group led by `pid` exists. */
export function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch (e) {
    // EPERM means it exists but is not ours to signal: still alive.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What names one process for good, where a pid alone does not (the kernel hands a pid out
 * again once its process is reaped): the boot's id and the process's start time, in clock
 * ticks since boot (/proc/<pid>/stat field 22, proc(5)). Undefined when /proc cannot say
 * (no such process, not Linux). Recorded at launch, it tells at a restart whether a pid
 * from the audit trail is still the program Herald started or a stranger that got its pid.
 */
export function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Counted from the last ')': the state is the third field, the start time the 22nd.
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    if (startTime === undefined) return undefined;
    return `${bootId()}/${startTime}`;
  } catch {
    return undefined;
  }
}

/** True when `pid` is the very process `identity` was read from (processIdentity), still there. */
export function sameProcess(pid: number, identity: string | undefined): boolean {
  return identity !== undefined && processIdentity(pid) === identity;
}

let boot: string | undefined;

/** The kernel's id of this boot: a start time is counted from the boot, so it names a process only within one. */
function bootId(): string {
  boot ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return boot;
}
