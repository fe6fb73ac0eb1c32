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
