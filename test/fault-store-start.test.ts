/**
 * `herald start` on a data dir whose store it cannot use: one line naming
 * the file, exit code 1, no stack trace, and the file left as it was.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { skipUnlessCI } from './helpers/capability.js';
import { runCli } from './helpers/cli.js';
import { FaultServer } from './helpers/fault-server.js';

describe('herald start on a store it cannot use', () => {
  let good: FaultServer;
  const made: FaultServer[] = [];
  before(async () => {
    // A store as a real run leaves it (closed cleanly), copied into each case.
    good = await FaultServer.create();
    await good.start();
    const r = await good.sendBatch([{ to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'kept' }, ttl: 3600 }]);
    assert.equal(r.status, 200);
    assert.equal(await good.stop(), 0);
  });
  after(async () => {
    for (const s of [good, ...made]) await s.dispose();
  });

  /** A copy of the good data dir, damaged by `damage`, and `herald start` on it. */
  async function startOn(damage: (file: string, dir: string) => void) {
    const s = await FaultServer.create();
    made.push(s);
    mkdirSync(s.dataDir, { recursive: true });
    for (const name of ['herald.sqlite']) {
      writeFileSync(join(s.dataDir, name), readFileSync(join(good.dataDir, name)));
    }
    const file = join(s.dataDir, 'herald.sqlite');
    damage(file, s.dataDir);
    const r = await runCli(['start', '--config', s.config], { timeoutMs: 15_000 });
    return { ...r, file };
  }

  function assertRefused(r: { code: number | null; stdout: string; stderr: string; file: string }, reason: RegExp): void {
    assert.equal(r.code, 1, `exit code: ${r.stdout}${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^herald: cannot start: /);
    assert.ok(lines[0]!.includes(r.file), `names the file: ${lines[0]}`);
    assert.match(lines[0]!, reason);
    assert.doesNotMatch(r.stdout + r.stderr, /\n\s+at /, 'no stack trace');
  }

  test('garbage bytes instead of the database', async () => {
    const r = await startOn((file) => writeFileSync(file, Buffer.alloc(20_000, 0x5a)));
    assertRefused(r, /file is not a database/);
  });

  test('a database cut short (a copy that did not finish)', async () => {
    const r = await startOn((file) => truncateSync(file, 3000));
    assertRefused(r, /malformed/);
  });

  test('a file of a newer schema version (written by a newer Herald): refused, and left as it was', async () => {
    let before = Buffer.alloc(0);
    const r = await startOn((file) => {
      const db = new Database(file);
      db.prepare("UPDATE meta SET value = '99' WHERE key = 'schema'").run();
      db.close();
      before = readFileSync(file);
    });
    assertRefused(r, /unknown schema version 99 \(this Herald reads versions 1 to 5: the file was written by a newer Herald, or is not Herald's\)/);
    assert.ok(readFileSync(r.file).equals(before), 'the newer file is not changed by the refused start');
  });

  test('a directory where the file should be: a configuration error naming sqliteFile (exit 2)', async () => {
    const r = await startOn((file) => {
      rmSync(file);
      mkdirSync(file);
    });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.stderr, `herald: invalid configuration: option "sqliteFile" names a directory, ${r.file}: name a file (in it or elsewhere) (its default)\n`);
  });

  for (const lock of [false, true]) test(`a read-only data dir (a read-only mount)${lock ? ', its lock file there from the last run' : ''}: the message says the lock file and the dir are why`, async (t) => {
    const s = await FaultServer.create();
    made.push(s);
    mkdirSync(s.dataDir, { recursive: true });
    for (const name of lock ? ['herald.sqlite', 'herald.sqlite-lock'] : ['herald.sqlite']) writeFileSync(join(s.dataDir, name), readFileSync(join(good.dataDir, name)));
    // Root ignores file modes, so a read-only bind mount of the dir is the only true read-only dir here.
    const bind = spawnSync('mount', ['--bind', s.dataDir, s.dataDir]);
    if (bind.status !== 0) {
      t.skip(skipUnlessCI(`mount refused in this sandbox: ${bind.error?.message ?? (bind.stderr.toString().trim() || `exit ${bind.status}`)}`));
      return;
    }
    try {
      const ro = spawnSync('mount', ['-o', 'remount,bind,ro', s.dataDir]);
      if (ro.status !== 0) {
        t.skip(skipUnlessCI(`read-only remount refused in this sandbox: ${ro.error?.message ?? (ro.stderr.toString().trim() || `exit ${ro.status}`)}`));
        return;
      }
      const r = await runCli(['start', '--config', s.config], { timeoutMs: 15_000 });
      assertRefused({ ...r, file: join(s.dataDir, 'herald.sqlite') }, /lock file .*herald\.sqlite-lock.*its directory .* is not writable: EROFS/);
    } finally {
      spawnSync('umount', [s.dataDir]);
    }
  });
});
