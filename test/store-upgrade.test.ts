/**
 * Opening files of older Heralds, each built here in its old layout with
 * better-sqlite3 as that Herald wrote it: the EPOCHs of never-written
 * streams are derived as the file's Herald derived them (SHA-256 before
 * commit ea609f1) and its idle streams are evicted; the schema version is
 * raised only by the first write that needs it, said in the log, never by a
 * start that failed or only read; a lone-surrogate idempotency key that
 * Heralds of schema 2 stored opens; a row that cannot be read is named.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createV1File } from './helpers/v1-store.js';
import { encodeEntry } from '../src/server/store/journal-codec.js';
import { derivedEpoch } from '../src/server/store/message-id.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { capturedLog } from './helpers/captured-log.js';
import { runCli } from './helpers/cli.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

async function withFile(body: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-upgrade-'));
  try {
    await body(join(dir, 'herald.sqlite'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function msg(n: number | string): string {
  return JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}` });
}

/** A never-written stream's EPOCH as Heralds before commit ea609f1 derived it (every schema 1 file). */
function sha256Epoch(storeEpoch: string, stream: string): string {
  return createHash('sha256').update(storeEpoch).update('\0').update(stream).digest('base64url').slice(0, 8);
}

/** The layout of schema version 1 (one row per notification), closed cleanly, as the SQLite store wrote it until the journal. */
function writeV1(file: string, storeEpoch: string, streams: Array<[stream: string, epoch: string, lastSeq: number]>): void {
  const v1 = createV1File(file);
  v1.prepare("INSERT INTO meta VALUES ('schema', '1'), ('epoch', ?), ('boot', 'boot-1'), ('clean', '1')").run(storeEpoch);
  const put = v1.prepare('INSERT INTO streams VALUES (?, ?, ?, ?, 0)');
  for (const [stream, epoch, lastSeq] of streams) put.run(stream, epoch, lastSeq, lastSeq);
  v1.close();
}

/**
 * The layout of schema versions 2 to 4 (the journal), closed cleanly: the
 * streams' rows and one journal row per body, written as those Heralds wrote
 * them (the body bound as a JS string).
 */
