/**
 * A tab's ack can be on the wire when the server starts to close the tab
 * (a kick, a shutdown, a heartbeat timeout): the tab sent it before it saw
 * the close. The closing handshake exists so that such data still arrives
 * (RFC 6455 §1.4), and the browser library never sends an ack again once it
 * went out: one the server dropped left the notification unacknowledged for
 * good. Here the tab sends its ack in answer to the close notice, which is
 * the same race made certain.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/** Sends one notification to admin `aid` and returns its id once `tab` has it (with its SEQ and EPOCH). */
async function notify(s: TestServer, tab: TestTab, aid: number): Promise<{ id: string; SEQ: number; EPOCH: string }> {
  const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const n = await tab.nextOfType('MESSAGE');
  return { id: r.body.results[0].messageId, SEQ: n.SEQ, EPOCH: n.EPOCH };
}

/** Makes the tab ack `seq` the moment the server's close notice reaches it, before it answers the close frame. */
function ackOnCloseNotice(tab: TestTab, seq: number, epoch: string): void {
  tab.ws.on('message', (data) => {
    if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE === 'close') tab.send({ TYPE: 'RESPONSE', SEQ: seq, EPOCH: epoch });
  });
}

describe('an ack that arrives while the server closes the tab', () => {
  test('is recorded when the tab is disconnected through the API', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const tab = await s.tab('admin', 31);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 31);
      ackOnCloseNotice(tab, sent.SEQ, sent.EPOCH);
      const r = await s.api('POST', '/api/v1/disconnect', { to: { aid: 31 }, reason: 'logged out' });
      assert.equal(r.body.tabs, 1);
      assert.equal((await tab.closed).code, 4403);
      // The ack was the tab's last frame before its close frame: it was read before the close ended.
      const status = await s.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
    } finally {
      await s.close();
    }
  });

  test('is recorded, and kept across a restart, when the server shuts down', async () => {
    const first = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' });
    const tab = await first.tab('admin', 32);
    await tab.nextOfType('WELCOME');
    const sent = await notify(first, tab, 32);
    ackOnCloseNotice(tab, sent.SEQ, sent.EPOCH);
    await first.herald.close();
    assert.equal((await tab.closed).code, 1001);
    const again = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' }, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
    try {
      const status = await again.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
    } finally {
      await again.close();
      await first.close();
    }
  });
});
