import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

for (const store of ['memory', 'sqlite'] as const) {
  describe(`GET /api/v1/status with the ${store} store`, () => {
    let s: TestServer;
    before(async () => { s = await startHerald({ store }); });
    after(async () => { await s.close(); });

    test('counts the streams and the notifications the store holds for tabs, and what their JSON takes', async () => {
      const first = (await s.api('GET', '/api/v1/status')).body;
      assert.equal(first.store, store);
      const text = 'x'.repeat(20_000);
      const sent = await s.api('POST', '/api/v1/send/batch', {
        messages: [
          { to: { aid: 501 }, message: { TYPE: 'MESSAGE', TEXT: 'one' } },
          { to: { aid: 501 }, message: { TYPE: 'MESSAGE', TEXT: 'two' } },
          { to: { aids: [502, 503] }, message: { TYPE: 'MESSAGE', TEXT: text } },
          { to: { aid: 504 }, message: 'live only', ttl: 0 },
        ],
        answer: 'summary',
      });
      assert.equal(sent.body.queued, 3);
      const then = (await s.api('GET', '/api/v1/status')).body;
      assert.equal(then.storeCounts.streams - first.storeCounts.streams, 3, 'admins 501, 502 and 503 (a TTL of 0 keeps nothing)');
      assert.equal(then.storeCounts.retained - first.storeCounts.retained, 4);
      // The long ones are kept as strings, beside the arena's chunks of 1 MiB.
      assert.ok(then.storeCounts.retainedBytes - first.storeCounts.retainedBytes >= 2 * text.length, JSON.stringify(then.storeCounts));
      if (store === 'sqlite') {
        assert.ok(then.storeCounts.transactions > first.storeCounts.transactions);
        assert.deepEqual(Object.keys(then.storeCounts.wal).sort(), ['catchUps', 'checkpoints', 'holds', 'syncFailures', 'syncs']);
      } else {
        assert.equal(then.storeCounts.wal, undefined);
        assert.equal(then.storeCounts.transactions, undefined);
      }
    });
  });
}
