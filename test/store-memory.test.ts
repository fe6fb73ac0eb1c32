import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { storeContract } from './store-contract.js';

storeContract('memory', async (limits) => {
  const store = new MemoryStore(limits);
  return { store, destroy: () => store.close() };
}, { durable: false });

describe('MemoryStore: appends of one turn of the event loop', () => {
  const T0 = 1_000_000;
  const input = (stream: string, n: number) => ({ stream, json: `{"n":${n}}`, expiresAt: T0 + 60_000 });

  it('apply together once the turn is over, in call order', async () => {
    const store = new MemoryStore({ maxPerStream: 100 });
    try {
      const first = store.appendMany([input('admin:1', 1), input('admin:2', 2)], T0);
      const second = store.append(input('admin:1', 3), T0);
      // Nothing is applied while the turn goes on: the requests read in it join the same step.
      assert.equal(store.head('admin:1').lastSeq, 0);
      const [a, b] = await first;
      const c = await second;
      assert.deepEqual([a!.seq, b!.seq, c.seq], [1, 1, 2]);
      assert.equal(store.head('admin:1').lastSeq, 2);
      const page = await store.readAfter('admin:1', 0, 10, T0);
      assert.deepEqual(page.messages.map((m) => m.json), ['{"n":1}', '{"n":3}']);
    } finally {
      await store.close();
    }
  });

  it('are applied and answered when the store closes first', async () => {
    const store = new MemoryStore({ maxPerStream: 100 });
    const pending = store.append(input('admin:1', 1), T0);
    await store.close();
    assert.equal((await pending).seq, 1);
    await assert.rejects(store.append(input('admin:1', 2), T0), /closed/);
  });
});
