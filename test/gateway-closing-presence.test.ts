/**
 * A tab the server has begun to close is no longer one of the person's open
 * tabs: nothing more is sent to it. Its close handshake can take up to ws's
 * 30 s when the peer does not read (a frozen page closed as a slow consumer,
 * a dead link closed for silence); until then it was still counted online,
 * and a live-only send to it was reported delivered, and dropped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHerald } from './helpers/server.js';

test('a tab closed as a slow consumer leaves presence at once; a live-only send to that person then reports 0 tabs', async () => {
  const s = await startHerald({ maxBufferedBytes: 65_536, heartbeatMs: 60_000 });
  try {
    const tab = await s.tab('admin', 41);
    await tab.nextOfType('WELCOME');
    // The page froze: nothing more is read from its socket.
    const socket = (tab.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const text = 'x'.repeat(60_000);
    let delivered = 1;
    let sends = 0;
    // Each send goes to the one tab until its backlog passes maxBufferedBytes and it is closed.
    while (delivered === 1 && sends < 500) {
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: { TYPE: 'MESSAGE', TEXT: text }, ttl: 0 });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      delivered = r.body.delivered;
      sends++;
    }
    assert.equal(delivered, 0, `after ${sends} sends the closed tab was still sent to`);
    const online = await s.api('GET', '/api/v1/online/admin/41');
    assert.deepEqual({ online: online.body.online, tabs: online.body.tabs }, { online: false, tabs: 0 });
    // The page wakes up: it reads its backlog, then the close notice and the close frame.
    socket.resume();
    assert.deepEqual(await tab.nextOfType('close', 10_000), { TYPE: 'close', REASON: 'slow consumer' });
    assert.equal((await tab.closed).code, 4429);
  } finally {
    await s.close();
  }
});
