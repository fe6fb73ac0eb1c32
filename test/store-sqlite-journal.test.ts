/**
 * The SQLite store as a journal (schema 3): what a reopen rebuilds from it
 * (cap, expiry, idempotency keys, byte-exact notifications, acks), what
 * survives a killed process and the pruning of journal rows (never a SEQ
 * assigned twice, never an ack lost), and the migration of version 1 and 2
 * files.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createV1File } from './helpers/v1-store.js';
import fc from 'fast-check';
import { CorruptJournalError, decodeBody, encodeAck, encodeEntry, type JournalEntry } from '../src/server/store/journal-codec.js';
import type { AppendResult } from '../src/server/store/message-store.js';
import { derivedEpoch } from '../src/server/store/message-id.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { bundled } from './helpers/bundle.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const root = new URL('..', import.meta.url).pathname;

async function withFile(body: (file: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-journal-'));
  try {
    await body(join(dir, 'herald.sqlite'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function msg(n: number | string): string {
  return JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}` });
}

/** Runs the operations in a SqliteStore of another process, then kills that process with SIGKILL (the store never closes). */
async function runAndKill(file: string, ops: unknown[]): Promise<unknown[]> {
  const child = spawn(process.execPath, [bundled('test/store-sqlite-writer.ts')], {
    cwd: root, env: { ...process.env, HERALD_TEST_STORE_FILE: file, HERALD_TEST_STORE_OPS: JSON.stringify(ops) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<unknown>((resolve) => child.once('exit', resolve));
  try {
    const results = await new Promise<unknown[]>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`no DONE from the writer within 20 s: ${out}`)), 20_000);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        out += chunk;
        const line = out.split('\n').find((l) => l.startsWith('DONE '));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line.slice(5)) as unknown[]);
        }
      });
      child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before DONE: ${out}`)));
    });
    return results;
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

describe('SqliteStore journal', () => {
  it('a reopen rebuilds the cap, expiry and idempotency keys as they were', () => withFile(async (file) => {
    const open = (now: number, maxPerStream = 3) => new SqliteStore({ file, maxPerStream, clock: () => now });
    let store = open(T0);
    const one = [];
    for (let i = 1; i <= 5; i++) {
      one.push(await store.append(i === 1 ? { stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR, idempotencyKey: 'k1' } : { stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR }, T0));
    }
    assert.deepEqual(one.map((r) => r.dropped), [0, 0, 0, 1, 1]);
    // admin:2: the 4th append drops the 1st for the cap while the short-lived 2nd still counts.
    for (const [i, ttl] of [[1, HOUR], [2, 10], [3, HOUR], [4, HOUR]] as const) {
      await store.append({ stream: 'admin:2', json: msg(i), expiresAt: T0 + ttl }, T0);
    }
    await store.append({ stream: 'admin:3', json: msg(1), expiresAt: T0 + 10, idempotencyKey: 'short' }, T0);
    await store.append({ stream: 'admin:3', json: msg(2), expiresAt: T0 + HOUR }, T0);
    await store.close();

    const later = T0 + 100;
    store = open(later);
    try {
      const a1 = await store.readAfter('admin:1', 0, 10, later);
      assert.deepEqual(a1.messages.map((m) => [m.seq, m.json]), [[3, msg(3)], [4, msg(4)], [5, msg(5)]]);
      assert.deepEqual([a1.firstSeq, a1.lastSeq, a1.epoch], [3, 5, one[0]!.epoch]);
      const again = await store.append({ stream: 'admin:1', json: msg('again'), expiresAt: T0 + HOUR, idempotencyKey: 'k1' }, later);
      assert.deepEqual([again.seq, again.duplicate, again.dropped], [6, false, 1], 'the key went with its notification, dropped for the cap');
      const a2 = await store.readAfter('admin:2', 0, 10, later);
      assert.deepEqual(a2.messages.map((m) => m.seq), [3, 4], 'the expired 2nd is not loaded, the dropped 1st does not come back');
      assert.equal(a2.firstSeq, 3);
      const fresh = await store.append({ stream: 'admin:3', json: msg(3), expiresAt: T0 + HOUR, idempotencyKey: 'short' }, later);
      assert.deepEqual([fresh.seq, fresh.duplicate], [3, false], 'an expired key is free again; its SEQ is not reused');
      assert.equal(await store.prune(later), 0, 'nothing expired was loaded');
      assert.equal(store.loaded.messages, 3 + 2 + 1);
    } finally {
      await store.close();
    }
    // A smaller cap applies to what is loaded.
    store = open(later, 2);
    try {
      assert.deepEqual((await store.readAfter('admin:1', 0, 10, later)).messages.map((m) => m.seq), [5, 6]);
    } finally {
      await store.close();
    }
  }));

  it('notifications come back byte for byte, in order, from many batches', () => withFile(async (file) => {
    const odd = [
      msg(1), '{}', JSON.stringify({ TEXT: '12:34,56:' }), JSON.stringify({ TEXT: 'Платіж 🎉 "quoted" \\ back\nline' }),
      JSON.stringify({ A: '\u0000\u2028\ud83d\ude00' }), 'x'.repeat(70_000),
    ];
    const streams = ['admin:1', 'user:ü:2', 'admin:*', '1:2'];
    let store = new SqliteStore({ file, maxPerStream: 1000, clock: () => T0 });
    const sent: AppendResult[] = [];
    for (let batch = 0; batch < 5; batch++) {
      sent.push(...await Promise.all(odd.flatMap((json, i) => streams.map((stream, j) => store.append(
        { stream, json, expiresAt: T0 + HOUR + i, idempotencyKey: `b${batch}:${i}:${j}:🔑` }, T0,
      )))));
    }
    const before = await Promise.all(streams.map((s) => store.readAfter(s, 0, 1000, T0)));
    await store.close();
    store = new SqliteStore({ file, maxPerStream: 1000, clock: () => T0 });
    try {
      assert.deepEqual(await Promise.all(streams.map((s) => store.readAfter(s, 0, 1000, T0))), before);
      assert.equal(before[1]!.messages.length, 5 * odd.length);
      assert.equal(store.loaded.journalRows, 5);
      const dup = await store.append({ stream: 'user:ü:2', json: '{}', expiresAt: T0 + HOUR, idempotencyKey: 'b3:2:1:🔑' }, T0);
      assert.deepEqual(dup, { ...sent[3 * odd.length * streams.length + 2 * streams.length + 1]!, duplicate: true });
    } finally {
      await store.close();
    }
  }));

  it('a killed process loses no committed append, and the next SEQ follows the last one', () => withFile(async (file) => {
    const appends = [1, 2, 3].map((i) => ({ op: 'append', stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR, now: T0 }));
    const results = await runAndKill(file, [...appends, { op: 'append', stream: 'admin:2', json: msg(1), expiresAt: T0 + HOUR, now: T0 }]) as AppendResult[];
    const store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    try {
      assert.equal(store.rotatedEpochs, false, 'same boot: a killed process lost nothing');
      const r = await store.readAfter('admin:1', 0, 10, T0);
      assert.deepEqual(r.messages.map((m) => m.id), results.slice(0, 3).map((x) => x.id));
      const next = await store.append({ stream: 'admin:1', json: msg(4), expiresAt: T0 + HOUR }, T0);
      assert.deepEqual([next.seq, next.epoch], [4, results[0]!.epoch]);
    } finally {
      await store.close();
    }
  }));

  it('a power cut that takes every commit not yet fsynced still leaves the mark that the store was open, so the next boot rotates epochs', () => withFile(async (file) => {
    // Closed cleanly once, with SEQ 1 (a close checkpoints the WAL into the file and fsyncs it).
    let store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-before', clock: () => T0 });
    const first = await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0);
    await store.close();
    // Opened again and sent SEQ 2 and 3 (tabs saw them), then the machine lost power. Under
    // synchronous=normal a commit is fsynced up to a second later (walSyncMs) or at a
    // checkpoint: the power cut came first, and the WAL's frames were still only in the page cache.
    const lost = await runAndKill(file, [2, 3].map((i) => ({ op: 'append', stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR, now: T0 }))) as AppendResult[];
    assert.deepEqual(lost.map((r) => [r.seq, r.epoch]), [[2, first.epoch], [3, first.epoch]]);
    rmSync(`${file}-wal`);
    rmSync(`${file}-shm`, { force: true });
    store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-after-the-power-cut', clock: () => T0 });
    try {
      assert.equal(store.rotatedEpochs, true, 'the open was recorded durably before anything was sent');
      const next = await store.append({ stream: 'admin:1', json: msg('again'), expiresAt: T0 + HOUR }, T0);
      assert.equal(next.seq, 2);
      assert.notEqual(next.epoch, first.epoch, 'SEQ 2 is assigned again, so under another EPOCH: a tab that saw the lost SEQ 2 gets a RESET');
    } finally {
      await store.close();
    }
  }));

  for (const how of ['deleted', 'overwritten with random bytes'] as const) {
    it(`a killed process's WAL ${how} while it is stopped: the sends it held are lost, so every stream gets a new EPOCH (same boot)`, () => withFile(async (file) => {
      let store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
      const first = await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0);
      await store.close();
      // SEQ 2 and 3 answered as stored (tabs saw them), only in the WAL when the process was killed.
      const lost = await runAndKill(file, [2, 3].map((i) => ({ op: 'append', stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR, now: T0 }))) as AppendResult[];
      assert.deepEqual(lost.map((r) => [r.seq, r.epoch]), [[2, first.epoch], [3, first.epoch]]);
      assert.ok(statSync(`${file}-wal`).size > 0, 'a killed process leaves its WAL');
      if (how === 'deleted') {
        rmSync(`${file}-wal`);
        rmSync(`${file}-shm`, { force: true });
      } else {
        writeFileSync(`${file}-wal`, randomBytes(statSync(`${file}-wal`).size));
      }
      store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
      try {
        assert.equal(store.rotatedEpochs, true, 'the WAL is gone or unusable: its sends may be lost');
        assert.match(store.rotation ?? '', how === 'deleted' ? /-wal file is gone/ : /-wal file is not a WAL SQLite can read/);
        const next = await store.append({ stream: 'admin:1', json: msg('again'), expiresAt: T0 + HOUR }, T0);
        assert.equal(next.seq, 2);
        assert.notEqual(next.epoch, first.epoch, 'SEQ 2 is assigned again, so under another EPOCH: a tab that saw the lost SEQ 2 gets a RESET');
        assert.notEqual(next.id, lost[0]!.id, 'a message id never names two notifications');
      } finally {
        await store.close();
      }
      // Closed cleanly now: the next start keeps the new EPOCH.
      store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
      try {
        assert.equal(store.rotatedEpochs, false);
      } finally {
        await store.close();
      }
    }));
  }

  it('a WAL deleted under the running store and rescued into the file keeps every EPOCH at the next start', () => withFile(async (file) => {
    let store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    const first = await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0);
    rmSync(`${file}-wal`);
    // The commit that finds the WAL gone is copied into the file with the rest, and counts.
    const second = await store.append({ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, T0);
    await assert.rejects(store.append({ stream: 'admin:1', json: msg(3), expiresAt: T0 + HOUR }, T0), /deleted or replaced/);
    await store.close();
    assert.equal(existsSync(`${file}-wal`), false);
    store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    try {
      assert.equal(store.rotatedEpochs, false, 'nothing was lost: the file holds every commit');
      assert.deepEqual((await store.readAfter('admin:1', 0, 10, T0)).messages.map((m) => m.id), [first.id, second.id]);
    } finally {
      await store.close();
    }
  }));

  it('a checkpoint that fails after a commit (the disk full) neither fails the send nor writes it twice', () => withFile(async (file) => {
    // The files may not grow past 1 MiB: the database file reaches it while the WAL, emptied by each checkpoint, is small.
    const child = spawn('bash', ['-c', 'ulimit -f 1024 && exec "$@"', 'bash', process.execPath, bundled('test/store-sqlite-disk-writer.ts')], {
      cwd: root, env: { ...process.env, HERALD_TEST_STORE_FILE: file, HERALD_TEST_STORE_N: '300' }, stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<unknown>((resolve) => child.once('exit', resolve));
    let done: { answers: Array<{ n: number; seq?: number; error?: string }>; checkpointErrors: string[] };
    try {
      done = await new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no DONE from the writer within 60 s: ${out}`)), 60_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          out += chunk;
          const line = out.split('\n').find((l) => l.startsWith('DONE '));
          if (line) {
            clearTimeout(timer);
            resolve(JSON.parse(line.slice(5)));
          }
        });
        child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before DONE: ${out}`)));
      });
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const stored = done.answers.filter((a) => a.seq !== undefined);
    assert.ok(done.answers.some((a) => a.error !== undefined), 'the disk filled up before the last send');
    const store = new SqliteStore({ file, maxPerStream: 100_000, bootId: 'boot-test', clock: () => T0 });
    try {
      const back = (await store.readAfter('admin:1', 0, 100_000, T0)).messages.map((m) => [m.seq, (JSON.parse(m.json) as { N: number }).N]);
      // Exactly what was answered as stored, once each, under the SEQs it was answered with.
      assert.deepEqual(back, stored.map((a) => [a.seq, a.n]));
    } finally {
      await store.close();
    }
    assert.ok(done.checkpointErrors.length > 1, `checkpoints failed and were told of: ${done.checkpointErrors.join('; ')}`);
  }));

  it('a stream\'s last SEQ survives the pruning of the journal rows that held it, and a kill after it', () => withFile(async (file) => {
    const ops = [
      ...[1, 2, 3].map((i) => ({ op: 'append', stream: 'admin:1', json: msg(i), expiresAt: T0 + 10, now: T0 })),
      { op: 'append', stream: 'admin:2', json: msg(1), expiresAt: T0 + HOUR, now: T0 },
      { op: 'prune', now: T0 + 20 },
    ];
    const results = await runAndKill(file, ops) as [AppendResult, AppendResult, AppendResult, AppendResult, number];
    assert.equal(results[4], 3);
    const store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 + 20 });
    try {
      assert.equal(store.loaded.journalRows, 1, 'the three rows of admin:1 were deleted');
      const head = await store.head('admin:1');
      assert.deepEqual([head.lastSeq, head.firstSeq, head.epoch], [3, 4, results[0].epoch]);
      const next = await store.append({ stream: 'admin:1', json: msg(4), expiresAt: T0 + HOUR }, T0 + 20);
      assert.equal(next.seq, 4, 'SEQ 1 is not assigned again in the same epoch');
      assert.deepEqual((await store.readAfter('admin:2', 0, 10, T0 + 20)).messages.map((m) => m.id), [results[3].id]);
    } finally {
      await store.close();
    }
  }));

  it('notifications dropped for the cap stay dropped after the rows that pushed them out were pruned', () => withFile(async (file) => {
    const open = (now: number) => new SqliteStore({ file, maxPerStream: 2, clock: () => now });
    let store = open(T0);
    for (const i of [1, 2]) await store.append({ stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR }, T0);
    // Short-lived ones push the two long-lived ones out.
    for (const i of [3, 4]) assert.equal((await store.append({ stream: 'admin:1', json: msg(i), expiresAt: T0 + 10 }, T0)).dropped, 1);
    await store.append({ stream: 'admin:2', json: msg(1), expiresAt: T0 + 10 }, T0);
    assert.equal(await store.prune(T0 + 20), 3);
    assert.deepEqual((await store.readAfter('admin:1', 0, 10, T0 + 20)).messages, []);
    await store.close();
    store = open(T0 + 20);
    try {
      const r = await store.readAfter('admin:1', 0, 10, T0 + 20);
      assert.deepEqual(r.messages.map((m) => m.seq), [], 'SEQs 1 and 2 were dropped for the cap and stay dropped');
      assert.deepEqual([r.firstSeq, r.lastSeq], [5, 4]);
      assert.equal(store.loaded.journalRows, 4, 'the rows of 3 and 4 stay while the older, unexpired rows of 1 and 2 do; admin:2\'s went');
      // Once everything older has expired, the rows that held the floor go too.
      assert.equal(await store.prune(T0 + HOUR), 0);
    } finally {
      await store.close();
    }
    store = open(T0 + HOUR);
    try {
      assert.equal(store.loaded.journalRows, 0);
      assert.deepEqual((await store.head('admin:1')).lastSeq, 4);
    } finally {
      await store.close();
    }
  }));

  it('migrates a version 1 file on open, in one transaction', () => withFile(async (file) => {
    const cyrillic = JSON.stringify({ TYPE: 'MESSAGE', TITLE: 'Платіж отримано', TEXT: 'Just<br/>some<br/>text 🎉' });
    const v1 = createV1File(file);
    v1.exec(`
      INSERT INTO meta VALUES ('schema', '1'), ('epoch', 'storeEp1'), ('boot', 'boot-v1'), ('clean', '1');
      INSERT INTO streams VALUES ('admin:1', 'epochA1', 5, 2, 3), ('admin:2', 'epochA2', 2, 2, 0);
    `);
    const put = v1.prepare('INSERT INTO messages VALUES (?, ?, ?, ?)');
    put.run('admin:1', 3, msg(3), T0 + HOUR);
    put.run('admin:1', 4, cyrillic, T0 + HOUR);
    put.run('admin:1', 5, msg(5), T0 + 2 * HOUR);
    // The key of SEQ 5, and of SEQ 1, whose notification the cap dropped.
    v1.prepare('INSERT INTO idempotency VALUES (?, ?, ?, ?), (?, ?, ?, ?)').run('admin:1', 'k5', 5, T0 + 2 * HOUR, 'admin:1', 'k1', 1, T0 + HOUR);
    v1.close();

    let store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-v1', clock: () => T0 });
    const check = async () => {
      const r = await store.readAfter('admin:1', 0, 10, T0);
      assert.deepEqual(r.messages, [
        { id: 'epochA1.3.admin:1', seq: 3, json: msg(3), expiresAt: T0 + HOUR },
        { id: 'epochA1.4.admin:1', seq: 4, json: cyrillic, expiresAt: T0 + HOUR },
        { id: 'epochA1.5.admin:1', seq: 5, json: msg(5), expiresAt: T0 + 2 * HOUR },
      ]);
      assert.deepEqual({ ...r, messages: undefined }, { epoch: 'epochA1', lastSeq: 5, firstSeq: 3, ackedSeq: 2, messages: undefined });
      assert.deepEqual(await store.head('admin:2'), { epoch: 'epochA2', lastSeq: 2, firstSeq: 3, ackedSeq: 2 });
      assert.equal((await store.head('user:9')).epoch, derivedEpoch('storeEp1', 'user:9', 'sha256'), 'the store epoch is kept');
      assert.equal((await store.status('epochA1.4.admin:1', T0))?.acknowledged, false);
    };
    try {
      assert.equal(store.loaded.migrated, 3);
      await check();
    } finally {
      await store.close();
    }
    const raw = new Database(file);
    assert.equal(raw.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get(), '3');
    assert.deepEqual(raw.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all(), ['journal', 'meta', 'streams']);
    assert.deepEqual(raw.prepare('SELECT name FROM pragma_table_info(?)').pluck().all('streams'), ['stream', 'epoch', 'last_seq', 'acked']);
    raw.close();
    store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-v1', clock: () => T0 });
    try {
      assert.equal(store.loaded.migrated, 0);
      await check();
      const k5 = await store.append({ stream: 'admin:1', json: msg('x'), expiresAt: T0 + HOUR, idempotencyKey: 'k5' }, T0);
      assert.deepEqual([k5.duplicate, k5.seq, k5.id], [true, 5, 'epochA1.5.admin:1']);
      // k1's notification was dropped for the cap before the migration: its key is not kept either.
      const k1 = await store.append({ stream: 'admin:1', json: msg('x'), expiresAt: T0 + HOUR, idempotencyKey: 'k1' }, T0);
      assert.deepEqual([k1.duplicate, k1.seq], [false, 6]);
      assert.equal((await store.append({ stream: 'admin:2', json: msg(3), expiresAt: T0 + HOUR }, T0)).seq, 3);
    } finally {
      await store.close();
    }
  }));

  it('a write its transaction refuses fails alone: the rest of its batch commits, and nobody sees it', () => withFile(async (file) => {
    await new SqliteStore({ file, maxPerStream: 10 }).close();
    // A file that refuses one notification (as a full disk or a too large row would refuse a batch).
    const raw = new Database(file);
    raw.exec("CREATE TRIGGER poison BEFORE INSERT ON journal WHEN instr(NEW.body, 'POISON') > 0 BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
    raw.close();
    const store = new SqliteStore({ file, maxPerStream: 10, clock: () => T0 });
    try {
      const writes = await Promise.allSettled([
        store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:1', json: msg('POISON'), expiresAt: T0 + HOUR, idempotencyKey: 'p' }, T0),
        store.append({ stream: 'admin:2', json: msg('POISON'), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, T0),
        store.ack('admin:1', 1),
      ]);
      assert.deepEqual(writes.map((w) => w.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled', 'fulfilled']);
      assert.equal((writes[1] as PromiseRejectedResult).reason.code, 'HERALD_ERR_UNAVAILABLE');
      assert.deepEqual(writes.slice(0, 4).map((w) => w.status === 'fulfilled' && (w.value as AppendResult).seq), [1, false, false, 2]);
      const r = await store.readAfter('admin:1', 0, 10, T0);
      assert.deepEqual(r.messages.map((m) => m.json), [msg(1), msg(2)]);
      assert.equal(r.ackedSeq, 1);
      const h2 = await store.head('admin:2');
      assert.deepEqual([h2.lastSeq, h2.firstSeq], [0, 1], 'a stream whose only write failed is still unwritten');
      const retry = await store.append({ stream: 'admin:1', json: msg(3), expiresAt: T0 + HOUR, idempotencyKey: 'p' }, T0);
      assert.deepEqual([retry.seq, retry.duplicate], [3, false], 'the refused write left no key and no SEQ behind');
    } finally {
      await store.close();
    }
  }));

  it('acks are journal entries: the stream rows get them at pruning and on close, and a killed process keeps them', () => withFile(async (file) => {
    const rawAcked = (stream: string): number => {
      const raw = new Database(file, { readonly: true });
      try {
        return raw.prepare<[string], number>('SELECT acked FROM streams WHERE stream = ?').pluck().get(stream)!;
      } finally {
        raw.close();
      }
    };
    const ops = [
      ...[1, 2, 3].map((i) => ({ op: 'append', stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR, now: T0 })),
      { op: 'append', stream: 'admin:2', json: msg(1), expiresAt: T0 + HOUR, now: T0 },
      { op: 'ack', stream: 'admin:1', seq: 2 },
      { op: 'ack', stream: 'admin:2', seq: 1 },
    ];
    await runAndKill(file, ops);
    assert.equal(rawAcked('admin:1'), 0, 'the ack is in the journal only');
    let store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    try {
      assert.equal(store.head('admin:1').ackedSeq, 2, 'replayed from the journal after a kill');
      assert.equal(store.head('admin:2').ackedSeq, 1);
      // A row of acks alone may go at the next pruning, which writes the acks to the stream rows first.
      assert.equal(store.loaded.journalRows, 4 + 2, 'a row per append, and one per ack (each waited alone)');
      await store.ack('admin:1', 3);
      assert.equal(await store.prune(T0), 0);
      assert.equal(rawAcked('admin:1'), 3, 'saved in the same transaction that deleted the rows of acks');
      assert.equal(rawAcked('admin:2'), 1);
    } finally {
      await store.close();
    }
    store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    try {
      assert.equal(store.head('admin:1').ackedSeq, 3);
      assert.equal(store.head('admin:2').ackedSeq, 1);
      assert.equal(store.loaded.journalRows, 4, 'the rows of acks alone were pruned');
    } finally {
      await store.close();
    }
    // A kill right after a pruning that deleted a row of acks loses nothing either.
    await runAndKill(file, [
      { op: 'append', stream: 'admin:2', json: msg(2), expiresAt: T0 + HOUR, now: T0 },
      { op: 'ack', stream: 'admin:2', seq: 2 },
      { op: 'prune', now: T0 },
    ]);
    assert.equal(rawAcked('admin:2'), 2, 'written by the pruning\'s transaction');
    store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-test', clock: () => T0 });
    try {
      assert.deepEqual([store.head('admin:1').ackedSeq, store.head('admin:2').ackedSeq], [3, 2]);
      assert.equal(store.loaded.journalRows, 5, 'the row of the ack alone was pruned');
    } finally {
      await store.close();
    }
  }));

  it('an ack is a few bytes in the batch\'s journal row, not a write of the stream\'s row', () => withFile(async (file) => {
    const store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0, ackDelayMs: 0 });
    try {
      await store.appendMany(['admin:1', 'admin:2'].map((stream) => ({ stream, json: msg(1), expiresAt: T0 + HOUR })), T0);
      const ack = store.ackMany(new Map([['admin:1', 1], ['admin:2', 1]]));
      await store.append({ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, T0);
      await ack;
      const raw = new Database(file, { readonly: true });
      try {
        const bodies = raw.prepare<[], string>('SELECT body FROM journal ORDER BY id').pluck().all();
        assert.equal(bodies.length, 2, 'the acks rode with the append');
        assert.ok(bodies[1]!.endsWith(`${encodeAck('admin:1', 1)}${encodeAck('admin:2', 1)}`), bodies[1]);
        assert.deepEqual(raw.prepare('SELECT acked FROM streams ORDER BY stream').pluck().all(), [0, 0]);
      } finally {
        raw.close();
      }
    } finally {
      await store.close();
    }
  }));

  it('opens a version 2 file, acks and all, and leaves it at version 2 until it writes', () => withFile(async (file) => {
    let store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0 });
    await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0);
    await store.close();
    // What version 2 left: the acked SEQ in the stream's row, no ack entries.
    const raw = new Database(file);
    raw.exec("UPDATE meta SET value = '2' WHERE key = 'schema'; UPDATE streams SET acked = 1");
    raw.close();
    store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0 });
    try {
      assert.deepEqual([store.head('admin:1').lastSeq, store.head('admin:1').ackedSeq], [1, 1]);
    } finally {
      await store.close();
    }
    const after = new Database(file, { readonly: true });
    assert.equal(after.prepare("SELECT value FROM meta WHERE key = 'schema'").pluck().get(), '2');
    after.close();
  }));

  it('refuses a file of a schema version it does not know', () => withFile(async (file) => {
    const raw = new Database(file);
    raw.exec("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID; INSERT INTO meta VALUES ('schema', '6')");
    raw.close();
    assert.throws(() => new SqliteStore({ file, maxPerStream: 10 }), { code: 'HERALD_ERR_INTERNAL', message: /unknown schema version 6 \(this Herald reads versions 1 to 5: the file was written by a newer Herald/ });
  }));

  it('the journal encoding gives back any entry exactly', () => {
    // Any UTF-16 string, lone surrogates included (the codec itself is exact; SQLite's TEXT then keeps well-formed text).
    const text = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
    const entry = fc.record({
      stream: text, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), expiresAt: fc.maxSafeNat(), floor: fc.maxSafeNat(),
      key: fc.option(text, { nil: undefined }), json: fc.option(text, { nil: undefined }),
    });
    const ack = fc.record({ ack: text, acked: fc.maxSafeNat() });
    fc.assert(fc.property(fc.array(fc.oneof(entry, ack), { maxLength: 20 }), (entries) => {
      const body = entries.map((e) => ('ack' in e ? encodeAck(e.ack, e.acked) : encodeEntry(e.stream, e.seq, e.expiresAt, e.floor, e.key, e.json))).join('');
      const back: Array<JournalEntry | { ack: string; acked: number }> = [];
      decodeBody(body, (e) => back.push({ ...e }), (stream, acked) => back.push({ ack: stream, acked }));
      assert.deepEqual(back, entries.map((e) => ({ ...e })));
    }));
  });

  it('the journal encoding gives back an entry that repeats the previous entry\'s JSON (a list send) as that JSON', () => {
    const text = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) });
    const entry = fc.record({
      stream: text, seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), expiresAt: fc.maxSafeNat(), floor: fc.maxSafeNat(),
      key: fc.option(text, { nil: undefined }), json: fc.option(text, { nil: undefined }), repeat: fc.boolean(),
    });
    const ack = fc.record({ ack: text, acked: fc.maxSafeNat() });
    fc.assert(fc.property(fc.array(fc.oneof(entry, ack), { maxLength: 20 }), (entries) => {
      // What each entry's JSON is: a repeating one has its previous entry's (acks in between do not count).
      let previous: string | undefined;
      const want: Array<JournalEntry | { ack: string; acked: number }> = [];
      let body = '';
      for (const e of entries) {
        if ('ack' in e) {
          body += encodeAck(e.ack, e.acked);
          want.push({ ...e });
          continue;
        }
        const repeat = e.repeat && previous !== undefined;
        const json = repeat ? previous : e.json;
        body += encodeEntry(e.stream, e.seq, e.expiresAt, e.floor, e.key, json, repeat);
        want.push({ stream: e.stream, seq: e.seq, expiresAt: e.expiresAt, floor: e.floor, key: e.key, json });
        previous = json;
      }
      const back: Array<JournalEntry | { ack: string; acked: number }> = [];
      decodeBody(body, (e) => back.push({ ...e }), (stream, acked) => back.push({ ack: stream, acked }));
      assert.deepEqual(back, want);
    }));
  });

  it('calls a body corrupt whose first JSON is a repeat', () => {
    const body = encodeEntry('admin:1', 1, 5, 0, undefined, '{"A":1}', true);
    assert.throws(() => decodeBody(body, () => undefined, () => undefined), (e: unknown) => e instanceof CorruptJournalError && /no JSON before it to repeat/.test(e.message));
  });
});