function writeJournal(file: string, schema: string, storeEpoch: string, streams: Array<[stream: string, epoch: string, lastSeq: number]>, bodies: Array<[maxExpiresAt: number, body: string]>): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE streams (
      stream TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, acked INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE journal (id INTEGER PRIMARY KEY, max_expires_at INTEGER NOT NULL, body TEXT NOT NULL);
  `);
  db.prepare("INSERT INTO meta VALUES ('schema', ?), ('epoch', ?), ('boot', 'boot-1'), ('clean', '1')").run(schema, storeEpoch);
  const put = db.prepare('INSERT INTO streams (stream, epoch) VALUES (?, ?)');
  for (const [stream, epoch] of streams) put.run(stream, epoch);
  const row = db.prepare('INSERT INTO journal (max_expires_at, body) VALUES (?, ?)');
  for (const [expires, body] of bodies) row.run(expires, body);
  db.close();
}

/** `meta`'s values, read with a connection of its own. */
function meta(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true });
  try {
    return Object.fromEntries(db.prepare<[], { key: string; value: string }>('SELECT key, value FROM meta').all().map((r) => [r.key, r.value]));
  } finally {
    db.close();
  }
}

describe('a schema 1 file derives EPOCHs as its Herald did', () => {
  it('gives a never-written stream the EPOCH the old Herald gave its tabs, and keeps it across restarts', () => withFile(async (file) => {
    writeV1(file, 'storeEp1', [['admin:1', sha256Epoch('storeEp1', 'admin:1'), 2]]);
    for (let open = 0; open < 2; open++) {
      const store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
      try {
        // A tab of user 42 connected to the old Herald holds this EPOCH: the same one is no RESET.
        assert.equal(store.head('user:42').epoch, sha256Epoch('storeEp1', 'user:42'), `open ${open}`);
        assert.equal(store.head('*:user').epoch, sha256Epoch('storeEp1', '*:user'));
        // Written now, the stream records that EPOCH.
        const r = await store.append({ stream: 'user:42', json: msg(1), expiresAt: T0 + HOUR }, T0);
        assert.equal(r.epoch, sha256Epoch('storeEp1', 'user:42'));
      } finally {
        await store.close();
      }
    }
    assert.equal(meta(file).epoch_derivation, 'sha256 storeEp1');
  }));

  it('evicts the old Herald\'s idle streams', () => withFile(async (file) => {
    writeV1(file, 'storeEp1', [['admin:1', sha256Epoch('storeEp1', 'admin:1'), 3], ['admin:2', sha256Epoch('storeEp1', 'admin:2'), 5]]);
    const store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    try {
      assert.equal(store.counts().streams, 2);
      await store.prune(T0);
      await store.prune(T0 + 1);
      assert.equal(store.counts().streams, 0, 'idle at two passes: evicted');
      // Back under the same EPOCH, above every SEQ it had.
      assert.deepEqual(store.head('admin:1'), { epoch: sha256Epoch('storeEp1', 'admin:1'), lastSeq: 5, firstSeq: 6, ackedSeq: 5 });
    } finally {
      await store.close();
    }
    const db = new Database(file, { readonly: true });
    assert.equal(db.prepare('SELECT count(*) FROM streams').pluck().get(), 0);
    db.close();
    assert.equal(meta(file).seq_floor, '5');
  }));

  it('tells a schema 2 file written before ea609f1 by its streams\' EPOCHs, and one written after alike', () => withFile(async (file) => {
    writeJournal(file, '2', 'storeEp2', [['admin:1', sha256Epoch('storeEp2', 'admin:1'), 0]], [[T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))]]);
    let store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    try {
      assert.equal(store.head('user:7').epoch, sha256Epoch('storeEp2', 'user:7'));
    } finally {
      await store.close();
    }
    rmSync(file);
    writeJournal(file, '2', 'storeEp2', [['admin:1', derivedEpoch('storeEp2', 'admin:1'), 0]], [[T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))]]);
    store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    try {
      assert.equal(store.head('user:7').epoch, derivedEpoch('storeEp2', 'user:7'));
    } finally {
      await store.close();
    }
  }));

  it('derives the current way once the store epoch rotates', () => withFile(async (file) => {
    writeV1(file, 'storeEp1', [['admin:1', sha256Epoch('storeEp1', 'admin:1'), 2]]);
    let store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    await store.close();
    // An unclean stop before a power cut: the next start rotates every EPOCH.
    const db = new Database(file);
    db.exec("UPDATE meta SET value = '0' WHERE key = 'clean'");
    db.close();
    store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-2', clock: () => T0 });
    try {
      assert.equal(store.rotatedEpochs, true);
      const storeEpoch = meta(file).epoch!;
      assert.notEqual(storeEpoch, 'storeEp1');
      assert.equal(store.head('user:7').epoch, derivedEpoch(storeEpoch, 'user:7'));
      assert.equal(store.head('admin:1').epoch, derivedEpoch(storeEpoch, 'admin:1'));
    } finally {
      await store.close();
    }
  }));
});

describe('the schema version is raised by the first write that needs it', () => {
  it('a store that only read a schema 3 file leaves it at 3; an eviction raises it to 4, said in the log', () => withFile(async (file) => {
    const epoch = derivedEpoch('storeEp3', 'admin:1');
    writeJournal(file, '3', 'storeEp3', [['admin:1', epoch, 0]], [[T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))]]);
    const log = capturedLog();
    let store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0, logger: log.logger });
    try {
      assert.equal((await store.readAfter('admin:1', 0, 10, T0)).messages.length, 1);
    } finally {
      await store.close();
    }
    assert.equal(meta(file).schema, '3', 'a Herald of schema 3 still opens it');
    store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0, logger: log.logger });
    try {
      await store.append({ stream: 'admin:2', json: msg(2), expiresAt: T0 + HOUR }, T0);
      await store.ack('admin:1', 1);
      assert.equal(meta(file).schema, '3', 'journal rows and acks are what schema 3 reads');
      // admin:1's notification expires; idle at two passes, it is evicted, and the floor written.
      await store.prune(T0 + HOUR);
      await store.prune(T0 + HOUR + 1);
      assert.equal(meta(file).seq_floor, '1');
      assert.equal(meta(file).schema, '4');
    } finally {
      await store.close();
    }
    const upgrades = log.lines().filter((l) => /upgraded/.test(l.msg));
    assert.deepEqual(upgrades.map((l) => [l.from, l.to]), [[3, 4]]);
    assert.match(upgrades[0]!.msg, /^store: file upgraded from schema 3 to 4 \(/);
  }));

  it('a schema 4 file goes to 5 with the first list send, whose JSON the journal writes once; other sends leave it at 4', () => withFile(async (file) => {
    writeJournal(file, '4', 'storeEp4', [['admin:1', derivedEpoch('storeEp4', 'admin:1'), 0]], [[T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))]]);
    const log = capturedLog();
    const listed = JSON.stringify({ TYPE: 'MESSAGE', TEXT: 'Плановые работы'.padEnd(1600, '.') });
    const people = Array.from({ length: 500 }, (_, i) => `user:${i + 1}`);
    let store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0, logger: log.logger });
    try {
      await store.appendMany([{ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, { stream: 'admin:2', json: msg(3), expiresAt: T0 + HOUR }], T0);
      assert.equal(meta(file).schema, '4', 'a batch of different notifications is what schema 4 reads');
      await store.appendMany(people.map((stream) => ({ stream, json: listed, expiresAt: T0 + HOUR })), T0);
      assert.equal(meta(file).schema, '5');
    } finally {
      await store.close();
    }
    assert.deepEqual(log.lines().filter((l) => /upgraded/.test(l.msg)).map((l) => [l.from, l.to]), [[4, 5]]);
    // The row of the list send holds its JSON once; every person's notification comes back.
    const db = new Database(file, { readonly: true });
    const rows = db.prepare<[], string>('SELECT body FROM journal ORDER BY id').pluck().all();
    db.close();
    const last = rows.at(-1)!;
    assert.equal(last.split(listed).length, 2, 'the JSON once in the row');
    assert.ok(last.length < listed.length + people.length * 40, `${last.length} characters for ${people.length} people`);
    store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    try {
      assert.equal(store.loaded.messages, 3 + people.length);
      for (const stream of people) assert.deepEqual((await store.readAfter(stream, 0, 10, T0)).messages.map((m) => [m.seq, m.json]), [[1, listed]], stream);
      assert.deepEqual((await store.readAfter('admin:1', 0, 10, T0)).messages.map((m) => m.json), [msg(1), msg(2)]);
      // One copy in memory after loading too: the arena holds one 1 MiB chunk for it all.
      assert.equal(store.counts().retainedMemoryBytes, 1 << 20);
    } finally {
      await store.close();
    }
  }));

  it('a schema 2 file goes to 3 with the first journal row, not before', () => withFile(async (file) => {
    writeJournal(file, '2', 'storeEp2', [['admin:1', derivedEpoch('storeEp2', 'admin:1'), 0]], [[T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))]]);
    const log = capturedLog();
    const store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0, logger: log.logger });
    try {
      assert.equal(meta(file).schema, '2');
      await store.ack('admin:1', 1);
      assert.equal(meta(file).schema, '3', 'an ack entry, which a Herald of schema 2 cannot read');
    } finally {
      await store.close();
    }
    assert.deepEqual(log.lines().filter((l) => /upgraded/.test(l.msg)).map((l) => [l.from, l.to]), [[2, 3]]);
  }));

  it('herald start whose listen fails leaves a schema 3 file to the previous Herald', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-upgrade-start-'));
    const blocker = createServer();
    try {
      blocker.listen(0, '127.0.0.1');
      await once(blocker, 'listening');
      const port = (blocker.address() as { port: number }).port;
      const dataDir = join(dir, 'data');
      mkdirSync(dataDir);
      const file = join(dataDir, 'herald.sqlite');
      writeJournal(file, '3', 'storeEp3', [['admin:1', derivedEpoch('storeEp3', 'admin:1'), 0]], [[Date.now() + HOUR, encodeEntry('admin:1', 1, Date.now() + HOUR, 0, undefined, msg(1))]]);
      const config = join(dir, 'herald.json');
      writeFileSync(config, JSON.stringify({ port, host: '127.0.0.1', dataDir, legacyEnabled: false, logLevel: 'info' }));
      const r = await runCli(['start', '--config', config], { timeoutMs: 15_000 });
      assert.notEqual(r.code, 0, 'the port is taken');
      assert.match(r.stdout + r.stderr, /EADDRINUSE/);
      assert.equal(meta(file).schema, '3');
    } finally {
      blocker.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a file the load cannot read', () => {
  it('opens a lone-surrogate idempotency key stored by a Herald of schema 2, exactly', () => withFile(async (file) => {
    const streams: Array<[string, string, number]> = [1, 2, 3].map((a) => [`admin:${a}`, derivedEpoch('storeEp2', `admin:${a}`), 0]);
    // Three sends, one row each, the second with the key "\ud83d" (its JS string bound as it was: SQLite then holds WTF-8).
    writeJournal(file, '2', 'storeEp2', streams, [
      [T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, 'ok-key', msg(1))],
      [T0 + HOUR, encodeEntry('admin:2', 1, T0 + HOUR, 0, '\ud83d', msg(2))],
      [T0 + HOUR, encodeEntry('admin:3', 1, T0 + HOUR, 0, 'after', msg(3))],
    ]);
    const store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 });
    try {
      for (const a of [1, 2, 3]) assert.deepEqual((await store.readAfter(`admin:${a}`, 0, 10, T0)).messages.map((m) => m.json), [msg(a)]);
      const again = await store.append({ stream: 'admin:2', json: msg('again'), expiresAt: T0 + HOUR, idempotencyKey: '\ud83d' }, T0);
      assert.deepEqual([again.duplicate, again.seq], [true, 1], 'the key came back as it was sent');
      assert.equal(store.counts().keys, 3);
    } finally {
      await store.close();
    }
  }));

  it('names the row and the remedy, and leaves the file as it was (schema, clean mark, epoch)', () => withFile(async (file) => {
    writeJournal(file, '2', 'storeEp2', [['admin:1', derivedEpoch('storeEp2', 'admin:1'), 0]], [
      [T0 + HOUR, encodeEntry('admin:1', 1, T0 + HOUR, 0, undefined, msg(1))],
      [T0 + HOUR, 'not a journal body'],
    ]);
    const before = meta(file);
    assert.throws(() => new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 }), (e: Error) => {
      assert.match(e.message, /journal row 2 cannot be read \(corrupt journal body at \d+\)/);
      assert.match(e.message, /DELETE FROM journal WHERE id = 2/);
      return true;
    });
    assert.deepEqual(meta(file), before, 'nothing of the failed open was committed');
  }));

  it('a schema 1 file whose load fails is not migrated', () => withFile(async (file) => {
    writeV1(file, 'storeEp1', [['admin:1', sha256Epoch('storeEp1', 'admin:1'), 2]]);
    // A floor that is no SEQ fails the load after the migration.
    const db = new Database(file);
    db.exec("INSERT INTO meta VALUES ('seq_floor', 'x')");
    db.close();
    assert.throws(() => new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1', clock: () => T0 }), /seq_floor is not a SEQ/);
    assert.equal(meta(file).schema, '1');
    const after = new Database(file, { readonly: true });
    assert.deepEqual(after.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all(), ['idempotency', 'messages', 'meta', 'streams']);
    after.close();
  }));
});
