/**
 * The SQLite store at size: properties that hold however fast the machine is.
 * The figures at production size (1,000,000 notifications) are measured by
 * hand and written down in docs/delivery.md ("At size").
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/server/store/sqlite-store.js';

const T0 = 1_700_000_000_000;
/** A 200-character notification, as a panel sends them. */
const json = (i: number): string => JSON.stringify({ TYPE: 'MESSAGE', TITLE: `Payment received ${i}`, TEXT: 'x'.repeat(150) });

describe('SqliteStore at size', () => {
  it('prunes journal rows of large batches in many small transactions, giving the loop a turn between them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-store-scale-'));
    try {
      const file = join(dir, 's.sqlite');
      // 120 rows of a /send/batch of 1,000 each (about 240 KB of text a row), all expired by T0 + 2000.
      const ROWS = 120;
      const writer = new SqliteStore({ file, maxPerStream: 1_000_000, clock: () => T0 });
      for (let r = 0; r < ROWS; r++) {
        const inputs = Array.from({ length: 1000 }, (_, j) => ({ stream: `admin:${j % 100}`, json: json(r * 1000 + j), expiresAt: T0 + 1000 }));
        await writer.appendMany(inputs, T0);
      }
      await writer.close();

      const store = new SqliteStore({ file, maxPerStream: 1_000_000, clock: () => T0 + 2000 });
      assert.equal(store.loaded.journalRows, ROWS);
      assert.equal(store.loaded.messages, 0, 'expired notifications are not loaded');
      // Nothing is in memory: every turn the loop gets during prune() is between two deleting transactions.
      let turns = 0;
      let longest = 0;
      let last = performance.now();
      let counting = true;
      const count = (): void => {
        if (!counting) return;
        const t = performance.now();
        longest = Math.max(longest, t - last);
        last = t;
        turns++;
        setImmediate(count);
      };
      setImmediate(count);
      await store.prune(T0 + 2000);
      counting = false;
      await store.close();
      console.log(`# pruned ${ROWS} journal rows of 1,000 notifications: ${turns} turns of the loop, longest gap ${longest.toFixed(1)} ms`);
      // At most 1 MiB of text a transaction: 4 rows each, 30 transactions. By rows alone (100 a transaction) it was 2.
      assert.ok(turns >= 25, `the loop got ${turns} turns while ${ROWS} large rows were deleted`);
      const db = new Database(file, { readonly: true });
      try {
        assert.equal((db.prepare('SELECT count(*) AS n FROM journal').get() as { n: number }).n, 0, 'every expired row is deleted');
      } finally {
        db.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
