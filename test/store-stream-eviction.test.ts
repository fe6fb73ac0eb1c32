/**
 * Idle streams are evicted by pruning, and a stream written again after its
 * eviction continues its SEQs above a store-wide floor under the same EPOCH:
 * the state of every person ever sent to is not kept for good (it was:
 * 443 bytes each in memory, a `streams` row each on disk, reloaded at every
 * start), yet no SEQ is assigned twice in an EPOCH and a tab holding a cursor
 * from before the eviction skips nothing sent after it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import type { MessageStore } from '../src/server/store/message-store.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { reopenable } from './helpers/reopenable-store.js';
import { until, type TestTab } from './helpers/ws-client.js';

const T0 = 1_700_000_000_000;
const json = '{"TYPE":"MESSAGE"}';
/** People sent to once, with a TTL of a second, who never connect. */
const PEOPLE = 2000;

/** A store of each kind, reopened on the same file for SQLite (the memory store has no restart). */
interface Subject {
  store: MessageStore;
  reopen?(): Promise<MessageStore>;
  /** The `streams` table's rows and `meta`'s seq_floor, read with the store closed. */
  rows?(): { streams: string[]; floor: string | undefined };
  destroy(): Promise<void>;
}

function memory(): Subject {
  const store = new MemoryStore({ maxPerStream: 100 });
  return { store, destroy: () => store.close() };
}

function sqlite(): Subject {
  const dir = mkdtempSync(join(tmpdir(), 'herald-evict-'));
  const file = join(dir, 'herald.sqlite');
  // Reopened "later": what expired before the clock is not loaded.
  const open = () => new SqliteStore({ file, maxPerStream: 100, ackDelayMs: 0, clock: () => T0 + 10_000 });
  return Object.assign(reopenable(open, () => rmSync(dir, { recursive: true, force: true })), {
    rows() {
      const db = new Database(file, { readonly: true });
      try {
        return {
          streams: db.prepare<[], string>('SELECT stream FROM streams ORDER BY stream').pluck().all(),
          floor: db.prepare<[], string>("SELECT value FROM meta WHERE key = 'seq_floor'").pluck().get(),
        };
      } finally {
        db.close();
      }
    },
  });
}

for (const [kind, make] of [['memory', memory], ['sqlite', sqlite]] as const) describe(`stream eviction (${kind} store)`, () => {
  test('streams of people whose notifications all expired go, at the second pruning pass that finds them idle', async () => {
    const s = make();
    try {
      const baseline = s.store.counts().streams;
      await s.store.append({ stream: 'admin:keep', json, expiresAt: T0 + 3_600_000 }, T0);
      await s.store.appendMany(Array.from({ length: PEOPLE }, (_, i) => ({ stream: `user:${i}`, json, expiresAt: T0 + 1000 })), T0);
      assert.equal(s.store.counts().streams, baseline + 1 + PEOPLE);
      assert.equal(await s.store.prune(T0 + 2000), PEOPLE);
      assert.equal(s.store.counts().streams, baseline + 1 + PEOPLE, 'the first pass that finds a stream idle only marks it');
      await s.store.prune(T0 + 3000);
      assert.deepEqual(s.store.counts(), { ...s.store.counts(), streams: baseline + 1, retained: 1 }, 'only the stream that retains something stays');
      if (s.rows) {
        await s.store.close();
        const { streams, floor } = s.rows();
        assert.deepEqual(streams, ['admin:keep'], 'their rows are deleted too');
        assert.equal(floor, '1');
      }
    } finally {
      await s.destroy();
    }
  });

  test('a stream written again after its eviction continues above its last SEQ, in the same EPOCH', async () => {
    const s = make();
    try {
      // user:1 reaches SEQ 3, user:2 SEQ 5: the floor becomes 5.
      const old: Array<{ id: string; seq: number; epoch: string }> = [];
      for (let i = 0; i < 3; i++) old.push(await s.store.append({ stream: 'user:1', json, expiresAt: T0 + 1000 }, T0));
      for (let i = 0; i < 5; i++) await s.store.append({ stream: 'user:2', json, expiresAt: T0 + 1000 }, T0);
      await s.store.ack('user:1', 2);
      await s.store.prune(T0 + 2000);
      await s.store.prune(T0 + 3000);
      assert.equal(s.store.counts().streams, 0);
      // What a tab connecting now is told: its cursor from before is not "ahead of the stream".
      assert.deepEqual(await s.store.head('user:1'), { epoch: old[0]!.epoch, lastSeq: 5, firstSeq: 6, ackedSeq: 5 });
      // An ack of an evicted stream changes nothing; an old id answers as a pruned one does.
      await s.store.ack('user:1', 3);
      assert.equal(s.store.counts().streams, 0);
      assert.equal(await s.store.status(old[2]!.id, T0 + 3000), undefined);

      const again = await s.store.append({ stream: 'user:1', json, expiresAt: T0 + 3_600_000 }, T0 + 3000);
      assert.equal(again.epoch, old[0]!.epoch, 'the same EPOCH');
      assert.equal(again.seq, 6, 'above the SEQs of every evicted stream');
      assert.notEqual(again.id, old[2]!.id);
      const read = await s.store.readAfter('user:1', 3, 10, T0 + 3000);
      assert.deepEqual([read.firstSeq, read.lastSeq, read.messages.map((m) => m.seq)], [6, 6, [6]], 'a cursor of 3 finds the new one');

      if (s.reopen) {
        // user:2 was evicted before the restart: the floor was saved with it.
        const store = await s.reopen();
        assert.equal(store.counts().streams, 1, 'the evicted streams are not loaded');
        assert.equal((await store.head('user:1')).lastSeq, 6);
        const after = await store.append({ stream: 'user:2', json, expiresAt: T0 + 3_600_000 }, T0 + 10_000);
        assert.equal(after.seq, 6, 'above its old last SEQ (5) after a restart');
        const more = await store.append({ stream: 'user:1', json, expiresAt: T0 + 3_600_000 }, T0 + 10_000);
        assert.deepEqual([more.seq, more.epoch], [7, old[0]!.epoch]);
      }
    } finally {
      await s.destroy();
    }
  });

  test('a stream that still retains something, or was written since the last pass, stays', async () => {
    const s = make();
    try {
      await s.store.append({ stream: 'user:key', json, expiresAt: T0 + 1000 }, T0);
      await s.store.append({ stream: 'user:key', json, expiresAt: T0 + 5000 }, T0);
      await s.store.append({ stream: 'user:busy', json, expiresAt: T0 + 1000 }, T0);
      await s.store.prune(T0 + 1500);
      // Written between the passes, expired again by the next.
      await s.store.append({ stream: 'user:busy', json, expiresAt: T0 + 1800 }, T0 + 1600);
      await s.store.prune(T0 + 2000);
      assert.equal(s.store.counts().streams, 2);
      await s.store.prune(T0 + 2500);
      assert.equal(s.store.counts().streams, 1, 'user:busy goes at the next pass');
      assert.equal((await s.store.head('user:key')).lastSeq, 2);
    } finally {
      await s.destroy();
    }
  });
});

