/**
 * The AckBuffer's promise: a head read at any moment, plus pending(), counts
 * every acknowledgement already recorded — also while its write is queued in
 * an asynchronous store (SQLite batches writes to the next turn of the loop).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { AckBuffer } from '../src/server/gateway/ack-buffer.js';
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
});
