/**
 * While the session resolver's look-ups are failing, the browser library's
 * probe after a refused handshake (POST /ws/KIND) is answered 503 without a
 * look-up of its own: each refused tab cost the panel two look-ups, not one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';

describe('the probe while the resolver is down', () => {
  let asked = 0;
  let down = true;
  const panel = createServer((req, res) => {
    asked++;
    req.resume();
    req.on('end', () => {
      if (down) res.writeHead(500).end('internal error');
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id: 7 }));
    });
  });
  let h: AuthHerald;
  let httpUrl: string;

  before(async () => {
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    h = await startAuthHerald({
      authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`,
      authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 60_000,
    });
    httpUrl = h.wsUrl.replace(/^ws:/, 'http:');
  });
  after(async () => {
    await h.close();
    panel.closeAllConnections();
    panel.close();
  });

  const probe = async (cookie?: string) => {
    const res = await fetch(`${httpUrl}/ws/admin`, { method: 'POST', headers: { origin: httpUrl, ...(cookie ? { cookie } : {}) } });
    return { status: res.status, body: (await res.json()) as unknown };
  };

  test('20 refused handshakes and their probes: 20 look-ups, each probe 503', async () => {
    for (let i = 0; i < 20; i++) {
      const cookie = `panel_session=s${i}`;
      assert.equal(await h.status('admin', { headers: { cookie } }), 503);
      const answer = await probe(cookie);
      assert.equal(answer.status, 503);
      assert.match(JSON.stringify(answer.body), /HERALD_ERR_UNAVAILABLE/);
    }
    assert.equal(asked, 20, `the panel was asked ${asked} times for 20 handshakes and their probes`);
    // The status counts the handshakes' failed look-ups only.
    const failures = h.herald.status().resolverFailures as { failing: boolean; count: number };
    assert.equal(failures.failing, true);
    assert.equal(failures.count, 20);
  });

  test('a probe without a credential is still 401 while look-ups fail', async () => {
    const answer = await probe();
    assert.equal(answer.status, 401);
  });

  test('once a look-up answers again, the probe asks as the handshake does', async () => {
    down = false;
    const cookie = 'panel_session=s7';
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=s8' } }), 101);
    const before = asked;
    const answer = await probe(cookie);
    assert.equal(answer.status, 426);
    assert.equal(asked, before + 1);
  });
});
