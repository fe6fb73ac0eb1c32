/**
 * What the server serves for browsers, over plain HTTP: the library with its
 * caching headers, the credential probe on /ws/admin|user, and the demo
 * routes only in demo mode.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { ErrorCodes, type ErrorCode } from '../src/server/errors.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { ensureClientBuilt } from './helpers/browser.js';
import { rawRequest } from './helpers/raw-http.js';

/** A raw request (so that Origin and Accept-Encoding are exactly what the test says). */
const raw = rawRequest;

describe('browser assets and probe', () => {
  let server: TestServer;
  let prod: TestServer;
  before(async () => {
    ensureClientBuilt();
    [server, prod] = await Promise.all([
      startHerald(),
      startHerald({ demo: false, allowedOrigins: ['https://panel.example.net'] }),
    ]);
  });
  after(async () => {
    await Promise.all([server?.close(), prod?.close()]);
  });

  it('serves /herald.js with a short cache, a strong ETag, 304 on revalidation, gzip on request', async () => {
    const built = readFileSync(new URL('../dist/client/herald.min.js', import.meta.url));
    const plain = await raw(`${server.url}/herald.js`);
    assert.equal(plain.status, 200);
    assert.match(String(plain.headers['content-type']), /^application\/javascript/);
    assert.equal(plain.headers['cache-control'], 'public, max-age=300, must-revalidate');
    assert.equal(plain.headers['x-content-type-options'], 'nosniff');
    assert.ok(plain.body.equals(built));
    const etag = String(plain.headers.etag);
    assert.match(etag, /^"[\w-]{22}"$/);

    const again = await raw(`${server.url}/herald.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);

    const gz = await raw(`${server.url}/herald.js`, { headers: { 'accept-encoding': 'gzip, br' } });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(gz.body).equals(built));
    // A budget, not a figure: docs/browser.md gives the size (27.1 KB gzipped by the build, a little more as served).
    assert.ok(gz.body.length < 28 * 1024, `gzipped size ${gz.body.length}`);

    const versioned = await raw(`${server.url}/herald.js?v=${encodeURIComponent(etag)}`);
    assert.equal(versioned.headers['cache-control'], 'public, max-age=31536000, immutable');

    const esm = await raw(`${server.url}/herald.esm.js`);
    assert.equal(esm.status, 200);
    assert.match(esm.body.toString('utf8'), /export\s*\{/);
  });

  it('answers the credential probe with the status the handshake would get', async () => {
    const good = await server.token('admin', 1);
    const refused = await raw(`${server.url}/ws/admin?token=nonsense`, { method: 'POST' });
    assert.equal(refused.status, 401);
    assert.equal(JSON.parse(refused.body.toString('utf8')).error.code, 'HERALD_ERR_UNAUTHORIZED', 'what the library\'s probe reads to stop retrying');
    assert.equal((await raw(`${server.url}/ws/user?token=${good}`, { method: 'POST' })).status, 401, 'an admin token does not open the user endpoint');
    const ok = await raw(`${server.url}/ws/admin?token=${good}`, { method: 'POST', headers: { origin: server.url } });
    assert.equal(ok.status, 426);
    assert.equal(ok.headers.upgrade, 'websocket');
    assert.equal(ok.headers['access-control-allow-origin'], server.url);
    assert.equal(ok.headers['cache-control'], 'no-store');
    const okCode = JSON.parse(ok.body.toString('utf8')).error.code as ErrorCode;
    assert.equal(okCode, 'HERALD_ERR_UPGRADE_REQUIRED');
    assert.equal(ErrorCodes[okCode].status, 426, 'the status is its code\'s (README\'s error table)');
    const prodToken = await prod.token('admin', 1);
    const forbidden = await raw(`${prod.url}/ws/admin?token=${prodToken}`, { method: 'POST', headers: { origin: 'https://evil.example.org' } });
    assert.equal(forbidden.status, 403);
    assert.equal(JSON.parse(forbidden.body.toString('utf8')).error.code, 'HERALD_ERR_ORIGIN', 'what the library\'s probe reads to stop retrying');
    assert.equal(forbidden.headers['access-control-allow-origin'], undefined, 'no CORS for a forbidden origin');
    const allowed = await raw(`${prod.url}/ws/admin?token=${prodToken}`, { method: 'POST', headers: { origin: 'https://panel.example.net' } });
    assert.equal(allowed.status, 426);
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://panel.example.net');
    assert.equal(allowed.headers['access-control-allow-credentials'], 'true');
  });

  it('serves the demo and its endpoints only in demo mode', async () => {
    assert.equal((await raw(`${server.url}/demo`)).status, 200);
    assert.equal((await raw(`${server.url}/demo.js`)).status, 200);
    assert.equal((await raw(`${prod.url}/demo`)).status, 404);
    assert.equal((await raw(`${prod.url}/demo.js`)).status, 404);
    assert.equal((await raw(`${prod.url}/demo/token`, { method: 'POST' })).status, 404);
    assert.equal((await raw(`${prod.url}/herald.js`)).status, 200, 'the library is served in production too');
    const res = await fetch(`${server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'admin', id: 0 }) });
    assert.equal(res.status, 400, 'ids are positive');
    const minted = await fetch(`${server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'user', id: 42 }) });
    const { token } = (await minted.json()) as { token: string };
    assert.equal((await raw(`${server.url}/ws/user?token=${token}`, { method: 'POST' })).status, 426);
  });
});
