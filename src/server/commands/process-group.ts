/**
 * Signals to a whole process group. Every command is spawned `detached`, so
 * it leads a new process group whose id is its pid; signalling `-pid` reaches
 * the program and every child it started that did not leave the group, so a
 * timeout or a cancel never leaves a grandchild running. Linux keeps a group
 * id allocated while any member lives, so `-pid` cannot name a stranger's
 * group as long as one of ours is still there.
 */

/** Sends `signal` to the group led by `pid`. Returns false when the group no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
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
