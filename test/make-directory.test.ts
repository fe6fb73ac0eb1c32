/**
 * makeDirectory: what mkdirSync's `recursive` did, one level at a time, and
 * an error instead of an endless loop where a directory cannot be made.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDirectory } from '../src/server/make-directory.js';

describe('makeDirectory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-make-dir-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('makes every missing directory with the mode, and leaves one that is there as it is', () => {
    const deep = join(dir, 'a', 'b', 'c');
    makeDirectory(deep, 0o700);
    for (const path of [join(dir, 'a'), join(dir, 'a', 'b'), deep]) assert.equal(statSync(path).mode & 0o777, 0o700, path);
    mkdirSync(join(dir, 'open'), { mode: 0o755 });
    makeDirectory(join(dir, 'open'), 0o700);
    makeDirectory(deep, 0o700);
    assert.equal(statSync(join(dir, 'open')).mode & 0o777, 0o755);
  });

  test('a file in the way is an error carrying its code and syscall, naming the directory', () => {
    const file = join(dir, 'file');
    writeFileSync(file, '');
    assert.throws(() => makeDirectory(join(file, 'sub'), 0o700), (e: NodeJS.ErrnoException) => e.code === 'ENOTDIR' && e.syscall === 'mkdir' && e.message.startsWith(`cannot create the directory ${file}/sub: ENOTDIR`));
    assert.throws(() => makeDirectory(file, 0o700), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.message.startsWith(`cannot create the directory ${file}: EEXIST`));
  });

  test('a parent that takes no new directory (/proc) is an error, not an endless loop', { skip: existsSync(`/proc/${process.pid}`) ? false : 'no /proc' }, () => {
    const target = `/proc/${process.pid}/herald/data`;
    assert.throws(() => makeDirectory(target, 0o700), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'mkdir'
      && e.message === `cannot create the directory /proc/${process.pid}/herald: ENOENT: no such file or directory, mkdir '/proc/${process.pid}/herald' (/proc/${process.pid} is there, but it takes no new directory: a file system such as /proc or /sys)`);
  });
});
