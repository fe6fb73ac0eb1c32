/**
 * A RESUME whose replay fails (the store errors) must not let the tab carry
 * on live from past the gap it asked to have filled: it is closed with 4503
 * and reconnects with its cursor, as a failed first replay is.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { withDelivery } from '../src/server/notifier.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { AppendInput, MessageStore } from '../src/server/store/message-store.js';
import { openBareConnection } from './helpers/bare-connection.js';

/** A store whose reads can be made to fail, as a store with an I/O error does. */
class FlakyStore implements MessageStore {
  failReads = false;
  /** Called when a failing read starts; the read fails when `fail` is called. */
  onFailingRead: ((fail: () => void) => void) | undefined;
  constructor(readonly inner: MessageStore) {}
  append(input: AppendInput, now: number) { return this.inner.append(input, now); }
  appendMany(inputs: readonly AppendInput[], now: number) { return this.inner.appendMany(inputs, now); }
  head(stream: string) { return this.inner.head(stream); }
  async readAfter(stream: string, afterSeq: number, limit: number, now: number) {
    if (this.failReads) {
      await new Promise<void>((resolve) => this.onFailingRead?.(resolve));
      throw new Error('disk I/O error');
    }
    return this.inner.readAfter(stream, afterSeq, limit, now);
  }
  ack(stream: string, seq: number) { return this.inner.ack(stream, seq); }
  ackMany(acks: ReadonlyMap<string, number>) { return this.inner.ackMany(acks); }
  status(id: string, now: number) { return this.inner.status(id, now); }
  prune(now: number) { return this.inner.prune(now); }
  counts() { return this.inner.counts(); }
  close() { return this.inner.close(); }
}

describe('a RESUME whose replay fails', () => {
  test('closes the tab with 4503 instead of going live past the gap', async () => {
    const store = new FlakyStore(new MemoryStore({ maxPerStream: 1000 }));
    const append = (n: number) => store.append({ stream: 'admin:1', json: `{"TYPE":"R","N":${n}}`, expiresAt: Date.now() + 60_000 }, Date.now());
    let epoch = '';
    for (let i = 1; i <= 10; i++) epoch = (await append(i)).epoch;
    const { conn, tab, close } = await openBareConnection(store, { own: { seq: 10, epoch } });
    try {
      await tab.nextOfType('WELCOME');
      // The tab says it has only up to 5 (6..10 are missing); the store read fails.
      store.failReads = true;
      const reading = new Promise<() => void>((resolve) => {
        store.onFailingRead = resolve;
      });
      tab.send({ TYPE: 'RESUME', SEQ: 5, EPOCH: epoch });
      const fail = await reading;
      // A live notification arrives while the replay runs (held), then the read fails.
      const r = await append(11);
      conn.deliver(withDelivery('{"TYPE":"R","N":11}', r.seq, r.epoch, false), { stream: 'own', seq: r.seq, expiresAt: Date.now() + 60_000 });
      fail();
      const closed = await Promise.race([
        tab.closed,
        tab.next((f) => f.SEQ === 11, 2000).then(() => ({ code: 0, reason: 'went live with 6..10 missing' })),
      ]);
      assert.equal(closed.code, 4503, closed.reason);
    } finally {
      close();
    }
  });
});
