/**
 * A pruning pass that deletes journal rows first writes the rows of the
 * streams written since the last pass (their last SEQs, which only the
 * journal held), a bounded slice of them per transaction with a turn of the
 * event loop between: in one transaction, 640,000 of them held the loop
 * about a second. Watched from a second connection between the turns.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SAVE_SLICE, SqliteStore } from '../src/server/store/sqlite-store.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;

describe('a pruning pass saves the streams it must in slices', () => {
  it(`writes ${4 * SAVE_SLICE} streams' rows ${SAVE_SLICE} per transaction, the loop turning between them`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-prune-slices-'));
    const file = join(dir, 'herald.sqlite');
    const streams = 4 * SAVE_SLICE;
    const store = new SqliteStore({ file, maxPerStream: 10, clock: () => T0 });
    const reader = new Database(file, { readonly: true });
    try {
      const inputs = [];
      for (let i = 1; i <= streams; i++) inputs.push({ stream: `admin:${i}`, json: '{"TYPE":"MESSAGE"}', expiresAt: T0 + HOUR });
      await store.appendMany(inputs, T0);
      // A journal row that expires: the pass deletes it, so the streams' rows must hold their last SEQs first.
      await store.append({ stream: 'admin:0', json: '{"TYPE":"MESSAGE"}', expiresAt: T0 + 1 }, T0);
      const saved = reader.prepare('SELECT count(*) FROM streams WHERE last_seq > 0').pluck();
      assert.equal(saved.get(), 0, 'last SEQs are written lazily');
      // How many rows hold their last SEQ, seen at every turn of the loop while the pass runs.
      const seen: number[] = [0];
      let watching = true;
      const watch = (): void => {
        if (!watching) return;
        seen.push(saved.get() as number);
        setImmediate(watch);
      };
      setImmediate(watch);
      await store.prune(T0 + 2);
      watching = false;
      seen.push(saved.get() as number);
      assert.equal(seen.at(-1), streams + 1, 'every stream saved');
      let largest = 0;
      for (let i = 1; i < seen.length; i++) largest = Math.max(largest, seen[i]! - seen[i - 1]!);
      assert.ok(largest <= SAVE_SLICE + 1, `at most ${SAVE_SLICE} (and admin:0) saved in one turn, saw ${largest}: ${seen.join(' ')}`);
      assert.ok(new Set(seen).size >= 5, `seen in slices: ${[...new Set(seen)].join(' ')}`);
    } finally {
      reader.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
