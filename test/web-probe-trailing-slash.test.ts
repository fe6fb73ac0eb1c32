/**
 * The browser library's credential probe (POST on the endpoint's URL) answers
 * what the handshake of the same URL got, also for a path the handshake reads
 * as an endpoint though it is not spelled as one: `/ws/admin/` is /ws/admin
 * to the handshake. Its probe answered 404, so a page whose endpoint ends in
 * '/' never learnt that its credential was refused and retried for ever.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CloseCode } from '../src/protocol/close-codes.js';
import { probeRefusal } from '../src/client/probe.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';

describe('the probe of a WebSocket URL', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('answers the status its handshake got, for every path under /ws/', async () => {
    const good = await s.token('admin', 1);
    for (const path of ['/ws/admin', '/ws/admin/', '/ws/user//', '/ws/', '/ws/nope', '/ws/admin/x', '/ws/%61dmin']) {
      for (const token of [good, 'bad']) {
        const handshake = await TestTab.status(`${s.wsUrl}${path}`, { query: { token } });
        const probe = await fetch(`${s.url}${path}?token=${token}`, { method: 'POST' });
        const body = await probe.json() as { error: { code: string } };
        // An admitted handshake is the probe's 426; a refused one, the same status.
        const expected = handshake.status === 101 ? 426 : handshake.status;
        assert.equal(probe.status, expected, `${path}, ${token === good ? 'a good' : 'a bad'} token: the handshake got ${handshake.status} ${handshake.body}, the probe ${probe.status} ${JSON.stringify(body)}`);
        if (handshake.status !== 101) assert.equal(body.error.code, JSON.parse(handshake.body).error.code, path);
      }
    }
  });

  test('tells the browser library that a refused credential is refused, at an endpoint that ends in /', async () => {
    assert.equal(await probeRefusal(`${s.wsUrl}/ws/admin/?token=bad`), CloseCode.UNAUTHORIZED);
    assert.equal(await probeRefusal(`${s.wsUrl}/ws/user/?token=${await s.token('user', 2)}`), undefined, 'a good credential: retry');
  });
});