const msg = (title: string) => ({ TYPE: 'MESSAGE', TITLE: title, TEXT: title });

/** Waits until every frame the tab was sent before this call has arrived. */
async function settle(tab: TestTab): Promise<void> {
  tab.send({ TYPE: 'PING' });
  await tab.nextOfType('PONG');
}

for (const store of ['sqlite', 'memory'] as const) describe(`stream eviction through Herald (${store} store)`, () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store, pruneIntervalMs: 20 });
  });
  after(() => s.close());

  test('a tab connected before the eviction, and one resuming with its cursor from before, get what is sent after it', async () => {
    const live = await s.tab('admin', 1);
    const welcome = await live.nextOfType('WELCOME');
    // A TTL of half a second (the connected tab is sent it first), then pruned within 20 ms.
    const first = (await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg('before'), ttl: 0.5 })).body.results[0];
    assert.equal((await live.next((f) => f.TITLE === 'before')).SEQ, first.seq);
    let away = { seq: 0, epoch: '' };
    for (let i = 0; i < 3; i++) away = (await s.api('POST', '/api/v1/send', { to: { aid: 2 }, message: msg(`away ${i}`), ttl: 0.5 })).body.results[0];
    // No event says a stream was evicted: its count is the only sign.
    await until(() => s.herald.store.counts().streams === 0, 10_000, 'both streams evicted');

    const next = (await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg('after'), ttl: 600 })).body.results[0];
    assert.equal(next.epoch, welcome.EPOCH);
    assert.ok(next.seq > first.seq, `SEQ ${next.seq} after ${first.seq}`);
    const got = await live.next((f) => f.TITLE === 'after');
    assert.deepEqual([got.SEQ, got.EPOCH], [next.seq, welcome.EPOCH], 'the connected tab is sent it');

    const later = (await s.api('POST', '/api/v1/send', { to: { aid: 2 }, message: msg('back'), ttl: 600 })).body.results[0];
    assert.equal(later.epoch, away.epoch);
    assert.ok(later.seq > away.seq);
    const back = await s.tab('admin', 2, { query: { seq: String(away.seq), epoch: away.epoch } });
    await back.nextOfType('WELCOME');
    await settle(back);
    assert.deepEqual(back.notifications().map((f) => [f.TITLE, f.SEQ, f.EPOCH]), [['back', later.seq, away.epoch]]);
    // The notifications between its cursor and the floor expired: at most a RESET says so, never "epoch changed".
    assert.ok(back.frames.every((f) => f.TYPE !== 'RESET' || f.REASON === 'too far behind'), JSON.stringify(back.frames));

    // The connected tab reconnects with its cursor from before the eviction too.
    live.close();
    const again = await s.tab('admin', 1, { query: { seq: String(first.seq), epoch: welcome.EPOCH } });
    const reset = await again.nextOfType('RESET');
    assert.deepEqual([reset.REASON, reset.EPOCH], ['too far behind', welcome.EPOCH]);
    await settle(again);
    assert.deepEqual(again.notifications().map((f) => [f.TITLE, f.SEQ]), [['after', next.seq]]);
    back.close();
    again.close();
  });
});
