/**
 * The StreamIndex's retained notifications (src/server/store/stream-index.ts),
 * checked against a plain list under random batches (large ones and single
 * appends), caps and prunes, with the arena's live count kept exact.
 * (store-contract.ts checks the stores built on it, with a small cap;
 * store-json-arena.test.ts the relocation out of sparse chunks.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_ARENA_CHARS } from '../src/server/store/json-arena.js';
import { StreamIndex, WriteBatch } from '../src/server/store/stream-index.js';

const T0 = 1_000_000;
const LONG = 'L'.repeat(MAX_ARENA_CHARS + 1);
const TTL = fc.constantFrom(10, 100, 1_000_000);

describe('StreamIndex retained notifications', () => {
  it('behave like a plain list through large batches, the cap and pruning', () => {
    const op = fc.oneof(
      // A batch of appends to one stream, each with its own TTL; now and then a JSON too long for the arena.
      fc.record({
        t: fc.constant('append' as const), s: fc.constantFrom('admin:1', 'admin:2', 'user:*'),
        // Batches of one to three or of up to 90.
        ttls: fc.oneof(fc.array(TTL, { minLength: 1, maxLength: 3 }), fc.array(TTL, { minLength: 1, maxLength: 90 })), long: fc.boolean(),
      }),
      fc.record({ t: fc.constant('tick' as const), ms: fc.nat(150) }),
      fc.record({ t: fc.constant('prune' as const) }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 60 }), fc.constantFrom(7, 150, 1000), (ops, cap) => {
      const index = new StreamIndex(cap, 'storeEpoch');
      const batch = new WriteBatch(index);
      const model = new Map<string, { last: number; idleSeq?: number; kept: Array<{ seq: number; exp: number; json: string }> }>();
      let now = T0;
      // A stream that two passes in a row find empty, at the same last SEQ, is evicted; one
      // written again starts above the highest last SEQ evicted (stream-index.ts, seqFloor).
      let floor = 0;
      const prune = (): void => {
        index.prune(now);
        for (const [s, v] of model) {
          v.kept = v.kept.filter((k) => k.exp > now);
          if (v.kept.length > 0) {
            delete v.idleSeq;
          } else if (v.idleSeq === v.last) {
            floor = Math.max(floor, v.last);
            model.delete(s);
          } else {
            v.idleSeq = v.last;
          }
        }
      };
      for (const o of ops) {
        if (o.t === 'tick') {
          now += o.ms;
        } else if (o.t === 'prune') {
          prune();
        } else {
          let v = model.get(o.s);
          if (!v) model.set(o.s, (v = { last: floor, kept: [] }));
          o.ttls.forEach((ttl, i) => {
            // Each stream's own text: the arena shares one copy of the same JSON put in a row (a list send), tested below.
            const json = o.long && i === 0 ? `{"T":"${LONG}","N":${v.last + 1}}` : `{"N":${v.last + 1},"S":"${o.s}","T":"Привет"}`;
            batch.append({ stream: o.s, json, expiresAt: now + ttl }, now);
            v.kept.push({ seq: ++v.last, exp: now + ttl, json });
          });
          v.kept.splice(0, Math.max(0, v.kept.length - cap));
          batch.apply();
        }
      }
      prune();
      let inArena = 0;
      for (const [s, v] of model) {
        const r = index.readAfter(s, 0, 10_000, now);
        assert.deepEqual(r.messages.map((m) => [m.seq, m.expiresAt, m.json]), v.kept.map((k) => [k.seq, k.exp, k.json]));
        assert.equal(r.firstSeq, v.kept[0]?.seq ?? v.last + 1);
        assert.equal(r.lastSeq, v.last);
        assert.equal(index.get(s)?.retained ?? 0, v.kept.length);
        // Reads from the middle find the same notifications (a binary search over the SEQs).
        const mid = v.kept[Math.floor(v.kept.length / 2)];
        if (mid) assert.deepEqual(index.readAfter(s, mid.seq - 1, 3, now).messages.map((m) => m.seq), v.kept.filter((k) => k.seq >= mid.seq).slice(0, 3).map((k) => k.seq));
        inArena += v.kept.filter((k) => !k.json.includes(LONG)).length;
      }
      assert.equal(index.arena.stats.live, inArena, 'the arena holds exactly the retained notifications');
    }), { numRuns: 200 });
  });

  it('keeps the newest under the cap, one append at a time', () => {
    for (const cap of [1, 2, 3, 7, 10, 33]) {
      const index = new StreamIndex(cap, 'storeEpoch');
      const batch = new WriteBatch(index);
      for (let n = 1; n <= 300; n++) {
        batch.append({ stream: 'admin:3', json: `{"N":${n}}`, expiresAt: T0 + 1000 }, T0);
        batch.apply();
        const want = Array.from({ length: Math.min(n, cap) }, (_, i) => `{"N":${n - Math.min(n, cap) + 1 + i}}`);
        assert.deepEqual(index.readAfter('admin:3', 0, 1000, T0).messages.map((m) => m.json), want, `cap ${cap}, after ${n}`);
      }
      assert.equal(index.arena.stats.live, cap);
    }
  });

  it('takes new notifications after pruning emptied a stream', () => {
    const index = new StreamIndex(100_000, 'storeEpoch');
    const batch = new WriteBatch(index);
    for (let i = 0; i < 5000; i++) batch.append({ stream: 'admin:9', json: `{"N":${i}}`, expiresAt: T0 + (i < 4990 ? 10 : 1000) }, T0);
    batch.apply();
    assert.equal(index.prune(T0 + 10), 4990);
    assert.deepEqual(index.readAfter('admin:9', 0, 100, T0 + 10).messages.map((m) => m.json), Array.from({ length: 10 }, (_, i) => `{"N":${4990 + i}}`));
    assert.equal(index.prune(T0 + 1000), 10);
    assert.equal(index.get('admin:9')?.retained, 0);
    for (let i = 0; i < 300; i++) batch.append({ stream: 'admin:9', json: `{"M":${i}}`, expiresAt: T0 + 5000 }, T0 + 1000);
    batch.apply();
    const r = index.readAfter('admin:9', 0, 1000, T0 + 1000);
    assert.deepEqual([r.messages.length, r.firstSeq, r.lastSeq, r.messages[299]?.json], [300, 5001, 5300, '{"M":299}']);
  });
});

describe('StreamIndex eviction of idle streams', () => {
  it('evicts an idle stream only when it would come back under the same EPOCH (not one an older Herald gave a random EPOCH)', () => {
    const index = new StreamIndex(10, 'storeEpoch');
    // As a schema 3 file loads a stream its older Herald rotated to a random EPOCH.
    index.create('admin:1', 'randomEp');
    const batch = new WriteBatch(index);
    for (const stream of ['admin:1', 'admin:2']) batch.append({ stream, json: '{"N":1}', expiresAt: T0 + 10 }, T0);
    batch.apply();
    for (const now of [T0 + 20, T0 + 30]) index.prune(now);
    assert.equal(index.get('admin:2'), undefined, 'the derived-EPOCH stream, idle at two passes, is evicted');
    assert.equal(index.get('admin:1')?.epoch, 'randomEp', 'the random-EPOCH one stays, with its EPOCH: its tabs ack in it');
    assert.equal(index.head('admin:1').epoch, 'randomEp');
  });
});
