/**
 * A peer that is gone (a cut network link, a sleeping laptop) answers neither
 * heartbeats nor the close handshake. Closing it with 4408 must not leave it
 * in the Hub — counted online, sent to — for ws's 30 s close timeout.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startHerald } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

describe('a dead peer', () => {
  test('leaves the Hub within a few heartbeats of going silent', async () => {
    const s = await startHerald({ heartbeatMs: 150 });
    try {
      const tab = await s.tab('admin', 7, { autoPong: false });
      await tab.nextOfType('WELCOME');
      assert.equal(s.herald.hub.count({ kind: 'admin', id: 7 }), 1);
      // Stop reading the socket: no pong, and the server's close frame is never answered.
      (tab.ws as any)._socket.pause();
      await until(() => s.herald.hub.count({ kind: 'admin', id: 7 }) === 0, 3000, 'the dead tab to leave the Hub');
      tab.terminate();
    } finally {
      await s.close();
    }
  });
});
