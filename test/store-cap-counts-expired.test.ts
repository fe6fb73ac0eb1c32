/**
 * maxPerStream and what has expired: an expired notification is never
 * delivered, so it does not hold a place under the cap. It did until a
 * pruning pass removed it (every pruneIntervalMs, never at 0): an append to a
 * stream "full" of expired notifications dropped the oldest one still within
 * its TTL, and forgot its idempotency key. The SQLite store after a restart
 * did not count them (its load skips what expired), so the same sends kept
 * or lost it depending on whether the process had restarted in between.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { MessageStore } from '../src/server/store/message-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { reopenable, type ReopenableStore } from './helpers/reopenable-store.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const STREAM = 'admin:1';
const json = (title: string) => JSON.stringify({ TYPE: 'MESSAGE', TITLE: title });
/** The SQLite store's clock, which its load reads (what had expired is not loaded): set as the tests' time moves. */
let clock = T0;

/** The stores under test, each with a cap of 3 and no pruning pass; `restart` closes and opens a durable one again on its file. */
const stores: Array<{ name: string; open(): ReopenableStore<MessageStore>; restart: boolean }> = [
  { name: 'memory store', open: () => reopenable(() => new MemoryStore({ maxPerStream: 3 }), () => {}), restart: false },
  ...[false, true].map((restart) => ({
    name: `SQLite store${restart ? ', restarted before the send' : ''}`,
    restart,
    open() {
      const dir = mkdtempSync(join(tmpdir(), 'herald-cap-expired-'));
      return reopenable<MessageStore>(() => new SqliteStore({ file: join(dir, 'store.sqlite'), maxPerStream: 3, clock: () => clock }), () => rmSync(dir, { recursive: true, force: true }));
    },
  })),
];

const titles = async (store: MessageStore, now: number) =>
  (await store.readAfter(STREAM, 0, 100, now)).messages.map((m) => (JSON.parse(m.json) as { TITLE: string }).TITLE);

for (const { name, open, restart } of stores) {
  describe(`maxPerStream counts only what has not expired: ${name}`, () => {
    test('a send to a stream full of expired notifications drops none within its TTL, and keeps its idempotency key', async () => {
      const s = open();
      try {
        clock = T0;
        await s.store.append({ stream: STREAM, json: json('A'), expiresAt: T0 + HOUR, idempotencyKey: 'a' }, T0);
        await s.store.append({ stream: STREAM, json: json('B'), expiresAt: T0 + 1_000 }, T0);
        await s.store.append({ stream: STREAM, json: json('C'), expiresAt: T0 + 1_000 }, T0);
        // B and C have expired; no pruning pass has run.
        const now = clock = T0 + 2_000;
        if (restart) await s.reopen();
        const d = await s.store.append({ stream: STREAM, json: json('D'), expiresAt: now + HOUR }, now);
        assert.equal(d.dropped, 0, 'the stream held 2 unexpired notifications under a cap of 3');
        assert.deepEqual(await titles(s.store, now), ['A', 'D']);
        const again = await s.store.append({ stream: STREAM, json: json('A'), expiresAt: now + HOUR, idempotencyKey: 'a' }, now);
        assert.equal(again.duplicate, true, "A's key still stands for it");
        // Full of unexpired ones now (A, D, E): the next drops the oldest, A, as before.
        await s.store.append({ stream: STREAM, json: json('E'), expiresAt: now + HOUR }, now);
        const f = await s.store.append({ stream: STREAM, json: json('F'), expiresAt: now + HOUR }, now);
        assert.equal(f.dropped, 1);
        assert.deepEqual(await titles(s.store, now), ['D', 'E', 'F']);
      } finally {
        await s.destroy();
      }
    });

    test('a batch that fills the stream lets go of what expired before it drops an unexpired notification', async () => {
      const s = open();
      try {
        clock = T0;
        await s.store.append({ stream: STREAM, json: json('A'), expiresAt: T0 + HOUR }, T0);
        await s.store.append({ stream: STREAM, json: json('B'), expiresAt: T0 + 1_000 }, T0);
        const now = clock = T0 + 2_000;
        if (restart) await s.reopen();
        // Under the cap when the batch begins (A and B), at it part-way.
        const r = await s.store.appendMany(['C', 'D'].map((t) => ({ stream: STREAM, json: json(t), expiresAt: now + HOUR })), now);
        assert.deepEqual(r.map((x) => x.dropped), [0, 0]);
        assert.deepEqual(await titles(s.store, now), ['A', 'C', 'D']);
      } finally {
        await s.destroy();
      }
    });
  });
}
