/**
 * maxRetainedBytes and what has expired: an expired notification is never
 * delivered, so it no longer counts against the cap once a send needs the
 * room. It counted until a pruning pass removed it (every pruneIntervalMs,
 * 60 s by default, never at 0), so a store that had filled with short-lived
 * notifications refused stored sends ("store full") for up to a minute after
 * they had all expired, and for good with pruning off. A send the cap would
 * refuse now first lets go of what has expired (StreamIndex.dropExpired),
 * bounded, and is refused only if that left too little room.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { newEpoch } from '../src/server/store/message-id.js';
import { StreamIndex, WriteBatch } from '../src/server/store/stream-index.js';

const CAP = 50_000;
const TEXT = 'y'.repeat(20_000);
const message = (title: string) => ({ TYPE: 'MESSAGE', TITLE: title, TEXT });

for (const store of ['memory', 'sqlite'] as const) {
  for (const pruneIntervalMs of [0, 60_000]) {
    describe(`an expired notification makes room at once: ${store} store, pruneIntervalMs ${pruneIntervalMs}`, () => {
      let s: TestServer;
      before(async () => { s = await startHerald({ store, maxRetainedBytes: CAP, pruneIntervalMs }); });
      after(async () => { await s.close(); });

      const counts = async () => (await s.api('GET', '/api/v1/status')).body.storeCounts as { retained: number; retainedBytes: number };
      const send = (aid: number, title: string, ttl?: number) =>
        s.api('POST', '/api/v1/send', { to: { aid }, message: message(title), ...(ttl === undefined ? {} : { ttl }) });

      test('two sends that fill the cap expire; the next stored send is stored, before any pruning pass', async () => {
        // A TTL of 3 s: the send refused below must come while they live. With 1 s, once, on a slow
        // machine with the whole suite beside it, it came after they had expired and was stored.
        const started = Date.now();
        assert.equal((await send(1, 'a', 3)).status, 200);
        assert.equal((await send(2, 'b', 3)).status, 200);
        const sent = Date.now();
        // Full while they live: refused, naming what it waits for.
        const full = await send(3, 'c');
        assert.ok(Date.now() - started < 3_000, 'the refused send came while the first two lived');
        assert.equal(full.status, 503, JSON.stringify(full.body));
        assert.equal(full.body.error.details.reason, 'store full');
        assert.match(full.body.error.message, /until enough of those retained expire or are dropped/);
        // Past their expiry (3 s after the server stamped them, before `sent`).
        await delay(sent + 3_100 - Date.now());
        const before = await counts();
        assert.equal(before.retained, 2, 'not pruned yet: no pass has run');
        // To admin 1's stream, whose one notification is among the expired.
        const c = await send(1, 'c');
        assert.equal(c.status, 200, JSON.stringify(c.body));
        const now = await counts();
        assert.equal(now.retained, 1, JSON.stringify(now));
        assert.ok(now.retainedBytes > 20_000 && now.retainedBytes < 25_000, JSON.stringify(now));
        // And the room it made takes another.
        assert.equal((await send(2, 'd')).status, 200);
        // Full again of what has not expired: refused as before.
        assert.equal((await send(3, 'e')).status, 503);
      });
    });
  }
}

describe('StreamIndex.dropExpired', () => {
  test('looks at about `budget` streams a call, going on from where the last call stopped', () => {
    const index = new StreamIndex(10, newEpoch());
    const batch = new WriteBatch(index);
    for (let i = 0; i < 10; i++) batch.append({ stream: `s${i}`, json: 'x'.repeat(100), expiresAt: 1_000 }, 0);
    batch.apply();
    assert.equal(index.tally.bytes, 1_000);
    // Each stream costs 2 (itself and its one notification): a budget of 6 takes 3 a call.
    assert.equal(index.dropExpired(2_000, 6), 300);
    assert.equal(index.dropExpired(2_000, 6), 300);
    assert.equal(index.dropExpired(2_000, 6), 300);
    // Round the streams once at most: the last one, then nothing else is due.
    assert.equal(index.dropExpired(2_000, 6), 100);
    assert.equal(index.tally.bytes, 0);
    assert.equal(index.dropExpired(2_000, 6), 0);
  });

  test('leaves what has not expired, and a stream with a staged batch', () => {
    const index = new StreamIndex(10, newEpoch());
    const batch = new WriteBatch(index);
    batch.append({ stream: 'a', json: 'x'.repeat(100), expiresAt: 1_000 }, 0);
    batch.append({ stream: 'b', json: 'x'.repeat(100), expiresAt: 1_000 }, 0);
    batch.append({ stream: 'c', json: 'x'.repeat(100), expiresAt: 5_000 }, 0);
    batch.apply();
    batch.append({ stream: 'a', json: 'x'.repeat(10), expiresAt: 5_000 }, 2_000);
    assert.equal(index.dropExpired(2_000), 100, 'only b: a is staged, c lives');
    batch.apply();
    assert.equal(index.dropExpired(2_000), 100, 'a, once its batch applied');
    assert.equal(index.tally.bytes, 110);
  });
});
