import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { storeContract, T0 as CONTRACT_T0 } from './store-contract.js';
import { until } from './helpers/ws-client.js';
import { reopenable } from './helpers/reopenable-store.js';

function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'herald-store-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

storeContract('sqlite', async (limits) => {
  const tmp = tempDir();
  const file = join(tmp.dir, 'herald.sqlite');
  // The contract writes with made-up times; on reopen, what expired before "now" is not loaded.
  // An ack alone still waits for a transaction on a timer, but 10 ms instead of 200: the contract
  // awaits each ack in turn (the model test some hundreds of them); the delay itself is tested below.
  return reopenable(() => new SqliteStore({ file, ...limits, clock: () => CONTRACT_T0, ackDelayMs: 10 }), tmp.remove);
}, { durable: true });

describe('SqliteStore', () => {
  const T0 = 1_700_000_000_000;
  const json = '{"TYPE":"MESSAGE"}';

  it('commits the appends of one turn of the event loop in one transaction', async () => {
    const tmp = tempDir();
    const store = new SqliteStore({ file: join(tmp.dir, 's.sqlite'), maxPerStream: 10_000, maxBatch: 1000 });
    try {
      await Promise.all(Array.from({ length: 500 }, () => store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0)));
      assert.deepEqual(store.stats, { batches: 1, writes: 500 });
      await Promise.all(Array.from({ length: 2500 }, () => store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0)));
      assert.deepEqual(store.stats, { batches: 4, writes: 3000 }, 'at most maxBatch per transaction');
      await store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0);
      await store.ack('admin:1', 3);
      assert.equal(store.stats.batches, 6);
    } finally {
      await store.close();
      tmp.remove();
    }
  });

  it('acks alone wait ackDelayMs for a transaction, and ride with the next append', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const turn = () => new Promise((r) => setImmediate(r));
    try {
      let store = new SqliteStore({ file, maxPerStream: 100, ackDelayMs: 300 });
      await store.appendMany(['admin:1', 'admin:1', 'admin:2', 'admin:3'].map((stream) => ({ stream, json, expiresAt: T0 + 1e6 })), T0);
      const before = store.stats.batches;
      // Acks of three turns, then a wait shorter than the delay: nothing committed yet.
      const acked: string[] = [];
      const acks = ['admin:1', 'admin:2', 'admin:3'].map(async (stream) => {
        await turn();
        await store.ackMany(new Map([[stream, 1]]));
        acked.push(stream);
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(acked, []);
      assert.equal(store.stats.batches, before);
      assert.equal(store.head('admin:1').ackedSeq, 0, 'memory changes only once committed');
      const first = `${store.head('admin:2').epoch}.1.admin:2`;
      assert.equal((await store.status(first, T0))?.acknowledged, true, 'a message status counts the acks waiting');
      assert.equal((await store.status(`${store.head('admin:1').epoch}.2.admin:1`, T0))?.acknowledged, false);
      const started = performance.now();
      await Promise.all(acks);
      assert.ok(performance.now() - started > 100, 'committed when the delay ran out');
      assert.equal(store.stats.batches, before + 1, 'three turns of acks: one transaction');
      assert.equal(store.head('admin:3').ackedSeq, 1);

      // An append queued after an ack takes it along, at once.
      const ack = store.ackMany(new Map([['admin:1', 2]]));
      await store.append({ stream: 'admin:3', json, expiresAt: T0 + 1e6 }, T0);
      await ack;
      assert.equal(store.stats.batches, before + 2);
      assert.equal(store.head('admin:1').ackedSeq, 2);

      // Closing commits an ack still waiting.
      await store.append({ stream: 'admin:2', json, expiresAt: T0 + 1e6 }, T0);
      const last = store.ackMany(new Map([['admin:2', 2], ['admin:3', 2]]));
      await store.close();
      store = new SqliteStore({ file, maxPerStream: 100 });
      assert.equal(store.head('admin:2').ackedSeq, 2, 'committed by close()');
      assert.equal(store.head('admin:3').ackedSeq, 2);
      await last;
      await store.close();
    } finally {
      tmp.remove();
    }
  });

  it('notifications a lowered cap dropped at an open stay dropped when the cap is raised again', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const seqs = async (store: SqliteStore) => (await store.readAfter('admin:1', 0, 100, T0)).messages.map((m) => m.seq);
    try {
      let store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0 });
      for (let i = 0; i < 10; i++) await store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0);
      await store.append({ stream: 'admin:2', json, expiresAt: T0 + 1e6 }, T0);
      await store.close();
      store = new SqliteStore({ file, maxPerStream: 5, clock: () => T0 });
      assert.deepEqual(await seqs(store), [6, 7, 8, 9, 10]);
      await store.close();
      for (const cap of [100, 100]) {
        store = new SqliteStore({ file, maxPerStream: cap, clock: () => T0 });
        // They came back before: a tab told RESET past 1–5 was then replayed them.
        assert.deepEqual(await seqs(store), [6, 7, 8, 9, 10], `reopened with the cap at ${cap}`);
        assert.equal((await store.readAfter('admin:2', 0, 100, T0)).messages.length, 1, 'a stream the cap did not cut keeps its own');
        await store.close();
      }
    } finally {
      tmp.remove();
    }
  });

  it('a deleted file starts every stream over with a new epoch', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    try {
      let store = new SqliteStore({ file, maxPerStream: 10 });
      const first = await store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0);
      await store.close();
      store = new SqliteStore({ file, maxPerStream: 10 });
      assert.equal((await store.head('admin:1')).epoch, first.epoch, 'same file: same epoch');
      await store.close();
      rmSync(file);
      store = new SqliteStore({ file, maxPerStream: 10 });
      const head = await store.head('admin:1');
      assert.notEqual(head.epoch, first.epoch);
      assert.equal(head.lastSeq, 0);
      assert.equal(await store.status(first.id, T0), undefined, 'an id of the lost history is unknown');
      await store.close();
    } finally {
      tmp.remove();
    }
  });

  it('after an unclean stop and a reboot every stream gets a new epoch; after a killed process it keeps it', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    try {
      let store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-1' });
      const first = await store.append({ stream: 'admin:1', json, expiresAt: T0 + 1e6 }, T0);
      await store.close();
      // Closed cleanly, then the machine rebooted: nothing can have been lost.
      store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-2' });
      assert.equal(store.rotatedEpochs, false);
      assert.equal((await store.head('admin:1')).epoch, first.epoch);
      await store.close();
      // As a killed process leaves it: `clean` = 0, and the WAL still there (a connection
      // left open keeps the raw one's close from checkpointing and deleting it; a
      // read-only one never does either).
      const markUnclean = () => {
        const raw = new Database(file);
        raw.prepare("UPDATE meta SET value = '0' WHERE key = 'clean'").run();
        const reader = new Database(file, { readonly: true });
        reader.pragma('schema_version');
        raw.close();
        reader.close();
        assert.ok(existsSync(`${file}-wal`));
      };
      // Not closed (a killed process), same boot: WAL kept every commit.
      markUnclean();
      store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-2' });
      assert.equal(store.rotatedEpochs, false);
      assert.equal((await store.head('admin:1')).epoch, first.epoch);
      await store.close();
      // Not closed, and the machine rebooted since: the last commits may be gone.
      markUnclean();
      store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-3' });
      assert.equal(store.rotatedEpochs, true);
      const head = await store.head('admin:1');
      assert.notEqual(head.epoch, first.epoch);
      assert.equal(head.lastSeq, 1, 'what survived is kept, under the new epoch');
      await store.close();
      // The run that did not close used synchronous=normal: its last commits may be gone,
      // whatever this open uses (say the operator turned `full` on after the power cut).
      markUnclean();
      store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-4', synchronous: 'full' });
      assert.equal(store.rotatedEpochs, true);
      const rotated = (await store.head('admin:1')).epoch;
      assert.notEqual(rotated, head.epoch);
      await store.close();
      // A run under synchronous=full never loses a commit: no rotation, whatever this open uses.
      markUnclean();
      store = new SqliteStore({ file, maxPerStream: 10, bootId: 'boot-5' });
      assert.equal(store.rotatedEpochs, false);
      assert.equal((await store.head('admin:1')).epoch, rotated);
      await store.close();
    } finally {
      tmp.remove();
    }
  });

  it('names the file when it cannot be opened', async () => {
    const tmp = tempDir();
    try {
      const garbage = join(tmp.dir, 'garbage.sqlite');
      writeFileSync(garbage, 'this is not a database, it is a text file that happens to be long enough to have a header');
      assert.throws(() => new SqliteStore({ file: garbage, maxPerStream: 10 }), { code: 'HERALD_ERR_INTERNAL', message: /cannot open store .*garbage\.sqlite/ });
      assert.throws(() => new SqliteStore({ file: join(tmp.dir, 'no/such/dir/s.sqlite'), maxPerStream: 10 }), { code: 'HERALD_ERR_INTERNAL', message: /cannot open store/ });
    } finally {
      tmp.remove();
    }
  });

  it('refuses a second store on the same file while the first is open', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const store = new SqliteStore({ file, maxPerStream: 10 });
    try {
      assert.throws(() => new SqliteStore({ file, maxPerStream: 10 }), { code: 'HERALD_ERR_UNAVAILABLE', message: /in use by another process/ });
    } finally {
      await store.close();
      tmp.remove();
    }
  });

  it('checkpoints the WAL from its worker thread while the writer goes on, and loses nothing', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const errors: Error[] = [];
    const store = new SqliteStore({ file, maxPerStream: 100_000, checkpointBytes: 64 * 1024, onCheckpointError: (e) => errors.push(e) });
    // Each its own JSON: the journal writes a JSON repeated in a row once (a list send).
    const body = (n: number) => JSON.stringify({ TYPE: 'MESSAGE', N: n, TEXT: 'x'.repeat(500) });
    let sent = 0;
    const batches = async (n: number): Promise<void> => {
      for (let b = 0; b < n; b++) {
        await store.appendMany(Array.from({ length: 50 }, () => ({ stream: `admin:${(sent % 7) + 1}`, json: body(sent++), expiresAt: Date.now() + 60_000 })), Date.now());
      }
    };
    try {
      // About 26 KB a batch: a checkpoint is asked for every few batches, and batches go on while one runs.
      await batches(100);
      await store.checkpointer!.idle();
      await batches(5);
      await store.checkpointer!.idle();
      assert.deepEqual(errors, []);
      assert.ok(store.checkpointer!.checkpoints >= 2, `${store.checkpointer!.checkpoints} checkpoints`);
      assert.ok(store.checkpointer!.last!.checkpointed > 0, 'WAL frames copied into the file');
    } finally {
      await store.close();
    }
    // The worker closed its connection first, so the store's close was the last one: it checkpointed and removed the WAL.
    assert.equal(existsSync(`${file}-wal`), false, 'WAL removed on close');
    const again = new SqliteStore({ file, maxPerStream: 100_000 });
    try {
      assert.equal(again.loaded.messages, sent);
      assert.equal((await again.head('admin:1')).lastSeq, Math.ceil(sent / 7));
    } finally {
      await again.close();
      tmp.remove();
    }
  });

  it('under sends that never pause, the WAL still starts over after checkpoints instead of growing for good', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const errors: Error[] = [];
    const store = new SqliteStore({ file, maxPerStream: 1000, checkpointBytes: 512 * 1024, onCheckpointError: (e) => errors.push(e) });
    // Each its own JSON: the journal writes a JSON repeated in a row once (a list send).
    const json = (n: number) => JSON.stringify({ TYPE: 'MESSAGE', N: n, TEXT: 'x'.repeat(200) });
    const body = json(0);
    let sent = 0;
    try {
      // A send batch every millisecond or so, whether or not a checkpoint runs: the worker's
      // passive checkpoints never find the WAL without frames written during them.
      while (sent < 30_000) {
        await store.appendMany(Array.from({ length: 50 }, () => ({ stream: `admin:${sent % 1000}`, json: json(sent++), expiresAt: Date.now() + 60_000 })), Date.now());
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      // About 12 MB of WAL frames were written, a checkpoint asked for every 512 KB of sends
      // (the same proportions as 25 MB and 1 MB, at half the cost). Less than half of that means
      // the WAL started over: a WAL that grows for good holds it all. (It usually ends under
      // 2 MB; once, with the suite's longest files beside it, the worker fell behind to 4.1 MB.)
      const wal = statSync(`${file}-wal`).size;
      const c = store.checkpointer!;
      assert.ok(wal < 6 * 1024 * 1024, `WAL ${(wal / 1048576).toFixed(1)} MB after ${c.checkpoints} checkpoints`);
      // Catch-ups between sends a millisecond apart mostly see commits land, so the next one holds them.
      assert.ok(c.holds >= 1 && c.holds <= c.catchUps, `${c.holds} of ${c.catchUps} catch-ups held the commits`);
      assert.deepEqual(errors, []);
      // What /api/v1/status shows of it: every stream and notification, and the checkpointer's own counts.
      const counts = store.counts();
      assert.deepEqual([counts.streams, counts.retained, counts.transactions], [1000, sent, store.stats.batches]);
      assert.ok(counts.retainedBytes >= sent * body.length, `${counts.retainedBytes} bytes for ${sent} notifications of ${body.length}`);
      assert.deepEqual(counts.wal, { checkpoints: c.checkpoints, catchUps: c.catchUps, holds: c.holds, syncs: c.syncs, syncFailures: 0 });
      assert.ok(c.checkpoints >= 1);
    } finally {
      await store.close();
    }
    const again = new SqliteStore({ file, maxPerStream: 1000 });
    try {
      assert.equal(again.loaded.messages, sent);
    } finally {
      await again.close();
      tmp.remove();
    }
  });

  it('a catch-up checkpoint holds the commits only after one that commits landed during: sends a pause apart are never held', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const errors: Error[] = [];
    const store = new SqliteStore({ file, maxPerStream: 100_000, checkpointBytes: 1024 * 1024, onCheckpointError: (e) => errors.push(e) });
    const c = store.checkpointer!;
    let sent = 0;
    // Each its own JSON: the journal writes a JSON repeated in a row once (a list send).
    const one = (n: number) => ({ stream: `admin:${n % 100}`, json: JSON.stringify({ TYPE: 'MESSAGE', N: n, TEXT: 'x'.repeat(1000) }), expiresAt: Date.now() + 60_000 });
    const batch = (n: number) => store.appendMany(Array.from({ length: n }, () => one(sent++)), Date.now());
    try {
      for (let cycle = 0; cycle < 5; cycle++) {
        // About 1.1 MB: the commit asks the worker for a checkpoint, which copies it and fsyncs
        // the file (milliseconds); the next commit, a turn later, lands during it, so a catch-up
        // follows. Then nothing until both are over: no commit lands during the catch-up.
        await batch(1100);
        await batch(10);
        await c.idle();
      }
      assert.ok(c.catchUps >= 1, `${c.catchUps} catch-ups in ${c.checkpoints} checkpoints`);
      assert.equal(c.holds, 0, `${c.holds} of ${c.catchUps} catch-ups held the commits`);
      assert.deepEqual(errors, []);
    } finally {
      await store.close();
    }
    const again = new SqliteStore({ file, maxPerStream: 100_000 });
    try {
      assert.equal(again.loaded.messages, sent);
    } finally {
      await again.close();
      tmp.remove();
    }
  });

  it('a quiet panel\'s small commits, one send each, still checkpoint the WAL: each commit counts the page it writes, not only its text', async () => {
    const tmp = tempDir();
    const file = join(tmp.dir, 's.sqlite');
    const errors: Error[] = [];
    const store = new SqliteStore({ file, maxPerStream: 1000, checkpointBytes: 64 * 1024, onCheckpointError: (e) => errors.push(e) });
    const small = JSON.stringify({ TYPE: 'MESSAGE', TEXT: 'payment received' });
    try {
      // One send per commit, as a panel sending now and then makes: ~100 bytes of text, a 4 KB page of WAL each.
      for (let i = 0; i < 600; i++) {
        await store.append({ stream: `admin:${(i % 5) + 1}`, json: small, expiresAt: Date.now() + 60_000 }, Date.now());
        if (i % 50 === 49) await store.checkpointer!.idle();
      }
      await store.checkpointer!.idle();
      // Counting the text alone, the first checkpoint came after ~500 commits, with ~2.5 MB of WAL written.
      const wal = statSync(`${file}-wal`).size;
      assert.ok(store.checkpointer!.checkpoints >= 5, `${store.checkpointer!.checkpoints} checkpoints`);
      assert.ok(wal < 1024 * 1024, `WAL ${(wal / 1024).toFixed(0)} KB after ${store.checkpointer!.checkpoints} checkpoints`);
      assert.deepEqual(errors, []);
    } finally {
      await store.close();
      tmp.remove();
    }
  });

  it('under synchronous=normal the WAL is fsynced in the background soon after a commit, and under full not again', async () => {
    const tmp = tempDir();
    const errors: Error[] = [];
    const normal = new SqliteStore({ file: join(tmp.dir, 'n.sqlite'), maxPerStream: 10, walSyncMs: 20, onCheckpointError: (e) => errors.push(e) });
    const full = new SqliteStore({ file: join(tmp.dir, 'f.sqlite'), maxPerStream: 10, synchronous: 'full', walSyncMs: 20 });
    try {
      assert.equal(normal.checkpointer!.syncs, 0, 'nothing to sync before a commit');
      await normal.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now());
      await full.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now());
      await until(() => normal.checkpointer!.syncs >= 1, 5000, 'the WAL fsynced after the commit');
      // A second commit asks for a second sync (the first one's frames are on disk already).
      await normal.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now());
      await until(() => normal.checkpointer!.syncs >= 2, 5000, 'the WAL fsynced after the second commit');
      assert.equal(full.checkpointer!.syncs, 0, 'synchronous=full fsyncs each commit itself');
      assert.deepEqual(errors, []);
    } finally {
      await normal.close();
      await full.close();
      tmp.remove();
    }
  });

  it('a WAL fsync that keeps failing is reported once, not once a second for as long as sends go on', async () => {
    const tmp = tempDir();
    const errors: Error[] = [];
    const file = join(tmp.dir, 'w.sqlite');
    const store = new SqliteStore({ file, maxPerStream: 10, walSyncMs: 10, onCheckpointError: (e) => errors.push(e) });
    try {
      await store.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now());
      await until(() => store.checkpointer!.syncs >= 1, 5000, 'the WAL fsynced after the commit');
      // The WAL removed under the store (a cleanup script): every background fsync now fails.
      // The store copies the WAL into the file at the next commit and refuses appends from
      // then on (test/fault-store-file.test.ts), so the commits that schedule each fsync
      // are reported to the checkpointer directly.
      unlinkSync(`${file}-wal`);
      await store.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now());
      await assert.rejects(store.append({ stream: 'admin:1', json, expiresAt: Date.now() + 60_000 }, Date.now()), /deleted or replaced/);
      for (let i = 1; i <= 3; i++) {
        store.checkpointer!.committed(0);
        await until(() => store.checkpointer!.syncFailures >= i, 5000, `fsync failure ${i}`);
      }
      const fsync = errors.filter((e) => e.message.includes('WAL fsync failed'));
      assert.equal(fsync.length, 1, fsync.map((e) => e.message).join('\n'));
      assert.match(fsync[0]!.message, /ENOENT/);
    } finally {
      await store.close();
      tmp.remove();
    }
  });

  it('prunes in the background when given an interval', async () => {
    const tmp = tempDir();
    const now = Date.now();
    const pruned: number[] = [];
    let done!: () => void;
    const wait = new Promise<void>((resolve) => (done = resolve));
    const store = new SqliteStore({
      file: join(tmp.dir, 's.sqlite'), maxPerStream: 10, pruneIntervalMs: 20,
      onPrune: (removed) => {
        pruned.push(removed);
        if (removed > 0) done();
      },
    });
    try {
      await store.append({ stream: 'admin:1', json, expiresAt: now - 1 }, now - 2);
      await store.append({ stream: 'admin:1', json, expiresAt: now + 3_600_000 }, now);
      await Promise.race([wait, new Promise((_, reject) => setTimeout(() => reject(new Error('no pruning pass within 5 s')), 5000))]);
      assert.equal((await store.head('admin:1')).firstSeq, 2);
    } finally {
      await store.close();
      tmp.remove();
    }
  });
});
