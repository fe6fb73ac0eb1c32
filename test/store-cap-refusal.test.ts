/**
 * A send the cap refuses (maxRetainedBytes, "store full") among the writes of
 * one turn of the event loop: only it is refused, and the others are
 * committed together, as they are without it. It was found while the batch
 * was staged, the whole batch was dropped and every write retried alone: 500
 * sends and one that could never fit took 500 transactions (an fsync each
 * under sqliteSynchronous=full: the event loop held 1.3–1.7 s instead of
 * 13–111 ms). What the other writes get (SEQs, idempotency keys, the tally)
 * is as if the refused one had never come; and a turn of refused sends lets
 * go of what has expired (StreamIndex.dropExpired) once, not once each.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { AppendInput, AppendResult, MessageStore } from '../src/server/store/message-store.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { newEpoch } from '../src/server/store/message-id.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { isStoreFull, StreamIndex, WriteBatch } from '../src/server/store/stream-index.js';
import { reopenable } from './helpers/reopenable-store.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const CAP = 100_000;

const small = (n: number, stream = `admin:${n % 7}`, key?: string): AppendInput =>
  ({ stream, json: JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}` }), expiresAt: T0 + HOUR, ...(key === undefined ? {} : { idempotencyKey: key }) });
/** Never fits under CAP. */
const huge = (stream: string, key?: string): AppendInput =>
  ({ stream, json: JSON.stringify({ TYPE: 'MESSAGE', TEXT: 'y'.repeat(CAP) }), expiresAt: T0 + HOUR, ...(key === undefined ? {} : { idempotencyKey: key }) });

interface Opened {
  store: MessageStore;
  /** Transactions committed so far (SQLite only). */
  transactions?: () => number;
  reopen?: () => Promise<MessageStore>;
  destroy(): Promise<void>;
}

const stores: Record<'memory' | 'sqlite', (maxRetainedBytes: number) => Opened> = {
  memory: (maxRetainedBytes) => {
    const store = new MemoryStore({ maxPerStream: 1000, maxRetainedBytes });
    return { store, destroy: () => store.close() };
  },
  sqlite: (maxRetainedBytes) => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cap-refusal-'));
    const opened = reopenable(
      () => new SqliteStore({ file: join(dir, 'herald.sqlite'), maxPerStream: 1000, maxRetainedBytes, clock: () => T0 }),
      () => rmSync(dir, { recursive: true, force: true }),
    );
    return Object.assign(opened, { transactions: () => opened.store.stats.batches });
  },
};

for (const kind of ['memory', 'sqlite'] as const) {
  describe(`${kind} store: a send refused for maxRetainedBytes among a turn's writes`, () => {
    it('is refused alone; the rest are committed in one transaction, as if it had never come', async () => {
      const s = stores[kind](CAP);
      try {
        const before = s.transactions?.();
        const calls: Array<Promise<AppendResult | AppendResult[]>> = [];
        for (let i = 0; i < 100; i++) {
          calls.push(s.store.append(small(i, 'admin:1', i === 10 ? 'k' : undefined), T0));
          // In the same stream, with the key a later send uses: neither its SEQ nor its key is taken.
          if (i === 5) calls.push(s.store.append(huge('admin:1', 'k'), T0));
          // A batch of sends, refused whole: its first one's SEQ in admin:2 is not taken either.
          if (i === 50) calls.push(s.store.appendMany([small(1000, 'admin:2'), huge('admin:3'), small(1001, 'admin:4')], T0));
          if (i === 60) calls.push(s.store.append(small(2000, 'admin:2'), T0));
        }
        const settled = await Promise.allSettled(calls);
        const refused = settled.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
        assert.deepEqual(refused, [6, 52], 'the huge send and the batch holding one, nothing else');
        for (const i of refused) assert.ok(isStoreFull((settled[i] as PromiseRejectedResult).reason));
        if (s.transactions) assert.equal(s.transactions() - before!, 1, 'the other 101 writes in one transaction');

        const seqs = settled.filter((r) => r.status === 'fulfilled').map((r) => (r.value as AppendResult).seq);
        assert.deepEqual(seqs, [...Array.from({ length: 61 }, (_, i) => i + 1), 1, ...Array.from({ length: 39 }, (_, i) => i + 62)]);
        const keyed = settled[11] as PromiseFulfilledResult<AppendResult>;
        assert.deepEqual([keyed.value.seq, keyed.value.duplicate], [11, false], 'the key k was never taken by the refused send');

        const check = async (store: MessageStore) => {
          assert.deepEqual([(await store.head('admin:1')).lastSeq, (await store.head('admin:2')).lastSeq, (await store.head('admin:3')).lastSeq], [100, 1, 0]);
          const page = await store.readAfter('admin:2', 0, 10, T0);
          assert.deepEqual(page.messages.map((m) => m.json), [small(2000).json]);
          const counts = store.counts();
          assert.equal(counts.retained, 101);
          const bytes = Array.from({ length: 100 }, (_, i) => small(i).json.length).reduce((a, b) => a + b, 0) + small(2000).json.length;
          assert.equal(counts.retainedBytes, bytes, 'the tally counts the committed sends only');
          // The key stands for the notification that was stored with it.
          const again = await store.append(small(3000, 'admin:1', 'k'), T0);
          assert.deepEqual([again.seq, again.duplicate], [11, true]);
        };
        await check(s.store);
        if (s.reopen) await check(await s.reopen());
      } finally {
        await s.destroy();
      }
    });

    it('lets go of what has expired once for a turn of refused sends, not once for each', async () => {
      // 12,000 streams of one short-lived notification, and one that fills the rest of the cap.
      const s = stores[kind](CAP);
      try {
        const shortLived = (i: number): AppendInput => ({ stream: `admin:${i}`, json: 'x', expiresAt: T0 + 1_000 });
        for (let b = 0; b < 12; b++) await s.store.appendMany(Array.from({ length: 1000 }, (_, i) => shortLived(b * 1000 + i)), T0);
        await s.store.append({ stream: 'admin:big', json: 'z'.repeat(CAP - 12_000 - 10), expiresAt: T0 + HOUR }, T0);
        assert.equal(s.store.counts().retained, 12_001);
        // Later, once they have expired: ten sends that never fit, in one turn.
        const later = T0 + 2_000;
        const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => s.store.append(huge(`admin:x${i}`), later)));
        assert.ok(settled.every((r) => r.status === 'rejected' && isStoreFull(r.reason)));
        // One slice (PRUNE_SLICE, 5,000: a stream and its notification count 2) let go of about
        // 2,500 of them; one for each refusal let go of all 12,000.
        const dropped = 12_001 - s.store.counts().retained;
        assert.ok(dropped > 0 && dropped <= 2_501, `${dropped} expired notifications let go of`);
      } finally {
        await s.destroy();
      }
    });
  });
}

