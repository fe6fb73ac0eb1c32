/**
 * The API accepts a disconnect reason of up to 200 characters, but a
 * WebSocket close frame carries at most 123 bytes of reason — 62 Cyrillic
 * letters. A longer reason must still close every tab of the person (the
 * full text in the {"TYPE":"close"} frame), not throw half-way through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

describe('a disconnect reason longer than a close frame holds', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('closes every tab with 4403, the full reason in the close notice', async () => {
    const reason = 'Сеанс завершён администратором, войдите снова, пожалуйста'.padEnd(90, '!') + ' ё'.repeat(20);
    assert.ok(reason.length <= 200 && Buffer.byteLength(reason) > 123);
    const tabs = [await s.tab('admin', 32), await s.tab('admin', 32)];
    for (const t of tabs) await t.nextOfType('WELCOME');
    const r = await s.api('POST', '/api/v1/disconnect', { to: { aid: 32 }, reason });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, { tabs: 2 });
    for (const t of tabs) {
      assert.deepEqual(await t.nextOfType('close'), { TYPE: 'close', REASON: reason });
      const closed = await t.closed;
      assert.equal(closed.code, 4403);
      assert.ok(reason.startsWith(closed.reason) && Buffer.byteLength(closed.reason) <= 123, closed.reason);
    }
    await until(() => s.herald.hub.count({ kind: 'admin', id: 32 }) === 0, 3000, 'the tabs to leave the Hub');
  });
});
