/**
 * Idempotency keys of stored sends are bounded by the cap: a key stands for
 * its notification while the stream retains it, and goes with it when the
 * cap drops it (docs/delivery.md, Sending). Both stores, through their API
 * and through a real Herald; the SQLite store across a reopen too. Memory
 * is measured as the store's count of keys.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createV1File } from './helpers/v1-store.js';
import fc from 'fast-check';
import type { AppendInput, MessageStore } from '../src/server/store/message-store.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { StreamIndex, WriteBatch } from '../src/server/store/stream-index.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { reopenable } from './helpers/reopenable-store.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const CAP = 10;

/** The n-th keyed send to `stream`, as a backend that gives each send its own key makes them. */
const keyed = (stream: string, n: number, ttl = HOUR): AppendInput => ({
  stream, json: JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}` }), expiresAt: T0 + ttl, idempotencyKey: `key-${n}`,
});

interface Opened {
  store: MessageStore;
  /** Closes the store and opens it on the same file (the SQLite store); undefined for the memory store. */
  reopen?: () => Promise<MessageStore>;
  destroy(): Promise<void>;
}

const stores: Record<'memory' | 'sqlite', (maxPerStream: number) => Opened> = {
  memory: (maxPerStream) => {
    const store = new MemoryStore({ maxPerStream });
    return { store, destroy: () => store.close() };
  },
  sqlite: (maxPerStream) => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-keys-'));
    return reopenable(() => new SqliteStore({ file: join(dir, 'herald.sqlite'), maxPerStream, clock: () => T0 }), () => rmSync(dir, { recursive: true, force: true }));
  },
};

for (const [name, open] of Object.entries(stores)) describe(`idempotency keys of stored sends are bounded by the cap (${name} store)`, () => {
  it('a stream keeps the keys of the notifications it retains, and no others, however many keyed sends it was given', async () => {
    const s = open(CAP);
    try {
      // 2,000 keyed sends to one person: batches of 400 (each drops its own first keys too) and single sends.
      for (let b = 0; b < 4; b++) await s.store.appendMany(Array.from({ length: 400 }, (_, i) => keyed('admin:1', b * 400 + i)), T0);
      for (let n = 1600; n < 2000; n++) await s.store.append(keyed('admin:1', n), T0);
      assert.deepEqual([s.store.counts().retained, s.store.counts().keys], [CAP, CAP], 'the keys of the 10 retained notifications, not of all 2,000 sent');
      // The retained ones' keys still answer duplicate, with their SEQs.
      for (let n = 2000 - CAP; n < 2000; n++) {
        const again = await s.store.append(keyed('admin:1', n), T0);
        assert.deepEqual([again.duplicate, again.seq], [true, n + 1], `key-${n}`);
      }
      // A key whose notification the cap dropped is forgotten with it: the repeat is stored anew.
      const late = await s.store.append(keyed('admin:1', 0), T0);
      assert.deepEqual([late.duplicate, late.seq, late.dropped], [false, 2001, 1]);
      assert.equal(s.store.counts().keys, CAP);
      if (s.reopen) {
        // The SQLite store loads the keys of what it retains only, though its journal holds all 2,001.
        const store = await s.reopen();
        assert.deepEqual([store.counts().retained, store.counts().keys], [CAP, CAP]);
        assert.deepEqual(await store.append(keyed('admin:1', 0), T0).then((r) => [r.duplicate, r.seq]), [true, 2001]);
        assert.deepEqual(await store.append(keyed('admin:1', 1999), T0).then((r) => [r.duplicate, r.seq]), [true, 2000]);
        assert.deepEqual(await store.append(keyed('admin:1', 1990), T0).then((r) => [r.duplicate, r.seq]), [false, 2002], 'dropped for the cap before the reopen: forgotten');
        assert.equal(store.counts().keys, CAP);
      }
    } finally {
      await s.destroy();
    }
  });

  it('in one batch, a key whose notification an earlier append of the batch dropped is stored anew, as sent one by one', async () => {
    const s = open(3);
    try {
      const batch = [keyed('admin:2', 0), keyed('admin:2', 1), keyed('admin:2', 2), keyed('admin:2', 3), keyed('admin:2', 0), keyed('admin:2', 3)];
      const many = await s.store.appendMany(batch, T0);
      // The 4th pushes the 1st (key-0) out: key-0 again is new; key-3, still retained, is a duplicate.
      assert.deepEqual(many.map((r) => [r.seq, r.duplicate, r.dropped]), [[1, false, 0], [2, false, 0], [3, false, 0], [4, false, 1], [5, false, 1], [4, true, 0]]);
      const one = [];
      for (const input of batch) one.push(await s.store.append({ ...input, stream: 'admin:3' }, T0));
      assert.deepEqual(one.map((r) => [r.seq, r.duplicate, r.dropped]), many.map((r) => [r.seq, r.duplicate, r.dropped]));
      assert.equal(s.store.counts().keys, 6, 'three per stream: key-2, key-3 and key-0 again');
    } finally {
      await s.destroy();
    }
  });

  it('keys expire with their notifications, and a pruning pass leaves only the retained ones\' keys', async () => {
    const s = open(CAP);
    try {
      // Short-lived and long-lived keyed sends, interleaved, past the cap: 25 sent, 10 retained.
      for (let n = 0; n < 25; n++) await s.store.append(keyed('user:7', n, n % 2 === 0 ? 10 : HOUR), T0);
      assert.equal(s.store.counts().keys, CAP);
      assert.equal(await s.store.prune(T0 + 10), 5, 'the 5 short-lived ones of the 10 retained');
      assert.deepEqual([s.store.counts().retained, s.store.counts().keys], [5, 5]);
      assert.deepEqual(await s.store.append(keyed('user:7', 23), T0 + 10).then((r) => r.duplicate), true);
      assert.deepEqual(await s.store.append(keyed('user:7', 13), T0 + 10).then((r) => r.duplicate), false, 'dropped for the cap before it expired');
    } finally {
      await s.destroy();
    }
  });
});

describe('idempotency keys in the StreamIndex', () => {
  it('are exactly those of the retained notifications, through batches, the cap, keys used again after expiry, and pruning', () => {
    const op = fc.oneof(
      // A batch of keyed or unkeyed appends to one stream: few keys, so that they come again, and keys of their own.
      fc.record({
        t: fc.constant('append' as const), s: fc.constantFrom('admin:1', 'user:*'),
        sends: fc.array(fc.record({
          key: fc.option(fc.oneof(fc.constantFrom('a', 'b', 'c', 'd', 'e'), fc.nat().map((n) => `own-${n}`)), { nil: undefined }),
          ttl: fc.constantFrom(10, 100, HOUR),
        }), { minLength: 1, maxLength: 100, size: 'medium' }),
      }),
      fc.record({ t: fc.constant('tick' as const), ms: fc.nat(60) }),
      fc.record({ t: fc.constant('prune' as const) }),
    );
    fc.assert(fc.property(fc.array(op, { minLength: 5, maxLength: 80, size: 'medium' }), fc.constantFrom(1, 3, 50), (ops, cap) => {
      const index = new StreamIndex(cap, 'storeEpoch');
      const batch = new WriteBatch(index);
      // Per stream, the retained notifications (expired ones too, until a prune) with their keys.
      const model = new Map<string, Array<{ seq: number; exp: number; key: string | undefined }>>();
      let now = T0;
      for (const o of ops) {
        if (o.t === 'tick') now += o.ms;
        else if (o.t === 'prune') {
          index.prune(now);
          for (const [s, kept] of model) model.set(s, kept.filter((k) => k.exp > now));
        } else {
          const kept = model.get(o.s) ?? [];
          model.set(o.s, kept);
          for (const send of o.sends) {
            const r = batch.append({ stream: o.s, json: '{}', expiresAt: now + send.ttl, ...(send.key === undefined ? {} : { idempotencyKey: send.key }) }, now);
            // A duplicate while the key's notification is retained and unexpired.
            const seen = send.key === undefined ? undefined : kept.find((k) => k.key === send.key && k.exp > now);
            if (seen) {
              assert.deepEqual([r.duplicate, r.seq, r.dropped], [true, seen.seq, 0]);
              continue;
            }
            kept.push({ seq: r.seq, exp: now + send.ttl, key: send.key });
            const drop = Math.max(0, kept.length - cap);
            kept.splice(0, drop);
            assert.deepEqual([r.duplicate, r.dropped], [false, drop]);
          }
          batch.apply();
        }
        for (const [s, kept] of model) {
          const keys = new Set(kept.flatMap((k) => (k.key === undefined ? [] : [k.key])));
          assert.equal(index.get(s)?.keys?.size ?? 0, keys.size, `${s}: the keys of ${JSON.stringify(kept)}`);
        }
      }
    }), { numRuns: 200 });
  });
});

describe('idempotency keys of a version 1 file', () => {
  it('a key migrated without its notification (the cap had dropped it) is not loaded', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-keys-'));
    const file = join(dir, 'herald.sqlite');
    try {
      const v1 = createV1File(file);
      v1.exec(`
        INSERT INTO meta VALUES ('schema', '1'), ('epoch', 'storeEp1'), ('boot', 'boot-v1'), ('clean', '1');
        INSERT INTO streams VALUES ('admin:1', 'epochA1', 5, 0, 3);
      `);
      const put = v1.prepare('INSERT INTO messages VALUES (?, ?, ?, ?)');
      for (const seq of [3, 4, 5]) put.run('admin:1', seq, JSON.stringify({ TITLE: `n${seq}` }), T0 + HOUR);
      // The keys of SEQs 5 and 1; the cap had dropped SEQ 1.
      v1.prepare('INSERT INTO idempotency VALUES (?, ?, ?, ?), (?, ?, ?, ?)').run('admin:1', 'k5', 5, T0 + HOUR, 'admin:1', 'k1', 1, T0 + HOUR);
      v1.close();
      for (let open = 0; open < 2; open++) {
        // The first open migrates; the second loads the journal as it is from then on.
        const store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-v1', clock: () => T0 });
        try {
          assert.deepEqual([store.counts().retained, store.counts().keys], [3, 1], `open ${open + 1}`);
        } finally {
          await store.close();
        }
      }
      const store = new SqliteStore({ file, maxPerStream: 100, bootId: 'boot-v1', clock: () => T0 });
      try {
        const k5 = await store.append({ stream: 'admin:1', json: '{}', expiresAt: T0 + HOUR, idempotencyKey: 'k5' }, T0);
        assert.deepEqual([k5.duplicate, k5.seq], [true, 5]);
        const k1 = await store.append({ stream: 'admin:1', json: '{}', expiresAt: T0 + HOUR, idempotencyKey: 'k1' }, T0);
        assert.deepEqual([k1.duplicate, k1.seq], [false, 6]);
      } finally {
        await store.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const store of ['sqlite', 'memory'] as const) describe(`idempotency keys through Herald (${store} store)`, () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxPerStream: 5, store });
  });
  after(() => s.close());

  it('a person sent 300 keyed notifications keeps 5 keys, as /api/v1/status shows, and a repeat of a dropped one is delivered again', async () => {
    const send = (n: number) => ({ to: { aid: 9 }, message: { TYPE: 'MESSAGE', TEXT: `m${n}` }, ttl: 3600, idempotencyKey: `evt-${n}` });
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: Array.from({ length: 300 }, (_, n) => send(n)), answer: 'summary' });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    const counts = (await s.api('GET', '/api/v1/status')).body.storeCounts;
    assert.deepEqual([counts.retained, counts.keys], [5, 5], JSON.stringify(counts));
    const kept = await s.api('POST', '/api/v1/send', send(299));
    assert.deepEqual([kept.body.results[0].duplicate, kept.body.results[0].seq], [true, 300]);
    const dropped = await s.api('POST', '/api/v1/send', send(0));
    assert.deepEqual([dropped.body.results[0].duplicate, dropped.body.results[0].seq, dropped.body.results[0].dropped], [false, 301, 1]);
  });
});