describe('WriteBatch.rollback', () => {
  /** A write: one caller's appends, at `now`; `poisoned`: it also holds one the cap always refuses. */
  interface Write { inputs: AppendInput[]; now: number; poisoned: boolean }
  const input = fc.record({
    stream: fc.constantFrom('a', 'b', 'c'),
    size: fc.integer({ min: 1, max: 40 }),
    key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: undefined }),
    expiresAt: fc.constantFrom(105, 112, 1_000),
  });
  const write = fc.record({
    inputs: fc.array(input, { minLength: 1, maxLength: 3 }),
    // Not always later than the write before: each request's own clock reading.
    now: fc.constantFrom(100, 104, 110),
    poisoned: fc.boolean(),
    at: fc.nat(3),
  });
  /** Three streams of at most 3 notifications of at most 40 characters: 360 would fit, not 200. */
  const CAP_HERE = 200;

  /**
   * Stages `writes` on a fresh index (applying the batch before write
   * `committed`), each under a mark and taken back when refused; with
   * `leaveOut`, those writes are not staged at all. Returns what is observable.
   */
  function run(epoch: string, writes: Write[], committed: number, leaveOut?: ReadonlySet<number>) {
    const index = new StreamIndex(3, epoch);
    index.maxRetainedBytes = CAP_HERE;
    const batch = new WriteBatch(index);
    const results: unknown[] = [];
    const refused = new Set<number>();
    writes.forEach((w, n) => {
      if (n === committed) {
        batch.apply();
        results.push('applied');
      }
      if (leaveOut?.has(n)) {
        results.push('refused');
        return;
      }
      batch.mark();
      try {
        results.push(w.inputs.map((x) => batch.append(x, w.now)));
      } catch (e) {
        assert.ok(isStoreFull(e), String(e));
        batch.rollback();
        refused.add(n);
        results.push(leaveOut ? 'refused, though the others were as without it' : 'refused');
      }
    });
    batch.apply();
    const streams = ['a', 'b', 'c'].map((stream) => ({ head: index.head(stream), read: index.readAfter(stream, 0, 10, 100) }));
    // Each key, once more: a duplicate of what it stands for, or a new SEQ.
    index.maxRetainedBytes = 0;
    const keys = ['a', 'b', 'c'].flatMap((stream) => ['k1', 'k2', 'k3'].map((key) => batch.append({ stream, json: 'q', expiresAt: 1_000, idempotencyKey: key }, 100)));
    batch.discard();
    return { refused, observed: { results, streams, keys, tally: index.tally.bytes, counts: index.counts() } };
  }

  it('leaves the batch as if the refused write had never been staged', () => {
    const epoch = newEpoch();
    let refusals = 0;
    let poisonedOnly = 0;
    fc.assert(fc.property(fc.array(write, { maxLength: 12 }), fc.nat(12), (ws, committed) => {
      let n = 0;
      const writes: Write[] = ws.map((w) => {
        const inputs = w.inputs.map((i) => ({ stream: i.stream, json: `${n++}`.padEnd(i.size, '.'), expiresAt: i.expiresAt, ...(i.key === undefined ? {} : { idempotencyKey: i.key }) }));
        if (w.poisoned) inputs.splice(Math.min(w.at, inputs.length), 0, { stream: 'b', json: 'p'.repeat(CAP_HERE + 1), expiresAt: 1_000 });
        return { inputs, now: w.now, poisoned: w.poisoned };
      });
      const all = run(epoch, writes, committed);
      for (const i of all.refused) {
        refusals++;
        if (writes[i]!.poisoned) poisonedOnly++;
      }
      for (const [i, w] of writes.entries()) if (w.poisoned) assert.ok(all.refused.has(i));
      assert.deepEqual(all.observed, run(epoch, writes, committed, all.refused).observed);
    }), { numRuns: 1000 });
    // Both kinds came up: a write refused for what the batch had staged before it, and a poisoned one.
    assert.ok(refusals > poisonedOnly && poisonedOnly > 0, `${refusals} refusals, ${poisonedOnly} poisoned`);
  });
});
