/**
 * How an orderly close (a kick, an ended session, a shutdown: the close
 * notice, then the close frame once the tab has acked, within ACK_WAIT_MS)
 * meets the rest of a tab's life: heartbeats, a second close, a shutdown's
 * grace, a replay that yields to the event loop. Each case is a real Herald
 * and real sockets.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/** Sends one MESSAGE to admin `aid`; resolves once `tab` has it (it then owes an ack). */
async function notify(s: TestServer, tab: TestTab, aid: number): Promise<{ id: string; SEQ: number; EPOCH: string }> {
  const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const n = await tab.nextOfType('MESSAGE');
  return { id: r.body.results[0].messageId, SEQ: n.SEQ, EPOCH: n.EPOCH };
}

describe('the ack wait of an orderly close', () => {
  test('is not cut short by heartbeats shorter than it: a kicked tab that owes an ack still gets its close frame, with the kick\'s code', async () => {
    // The shortest heartbeat there is: several ticks fall within the 1 s ack wait.
    const s = await startHerald({ heartbeatMs: 100 });
    try {
      const tab = await s.tab('admin', 61);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 61);
      // The tab never acks (the old browser script): its close frame comes when the wait ends.
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 61 }, reason: 'logged out' });
      assert.deepEqual(kicked.body, { tabs: 1 });
      // 1006 (no close frame) when a heartbeat ended the socket during the wait:
      // the browser library then reconnects as after a network failure.
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
    } finally {
      await s.close();
    }
  });

  test('an ack sent during the wait, later than two heartbeats, is recorded', async () => {
    const s = await startHerald({ heartbeatMs: 100 });
    try {
      const tab = await s.tab('admin', 62);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 62);
      // A busy page: its ack on the notice comes a few heartbeats later, well within ACK_WAIT_MS.
      tab.ws.on('message', (data) => {
        if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE !== 'close') return;
        setTimeout(() => {
          if (tab.ws.readyState === tab.ws.OPEN) tab.send({ TYPE: 'RESPONSE', SEQ: sent.SEQ, EPOCH: sent.EPOCH });
        }, 400);
      });
      await s.api('POST', '/api/v1/disconnect', { to: { aid: 62 }, reason: 'logged out' });
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
      const status = await s.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
    } finally {
      await s.close();
    }
  });

  test('a shutdown during a kick\'s wait keeps the kick\'s code and reason, and sends the close frame before the socket ends, however short the grace', async () => {
    const s = await startHerald({ heartbeatMs: 60_000, shutdownGraceMs: 0 });
    try {
      const tab = await s.tab('admin', 63);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 63);
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 63 }, reason: 'password changed' });
      assert.deepEqual(kicked.body, { tabs: 1 });
      await tab.nextOfType('close');
      // The kick waits up to 1 s for an ack that never comes; the shutdown's grace is 0.
      await s.herald.close();
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'password changed' });
    } finally {
      await s.close();
    }
  });
});
