/**
 * POST /api/v1/tokens (and the SDK's createConnectToken through it) on a
 * server whose authResolver is `http` (or `sql`): only the `token` resolver
 * reads a signed token, so every handshake with the token it answered 200
 * with was refused 401. Refused with 409 HERALD_ERR_CONFLICT instead
 * (docs/http-api.md, docs/sdk.md).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';
import { BrowserSender, HeraldSdkError } from '../src/sdk/index.js';

describe('tokens on a server that admits tabs by the panel\'s sessions', () => {
  let panel: Server;
  let s: TestServer;
  before(async () => {
    // The panel: admits a tab with cookie sid=good as admin 7, refuses anything else.
    panel = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (/\bsid=good\b/.test(req.headers.cookie ?? '')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"admin","id":7}');
        else res.writeHead(401).end();
      });
    });
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    s = await startHerald({ store: 'memory', authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session` });
  });
  after(async () => {
    await s.close();
    panel.close();
  });

  test('POST /api/v1/tokens is refused with 409 HERALD_ERR_CONFLICT, not answered with a token no handshake takes', async () => {
    const r = await s.api('POST', '/api/v1/tokens', { kind: 'admin', id: 7, ttl: 600 });
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.equal(r.body.error.code, 'HERALD_ERR_CONFLICT');
    assert.match(r.body.error.message, /authResolver http/);
    // What the server would have signed is refused by its own handshake: the refusal is right.
    const signed = await s.token('admin', 7);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: signed } })).status, 401);
    // The panel's session is what admits a tab here.
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { headers: { cookie: 'sid=good' } })).status, 101);
  });

  test('the SDK\'s createConnectToken throws that refusal (without a secret)', async () => {
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken });
    const e = await sender.createConnectToken({ aid: 7, ttl: 600 }).then(() => assert.fail('resolved'), (err: unknown) => err);
    assert.ok(e instanceof HeraldSdkError, String(e));
    assert.equal(e.code, 'HERALD_ERR_CONFLICT');
    assert.equal(e.status, 409);
  });
});
