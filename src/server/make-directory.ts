/**
 * Making a directory and the ones missing above it, one level at a time.
 *
 * Node 20's `mkdirSync(dir, { recursive: true })` loops for ever, at 100 % CPU
 * and deaf to SIGTERM (it is synchronous), when the parent is there but
 * making the child fails with ENOENT: a data dir under /proc or /sys
 * (`/proc/1/herald`). It takes ENOENT to mean "the parent is missing", makes
 * the parent (EEXIST: fine), and tries the child again.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Makes `dir` (and each directory missing above it) with `mode`, as
 * `mkdirSync(dir, { recursive: true, mode })` does: from the nearest
 * ancestor that is there, downwards, one non-recursive mkdir a level. A
 * directory that is there already (or that another process makes meanwhile:
 * EEXIST) is left as it is. Throws an Error carrying the failure's `code`,
 * `syscall` and `path` (callers tell a file-system failure by its syscall),
 * whose message names the directory that could not be made and why.
 */
export function makeDirectory(dir: string, mode: number): void {
  const target = resolve(dir);
  const missing: string[] = [];
  for (let at = target; ; at = dirname(at)) {
    // A path stat cannot tell (EACCES: a part this user may not search; ENOTDIR: a file on the
    // way) counts as missing: the mkdir below of it, or of a part above it, fails saying why.
    if (exists(at) || at === dirname(at)) break;
    missing.push(at);
  }
  // A file (or anything but a directory) at `dir` itself: mkdir says EEXIST, as the recursive one did.
  if (missing.length === 0 && !isDirectory(target)) missing.push(target);
  for (const at of missing.reverse()) {
    try {
      mkdirSync(at, { mode });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Made by another process since it was found missing: as good as made here, if it is a directory.
      if (err.code === 'EEXIST' && isDirectory(at)) continue;
      throw cannotMake(at, err);
    }
  }
}

function exists(path: string): boolean {
  try {
    return statSync(path, { throwIfNoEntry: false }) !== undefined;
  } catch {
    // Not to be told from here: mkdir of it (or below it) says why.
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `err` from making `dir`, said as the directory that could not be made; its code, syscall and path kept. */
function cannotMake(dir: string, err: NodeJS.ErrnoException): NodeJS.ErrnoException {
  const parent = dirname(dir);
  // ENOENT with the parent there: a file system that does not let a directory be made in it.
  const why = err.code === 'ENOENT' && isDirectory(parent) ? `${err.message} (${parent} is there, but it takes no new directory: a file system such as /proc or /sys)` : err.message;
  const made = new Error(`cannot create the directory ${dir}: ${why}`) as NodeJS.ErrnoException;
  if (err.code !== undefined) made.code = err.code;
  if (err.errno !== undefined) made.errno = err.errno;
  if (err.syscall !== undefined) made.syscall = err.syscall;
  if (err.path !== undefined) made.path = err.path;
  return made;
}
