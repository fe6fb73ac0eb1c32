/**
 * The MessageStore contract: one suite, run against every store (memory and
 * SQLite now, Redis later) by test/store-*.test.ts. A store passes when it
 * behaves exactly as this file says; the delivery logic above it relies on
 * nothing else.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { MessageStore } from '../src/server/store/message-store.js';
import { countTurns } from './helpers/turns.js';

export interface StoreUnderTest {
  store: MessageStore;
  /** Closes the store and opens it again on the same data (durable stores only). */
  reopen?: () => Promise<MessageStore>;
  /** Closes and removes everything the store created. */
  destroy(): Promise<void>;
}

export type StoreFactory = (limits: { maxPerStream: number }) => Promise<StoreUnderTest>;

/** The made-up "now" of every test here (a durable store is told it on reopen: see the SQLite factory). */
export const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

function msg(n: number | string): string {
  return JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}` });
}

async function withStore(factory: StoreFactory, maxPerStream: number, body: (s: StoreUnderTest) => Promise<void>): Promise<void> {
  const s = await factory({ maxPerStream });
  try {
    await body(s);
  } finally {
    await s.destroy();
  }
}

export function storeContract(name: string, factory: StoreFactory, options: { durable: boolean }): void {
  describe(`MessageStore contract: ${name}`, () => {
    it('a new stream is empty with an epoch that stays the same', () => withStore(factory, 10, async ({ store }) => {
      const a = await store.head('admin:1');
      assert.equal(a.lastSeq, 0);
      assert.equal(a.firstSeq, 1);
      assert.equal(a.ackedSeq, 0);
      assert.match(a.epoch, /^[A-Za-z0-9_-]+$/);
      assert.deepEqual(await store.head('admin:1'), a);
      const b = await store.head('admin:2');
      assert.notEqual(b.epoch, a.epoch, 'each stream has its own epoch');
    }));

    it('assigns SEQ 1, 2, 3 per stream, in call order, under the head epoch', () => withStore(factory, 100, async ({ store }) => {
      const { epoch } = await store.head('admin:1');
      const results = await Promise.all([
        store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:2', json: msg(1), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:*', json: msg(1), expiresAt: T0 + HOUR }, T0),
        store.append({ stream: 'admin:1', json: msg(3), expiresAt: T0 + HOUR }, T0),
      ]);
      assert.deepEqual(results.map((r) => r.seq), [1, 1, 2, 1, 3]);
      assert.ok(results.every((r) => !r.duplicate && r.dropped === 0));
      assert.equal(results[0]!.epoch, epoch);
      assert.equal(new Set(results.map((r) => r.id)).size, 5, 'ids are unique across streams');
      const head = await store.head('admin:1');
      assert.deepEqual({ lastSeq: head.lastSeq, firstSeq: head.firstSeq, epoch: head.epoch }, { lastSeq: 3, firstSeq: 1, epoch });
    }));

    it('many concurrent appends get consecutive SEQs in call order', () => withStore(factory, 10_000, async ({ store }) => {
      const n = 2000;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => store.append({ stream: 'user:9', json: msg(i), expiresAt: T0 + HOUR }, T0)),
      );
      assert.deepEqual(results.map((r) => r.seq), Array.from({ length: n }, (_, i) => i + 1));
      const read = await store.readAfter('user:9', 0, n, T0);
      assert.deepEqual(read.messages.map((m) => m.json), Array.from({ length: n }, (_, i) => msg(i)));
    }));

    it('appendMany stores in order, as the same appends one by one would, interleaving with single appends', () => withStore(factory, 3, async ({ store }) => {
      const at = (stream: string, n: number, idempotencyKey?: string) => ({ stream, json: msg(n), expiresAt: T0 + HOUR, ...(idempotencyKey ? { idempotencyKey } : {}) });
      const [single, many] = await Promise.all([
        store.append(at('admin:5', 0), T0),
        store.appendMany([at('admin:5', 1, 'k'), at('admin:6', 1), at('admin:5', 2), at('admin:5', 3, 'k'), at('admin:5', 4), at('admin:5', 5)], T0),
      ]);
      assert.equal(single.seq, 1);
      assert.deepEqual(many.map((r) => [r.seq, r.duplicate, r.dropped]), [[2, false, 0], [1, false, 0], [3, false, 0], [2, true, 0], [4, false, 1], [5, false, 1]]);
      assert.equal(many[3]!.id, many[0]!.id, 'a repeated key within the batch names the first one');
      const read = await store.readAfter('admin:5', 0, 10, T0);
      assert.deepEqual(read.messages.map((m) => m.json), [msg(2), msg(4), msg(5)]);
      assert.deepEqual(await store.appendMany([], T0), []);
    }));

    it('readAfter returns what follows a SEQ, oldest first, bounded by limit, exactly as appended', () => withStore(factory, 100, async ({ store }) => {
      const cyrillic = JSON.stringify({ TYPE: 'MESSAGE', TITLE: 'Платіж отримано', TEXT: 'Just<br/>some<br/>text 🎉', EXTRA: { a: [1, null] } });
      const appended = [];
      for (let i = 1; i <= 6; i++) appended.push(await store.append({ stream: 'admin:3', json: i === 2 ? cyrillic : msg(i), expiresAt: T0 + HOUR }, T0));
      const r = await store.readAfter('admin:3', 1, 3, T0);
      assert.deepEqual(r.messages.map((m) => m.seq), [2, 3, 4]);
      assert.equal(r.messages[0]!.json, cyrillic);
      assert.equal(r.messages[0]!.id, appended[1]!.id);
      assert.equal(r.messages[0]!.expiresAt, T0 + HOUR);
      assert.deepEqual({ lastSeq: r.lastSeq, firstSeq: r.firstSeq, epoch: r.epoch }, { lastSeq: 6, firstSeq: 1, epoch: appended[0]!.epoch });
      assert.deepEqual((await store.readAfter('admin:3', 6, 10, T0)).messages, []);
      assert.deepEqual((await store.readAfter('admin:3', 100, 10, T0)).messages, []);
      assert.deepEqual((await store.readAfter('admin:nobody', 0, 10, T0)).messages, []);
    }));

    it('expired messages are never read, and prune removes exactly those', () => withStore(factory, 100, async ({ store }) => {
      await store.append({ stream: 'admin:4', json: msg(1), expiresAt: T0 + 1000 }, T0);
      await store.append({ stream: 'admin:4', json: msg(2), expiresAt: T0 + HOUR }, T0);
      await store.append({ stream: 'admin:4', json: msg(3), expiresAt: T0 + 2000 }, T0);
      await store.append({ stream: 'admin:5', json: msg(1), expiresAt: T0 + 500 }, T0);
      const later = T0 + 1500;
      assert.deepEqual((await store.readAfter('admin:4', 0, 10, later)).messages.map((m) => m.seq), [2, 3]);
      assert.deepEqual((await store.readAfter('admin:4', 0, 10, T0 + 1000)).messages.map((m) => m.seq), [2, 3], 'expiresAt itself is expired');
      assert.equal(await store.prune(later), 2);
      assert.equal(await store.prune(later), 0);
      const head = await store.head('admin:4');
      assert.deepEqual({ firstSeq: head.firstSeq, lastSeq: head.lastSeq }, { firstSeq: 2, lastSeq: 3 });
      assert.deepEqual(await Promise.resolve(store.head('admin:5')).then((h) => [h.firstSeq, h.lastSeq]), [2, 1], 'empty after pruning: firstSeq = lastSeq + 1');
      const next = await store.append({ stream: 'admin:5', json: msg(2), expiresAt: later + HOUR }, later);
      assert.equal(next.seq, 2, 'pruning never reuses a SEQ');
    }));

    it('the per-stream cap drops the oldest and says how many', () => withStore(factory, 3, async ({ store }) => {
      const dropped = [];
      for (let i = 1; i <= 5; i++) dropped.push((await store.append({ stream: 'admin:6', json: msg(i), expiresAt: T0 + HOUR }, T0)).dropped);
      assert.deepEqual(dropped, [0, 0, 0, 1, 1]);
      const r = await store.readAfter('admin:6', 0, 10, T0);
      assert.deepEqual(r.messages.map((m) => m.seq), [3, 4, 5]);
      assert.equal(r.firstSeq, 3);
      assert.equal(r.lastSeq, 5);
      // Other streams have their own cap.
      assert.equal((await store.append({ stream: 'admin:*', json: msg(1), expiresAt: T0 + HOUR }, T0)).dropped, 0);
      // Expired-but-not-yet-pruned messages count until pruned; after pruning there is room again.
      await store.append({ stream: 'user:1', json: msg(1), expiresAt: T0 + 10 }, T0);
      await store.append({ stream: 'user:1', json: msg(2), expiresAt: T0 + 10 }, T0);
      await store.prune(T0 + 20);
      const after = [];
      for (let i = 3; i <= 5; i++) after.push((await store.append({ stream: 'user:1', json: msg(i), expiresAt: T0 + HOUR }, T0 + 20)).dropped);
      assert.deepEqual(after, [0, 0, 0]);
    }));

    it('an idempotency key stores once per stream within its message\'s lifetime', () => withStore(factory, 100, async ({ store }) => {
      const first = await store.append({ stream: 'admin:7', json: msg(1), expiresAt: T0 + 1000, idempotencyKey: 'k1' }, T0);
      const again = await store.append({ stream: 'admin:7', json: msg('other'), expiresAt: T0 + 5000, idempotencyKey: 'k1' }, T0 + 10);
      assert.deepEqual(again, { ...first, duplicate: true });
      const otherStream = await store.append({ stream: 'admin:8', json: msg(1), expiresAt: T0 + 1000, idempotencyKey: 'k1' }, T0);
      assert.equal(otherStream.duplicate, false, 'keys are per recipient');
      const r = await store.readAfter('admin:7', 0, 10, T0 + 10);
      assert.deepEqual(r.messages.map((m) => m.json), [msg(1)]);
      // Within one batch (same turn of the loop) as well.
      const same = await Promise.all([1, 2, 3].map((i) => store.append({ stream: 'admin:7', json: msg(i), expiresAt: T0 + HOUR, idempotencyKey: 'k2' }, T0)));
      assert.deepEqual(same.map((s) => [s.seq, s.duplicate]), [[2, false], [2, true], [2, true]]);
      // Once the message expired, the key is free again (and still after pruning).
      const late = await store.append({ stream: 'admin:7', json: msg('late'), expiresAt: T0 + HOUR, idempotencyKey: 'k1' }, T0 + 1000);
      assert.deepEqual([late.seq, late.duplicate], [3, false]);
      await store.prune(T0 + 2000);
      const dup = await store.append({ stream: 'admin:7', json: msg('late'), expiresAt: T0 + HOUR, idempotencyKey: 'k1' }, T0 + 2000);
      assert.deepEqual([dup.seq, dup.duplicate, dup.id], [3, true, late.id]);
    }));

    it('acks are cumulative, keep the maximum and never pass the last SEQ', () => withStore(factory, 100, async ({ store }) => {
      const ids: string[] = [];
      for (let i = 1; i <= 4; i++) ids.push((await store.append({ stream: 'admin:9', json: msg(i), expiresAt: T0 + HOUR }, T0)).id);
      const acked = async () => Promise.all(ids.map(async (id) => (await store.status(id, T0))?.acknowledged));
      assert.deepEqual(await acked(), [false, false, false, false]);
      await store.ack('admin:9', 2);
      assert.deepEqual(await acked(), [true, true, false, false]);
      await store.ack('admin:9', 1);
      assert.deepEqual(await acked(), [true, true, false, false], 'a lower ack does not go back');
      assert.equal((await store.head('admin:9')).ackedSeq, 2);
      await store.ack('admin:9', 99);
      assert.equal((await store.head('admin:9')).ackedSeq, 4, 'clamped to the last SEQ');
      const fifth = await store.append({ stream: 'admin:9', json: msg(5), expiresAt: T0 + HOUR }, T0);
      assert.equal((await store.status(fifth.id, T0))?.acknowledged, false, 'an ack never covers a future message');
      await store.ack('admin:never-seen', 3);
      assert.equal((await store.head('admin:never-seen')).ackedSeq, 0);
    }));

    it('ackMany records several streams as acking each alone would', () => withStore(factory, 100, async ({ store }) => {
      for (let i = 1; i <= 3; i++) {
        await store.append({ stream: 'admin:1', json: msg(i), expiresAt: T0 + HOUR }, T0);
        await store.append({ stream: 'admin:2', json: msg(i), expiresAt: T0 + HOUR }, T0);
      }
      await store.ack('admin:2', 2);
      await store.ackMany(new Map([['admin:1', 2], ['admin:2', 1], ['admin:never-seen', 5]]));
      assert.equal((await store.head('admin:1')).ackedSeq, 2);
      assert.equal((await store.head('admin:2')).ackedSeq, 2, 'a lower ack does not go back');
      assert.equal((await store.head('admin:never-seen')).ackedSeq, 0);
      await store.ackMany(new Map([['admin:1', 99]]));
      assert.equal((await store.head('admin:1')).ackedSeq, 3, 'clamped to the last SEQ');
    }));

    it('status describes a stored message and forgets it when it is gone', () => withStore(factory, 2, async ({ store }) => {
      const a = await store.append({ stream: 'admin:*', json: msg(1), expiresAt: T0 + 1000 }, T0);
      assert.deepEqual(await store.status(a.id, T0), {
        id: a.id, stream: 'admin:*', seq: 1, epoch: a.epoch, expiresAt: T0 + 1000, acknowledged: false, expired: false,
      });
      assert.equal((await store.status(a.id, T0 + 1000))?.expired, true);
      for (const bad of ['', 'x', 'a.b.c', `${a.epoch}.1`, `${a.epoch}.0.admin:*`, `other.1.admin:*`, `${a.epoch}.1.admin:2`]) {
        assert.equal(await store.status(bad, T0), undefined, `unknown id ${JSON.stringify(bad)}`);
      }
      await store.prune(T0 + 1000);
      assert.equal(await store.status(a.id, T0 + 1000), undefined, 'pruned');
      const b = await store.append({ stream: 'admin:*', json: msg(2), expiresAt: T0 + HOUR }, T0);
      await store.append({ stream: 'admin:*', json: msg(3), expiresAt: T0 + HOUR }, T0);
      await store.append({ stream: 'admin:*', json: msg(4), expiresAt: T0 + HOUR }, T0);
      assert.equal(await store.status(b.id, T0), undefined, 'dropped by the cap');
    }));

    it('prune works through a large backlog without holding the event loop', () => withStore(factory, 100_000, async ({ store }) => {
      const n = 20_000;
      const appends = [];
      for (let i = 0; i < n; i++) appends.push(store.append({ stream: `user:${i % 50}`, json: msg(i), expiresAt: T0 + (i % 2 === 0 ? 10 : HOUR) }, T0));
      await Promise.all(appends);
      // Turns of the event loop while pruning.
      const turns = countTurns();
      const removed = await store.prune(T0 + 100);
      const turnsWhilePruning = turns.stop();
      assert.equal(removed, n / 2);
      // Stream user:k got i = k, k + 50, …: all even (expired) or all odd (kept).
      assert.equal((await store.readAfter('user:0', 0, 1000, T0 + 100)).messages.length, 0);
      assert.equal((await store.head('user:0')).firstSeq, n / 50 + 1);
      const r = await store.readAfter('user:1', 0, 1000, T0 + 100);
      assert.equal(r.messages.length, n / 50);
      assert.ok(r.messages.every((m) => (Number((JSON.parse(m.json) as { TITLE: string }).TITLE.slice(1)) % 2) === 1));
      // Every store prunes in slices and yields between them.
      assert.ok(turnsWhilePruning > 0, 'the event loop ran while pruning');
    }));

    it('behaves like a simple model under random operations', () => withStore(factory, 5, async ({ store }) => {
      // Model: per stream, lastSeq, the retained list, acked; idempotency keys by stream.
      const streams = ['admin:1', 'admin:2', 'admin:*'];
      const op = fc.oneof(
        fc.record({
          t: fc.constant('append' as const), s: fc.constantFrom(...streams), ttl: fc.constantFrom(5, 50, HOUR), key: fc.option(fc.constantFrom('a', 'b', 'c'), { nil: undefined }),
          // Stored and read back exactly, whatever the text: ASCII, Latin-1, Cyrillic, emoji, a lone surrogate, long.
          text: fc.constantFrom('', 'ascii', 'café', 'Привет', '😀😀', '\ud800 lone', 'x'.repeat(700), 'я'.repeat(300)),
        }),
        fc.record({ t: fc.constant('ack' as const), s: fc.constantFrom(...streams), seq: fc.nat(30) }),
        fc.record({ t: fc.constant('tick' as const), ms: fc.nat(30) }),
        fc.record({ t: fc.constant('prune' as const) }),
      );
      let prefix = 0;
      await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 60 }), async (ops) => {
        // Fresh stream names per run, so runs do not see each other.
        const run = `r${prefix++}`;
        // A stream the store has no state for (never written, or evicted by
        // pruning: idle at two passes in a row) starts above the store's SEQ
        // floor, which other runs' evictions raise too: its head says where.
        const model = new Map<string, { last: number; kept: { seq: number; exp: number; json: string }[]; acked: number; keys: Map<string, { seq: number; exp: number }>; idleSeq: number }>();
        const m = async (s: string) => {
          let v = model.get(s);
          if (!v) {
            const head = await store.head(`${run}${s}`);
            model.set(s, (v = { last: head.lastSeq, kept: [], acked: head.ackedSeq, keys: new Map(), idleSeq: -1 }));
          }
          return v;
        };
        let now = T0;
        for (const o of ops) {
          if (o.t === 'tick') now += o.ms;
          else if (o.t === 'prune') {
            await store.prune(now);
            for (const [s, v] of model) {
              v.kept = v.kept.filter((k) => k.exp > now);
              for (const [k, use] of v.keys) if (use.exp <= now) v.keys.delete(k);
              if (v.kept.length > 0 || v.keys.size > 0) v.idleSeq = -1;
              else if (v.idleSeq === v.last) model.delete(s);
              else v.idleSeq = v.last;
            }
          } else if (o.t === 'ack') {
            await store.ack(`${run}${o.s}`, o.seq);
            // An ack of a stream the store has no state for changes nothing.
            const v = model.get(o.s);
            if (v && o.seq > v.acked) v.acked = Math.min(o.seq, v.last);
          } else {
            const s = `${run}${o.s}`;
            const v = await m(o.s);
            const json = `{"TYPE":"MESSAGE","TITLE":"${o.text}${v.last + 1}"}`;
            const res = await store.append(o.key === undefined ? { stream: s, json, expiresAt: now + o.ttl } : { stream: s, json, expiresAt: now + o.ttl, idempotencyKey: o.key }, now);
            const seen = o.key === undefined ? undefined : v.keys.get(o.key);
            if (seen && seen.exp > now) {
              assert.deepEqual([res.seq, res.duplicate], [seen.seq, true]);
            } else {
              v.last++;
              v.kept.push({ seq: v.last, exp: now + o.ttl, json });
              if (o.key !== undefined) v.keys.set(o.key, { seq: v.last, exp: now + o.ttl });
              const drop = Math.max(0, v.kept.length - 5);
              v.kept.splice(0, drop);
              // The cap drops the keys of the notifications it drops (docs/delivery.md, Sending).
              for (const [k, use] of v.keys) if (use.seq < (v.kept[0]?.seq ?? v.last + 1)) v.keys.delete(k);
              assert.deepEqual([res.seq, res.duplicate, res.dropped], [v.last, false, drop]);
            }
          }
        }
        for (const [s, v] of model) {
          const r = await store.readAfter(`${run}${s}`, 0, 100, now);
          assert.deepEqual(r.messages.map((x) => [x.seq, x.json]), v.kept.filter((k) => k.exp > now).map((k) => [k.seq, k.json]));
          assert.equal(r.lastSeq, v.last);
          assert.equal(r.firstSeq, v.kept[0]?.seq ?? v.last + 1);
          assert.equal(r.ackedSeq, v.acked);
        }
      }), { numRuns: 60 });
    }));

    if (options.durable) {
      it('keeps streams, epochs, messages, acks and keys across a reopen', () => withStore(factory, 100, async (s) => {
        assert.ok(s.reopen);
        const a = await s.store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR, idempotencyKey: 'once' }, T0);
        await s.store.append({ stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR }, T0);
        await s.store.ack('admin:1', 1);
        const emptyHead = await s.store.head('user:5');
        const before = await s.store.readAfter('admin:1', 0, 10, T0);
        const store = await s.reopen();
        assert.deepEqual(await store.readAfter('admin:1', 0, 10, T0), before);
        assert.equal((await store.head('user:5')).epoch, emptyHead.epoch, 'an empty stream keeps its epoch too');
        assert.equal((await store.status(a.id, T0))?.acknowledged, true);
        const dup = await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR, idempotencyKey: 'once' }, T0);
        assert.deepEqual(dup, { ...a, duplicate: true });
        assert.equal((await store.append({ stream: 'admin:1', json: msg(3), expiresAt: T0 + HOUR }, T0)).seq, 3);
      }));
    }

    it('writes after close are refused', () => withStore(factory, 10, async (s) => {
      await s.store.close();
      await assert.rejects(s.store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0));
    }));
  });
}
