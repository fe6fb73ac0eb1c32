/**
 * The AckBuffer's promise: a head read at any moment, plus pending(), counts
 * every acknowledgement already recorded — also while its write is queued in
 * an asynchronous store (SQLite batches writes to the next turn of the loop).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { AckBuffer } from '../src/server/gateway/ack-buffer.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';

describe('AckBuffer', () => {
  it('counts an acknowledgement whose store write is still in flight', async () => {
    const store = new SqliteStore({ file: ':memory:', maxPerStream: 100 });
    try {
      const now = Date.now();
      for (let i = 0; i < 3; i++) await store.append({ stream: 'admin:1', json: '{"TYPE":"MESSAGE"}', expiresAt: now + 60_000 }, now);
      const acks = new AckBuffer(store, pino({ level: 'silent' }));
      acks.record('admin:1', 3);
      // The flush has taken the batch; SQLite has only queued the write.
      const flushing = acks.flush();
      // What a tab connecting now computes as "already acknowledged" (Connection#replayStream).
      const head = await store.head('admin:1');
      assert.equal(Math.max(head.ackedSeq, acks.pending('admin:1')), 3, 'a new tab would be replayed acknowledged notifications');
      await flushing;
      assert.equal((await store.head('admin:1')).ackedSeq, 3);
      assert.equal(acks.pending('admin:1'), 0);
    } finally {
      await store.close();
    }
  });

  it('writes to a store that applies at once without a promise, turn after turn', async () => {
    const store = new MemoryStore({ maxPerStream: 100 });
    try {
      const now = Date.now();
      for (let i = 0; i < 3; i++) {
        await store.append({ stream: 'admin:1', json: '{"TYPE":"MESSAGE"}', expiresAt: now + 60_000 }, now);
        await store.append({ stream: 'admin:2', json: '{"TYPE":"MESSAGE"}', expiresAt: now + 60_000 }, now);
      }
      const acks = new AckBuffer(store, pino({ level: 'silent' }));
      acks.record('admin:1', 1);
      acks.record('admin:2', 2);
      acks.record('admin:1', 2);
      assert.equal(acks.flush(), undefined, 'no promise');
      assert.deepEqual([store.head('admin:1').ackedSeq, store.head('admin:2').ackedSeq], [2, 2]);
      assert.deepEqual([acks.pending('admin:1'), acks.pending('admin:2')], [0, 0]);
      // The next turn's acks, through the flush record() schedules.
      acks.record('admin:1', 3);
      assert.equal(acks.pending('admin:1'), 3);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(store.head('admin:1').ackedSeq, 3);
      assert.equal(acks.pending('admin:1'), 0);
    } finally {
      await store.close();
    }
  });

  it('a write the store refuses is logged and no longer counted as pending', async () => {
    const store = new SqliteStore({ file: ':memory:', maxPerStream: 100 });
    const now = Date.now();
    await store.append({ stream: 'admin:1', json: '{"TYPE":"MESSAGE"}', expiresAt: now + 60_000 }, now);
    const warnings: Array<Record<string, unknown>> = [];
    const acks = new AckBuffer(store, pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line)) }));
    await store.close(); // a closed store refuses every write
    acks.record('admin:1', 1);
    await acks.flush();
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.msg, 'could not record acknowledgements');
    assert.match(String(warnings[0]!.err), /closed/);
    assert.equal(warnings[0]!.stream, 'admin:1');
    assert.equal(acks.pending('admin:1'), 0);
  });
});
