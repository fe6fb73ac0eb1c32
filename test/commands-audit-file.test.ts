/**
 * The audit file as operators treat it while Herald runs: rotated (mv) or
 * deleted, locked by a `sqlite3` shell in a transaction, or not writable.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, openSync, readSync, renameSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import pino from 'pino';
import { AUDIT_RETRY_MS, SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import type { CommandAuditRecord } from '../src/server/commands/outcome.js';
import { HeraldError } from '../src/server/errors.js';
import { makeRig, type Frame } from './commands-fixture.js';

const record = (n: number): CommandAuditRecord => ({
  event: 'finished', id: `c${n}`, aid: 1, door: 'http', program: 'echo', args: [String(n)], queuedAt: n, endedAt: n + 1, state: 'succeeded',
});

/** The ids of the finished runs in an audit file, oldest first, read by another connection as an operator would. */
function idsIn(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare(`SELECT json_extract(json, '$.id') AS id FROM command_audit ORDER BY row`).all() as Array<{ id: string }>).map((r) => r.id);
  } finally {
    db.close();
  }
}

/** A logger that keeps what the store logs. */
function logCapture(): { lines: Array<{ level: number; msg: string }>; log: pino.Logger } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as { level: number; msg: string });
      cb();
    },
  });
  return { lines, log: pino(sink) };
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the command audit file under an operator\'s hands', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-audit-file-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps every record across a rotation (mv): the moved file has those before it, a new file at the path those after', async () => {
    const file = join(dir, 'rotate.sqlite');
    const audit = new SqliteCommandAudit(file, 1000);
    const rig = await makeRig({ commandsAllow: ['echo'] }, { audit });
    const run = async (): Promise<string> => {
      const info = await rig.runner.start({ aid: 1, program: 'echo', args: ['hi'], door: 'http' });
      const done = await rig.runner.wait(info.id);
      assert.equal(done?.state, 'succeeded');
      return info.id;
    };
    const early = [await run(), await run()];
    renameSync(file, `${file}.1`);
    const late = [await run(), await run()];
    await rig.close();
    // A restart: a new store on the same path, one more run.
    const again = new SqliteCommandAudit(file, 1000);
    again.record(record(5));
    again.close();
    assert.deepEqual(idsIn(`${file}.1`), early);
    assert.deepEqual(idsIn(file), [...late, 'c5']);
    assert.equal(existsSync(`${file}-wal`), false, 'no write-ahead log left under the old name for the next file to take over');
    const warned = rig.logs.filter((l: Frame) => l.msg === 'command audit file was moved or deleted: records from now on go to a new file at its path');
    assert.equal(warned.length, 1, 'warned once');
  });

  it('after the file is deleted, writes the records that follow to a new file at the path', () => {
    const file = join(dir, 'deleted.sqlite');
    const audit = new SqliteCommandAudit(file, 1000);
    audit.record(record(1));
    audit.record(record(2));
    rmSync(file);
    audit.record(record(3));
    audit.record(record(4));
    assert.deepEqual(audit.recent().map((r) => r.id), ['c4', 'c3']);
    audit.close();
    const again = new SqliteCommandAudit(file, 1000);
    again.record(record(5));
    again.close();
    assert.deepEqual(idsIn(file), ['c3', 'c4', 'c5']);
  });

  it('does not block the server while another process holds a write lock; the record is kept and written once the lock is released', async () => {
    const file = join(dir, 'locked.sqlite');
    const audit = new SqliteCommandAudit(file, 1000);
    const { lines, log } = logCapture();
    audit.useLogger(log);
    audit.record(record(1));
    // An operator's `sqlite3` shell: BEGIN IMMEDIATE holds the write lock until COMMIT.
    const shell = new Database(file);
    shell.exec('BEGIN IMMEDIATE');
    // Waiting for the lock would hold the event loop for a second (the open's busy timeout,
    // 1000 ms) or for good; a loaded machine's scheduler alone has held it for over 100 ms.
    const HELD_MS = 400;
    let t0 = performance.now();
    audit.record(record(2));
    audit.record(record(3));
    const blocked = performance.now() - t0;
    assert.ok(blocked < HELD_MS, `record() held the event loop for ${blocked.toFixed(0)} ms`);
    // The retries run on a timer: the event loop stays free meanwhile (a 10 ms timer fires in time).
    for (let i = 0; i < Math.ceil((2 * AUDIT_RETRY_MS) / 10); i++) {
      t0 = performance.now();
      await new Promise((r) => setTimeout(r, 10));
      const lag = performance.now() - t0 - 10;
      assert.ok(lag < HELD_MS, `the event loop was held for ${lag.toFixed(0)} ms`);
    }
    assert.deepEqual(audit.recent().map((r) => r.id), ['c3', 'c2', 'c1'], 'the trail shows the records still waiting');
    assert.equal(audit.finished('c3')?.id, 'c3');
    assert.equal(lines.filter((l) => l.msg.startsWith('command audit file is locked')).length, 1, 'warned once for the spell');
    shell.exec('COMMIT');
    await until('the waiting records are in the file', () => idsIn(file).length === 3);
    assert.deepEqual(idsIn(file), ['c1', 'c2', 'c3']);
    assert.deepEqual(audit.recent().map((r) => r.id), ['c3', 'c2', 'c1']);
    // Locked again, then closed: close() writes what waits once the lock goes within its wait.
    shell.exec('BEGIN IMMEDIATE');
    audit.record(record(4));
    shell.exec('COMMIT');
    shell.close();
    audit.close();
    assert.deepEqual(idsIn(file), ['c1', 'c2', 'c3', 'c4']);
  });

  it('refuses a file it can read but not write at start-up with HERALD_ERR_CONFIG naming commandsAuditFile, not a stack trace', () => {
    const file = join(dir, 'readonly.sqlite');
    const first = new SqliteCommandAudit(file, 1000);
    first.record(record(1));
    first.close();
    // Tests run as root, which chmod 444 does not stop. A write format version above 2 in the
    // header (byte 18) makes SQLite itself open the file read-only: the first write fails.
    const fd = openSync(file, 'r+');
    const header = Buffer.alloc(20);
    readSync(fd, header, 0, 20, 0);
    header[18] = 3;
    writeSync(fd, header, 18, 1, 18);
    closeSync(fd);
    assert.throws(() => new SqliteCommandAudit(file, 1000), (e: unknown) => {
      assert.ok(e instanceof HeraldError, `not a HeraldError: ${String(e)}`);
      assert.equal(e.code, 'HERALD_ERR_CONFIG');
      assert.match(e.message, /commandsAuditFile/);
      assert.match(e.message, /readonly/i);
      return true;
    });
  });
});
