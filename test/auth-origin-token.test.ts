/**
 * The Origin policy and the token resolver end to end: allowed, foreign and
 * wildcard origins, clients that send no Origin, secret rotation, token
 * expiry ending a live tab, and tokens kept out of the log.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { mintToken } from '../src/server/auth/token-resolver.js';
import { OriginPolicy } from '../src/server/auth/origin-policy.js';
import { loadOptions } from '../src/server/options.js';
import { startAuthHerald, within } from './helpers/auth-herald.js';

describe('Origin policy', () => {
  test('the embedded default admits its own origin and localhost, refuses a foreign page with 403', async () => {
    const h = await startAuthHerald({});
    try {
      const token = (await h.herald.mintToken({ kind: 'admin', id: 1 })).token;
      const query = { token };
      const own = h.herald.urls.http;
      assert.equal(await h.status('admin', { query, origin: own }), 101);
      assert.equal(await h.status('admin', { query, origin: 'http://localhost:8080' }), 101);
      assert.equal(await h.status('admin', { query, origin: 'https://evil.example' }), 403);
      assert.equal(await h.status('admin', { query, origin: 'null' }), 403);
      // A foreign page is refused before its credentials are even looked at.
      assert.equal(await h.status('admin', { origin: 'https://evil.example' }), 403);
      // No Origin at all: not a browser; admitted by default (credentials still required).
      assert.equal(await h.status('admin', { query, origin: undefined }), 101);
      assert.equal(await h.status('admin', { origin: undefined }), 401);
    } finally {
      await h.close();
    }
  });

  test('an allowlist with exact and wildcard entries; allowMissingOrigin=false refuses clients without Origin', async () => {
    const h = await startAuthHerald({ allowedOrigins: ['https://panel.example.net', 'https://*.isp.example'], allowMissingOrigin: false });
    try {
      const query = { token: (await h.herald.mintToken({ kind: 'user', id: 2 })).token };
      const status = (origin: string | undefined) => h.status('user', { query, origin });
      assert.equal(await status('https://panel.example.net'), 101);
      assert.equal(await status('https://billing.isp.example'), 101);
      assert.equal(await status('https://a.b.isp.example'), 101);
      assert.equal(await status('https://isp.example'), 403, 'a wildcard covers subdomains, not the domain itself');
      assert.equal(await status('https://evilisp.example'), 403);
      assert.equal(await status('http://panel.example.net'), 403, 'the scheme must match');
      assert.equal(await status('https://panel.example.net:8443'), 403, 'the port must match');
      assert.equal(await status(h.herald.urls.http), 403, 'an explicit list replaces the defaults');
      assert.equal(await status(undefined), 403);
    } finally {
      await h.close();
    }
  });

  test('rules are normalised as browsers serialise origins', () => {
    const p = new OriginPolicy({ allowed: ['https://Panel.Example.net:443', 'https://bücher.example'], allowMissing: true });
    assert.equal(p.check('https://panel.example.net'), 'allowed');
    assert.equal(p.check('https://xn--bcher-kva.example'), 'allowed');
    assert.throws(() => new OriginPolicy({ allowed: ['panel.example.net'], allowMissing: true }), /allowedOrigins/);
    // A `*` but a leading `*.` label matches no Origin a browser sends: refused at start, not every tab after.
    for (const rule of ['https://*', 'https://*.*.example.net', 'https://a.*.example.net', 'https://*example.net']) {
      assert.throws(() => new OriginPolicy({ allowed: [rule], allowMissing: true }), /allowedOrigins/, rule);
    }
    assert.doesNotThrow(() => new OriginPolicy({ allowed: ['https://*.example.net:*', '*'], allowMissing: true }));
  });
});

describe('token resolver', () => {
  test('an empty ?token= does not hide the herald_token cookie', async () => {
    const h = await startAuthHerald({});
    try {
      const token = (await h.herald.mintToken({ kind: 'admin', id: 4 })).token;
      assert.equal(await h.status('admin', { query: { token: '' }, headers: { cookie: `herald_token=${token}` } }), 101);
      assert.equal(await h.status('admin', { query: { token: '' } }), 401);
    } finally {
      await h.close();
    }
  });

  test('an apiToken that is not printable ASCII is refused at start: it travels in a header, and matched no request', () => {
    const load = (apiToken: string) => () => loadOptions({ env: {}, overrides: { apiToken, dataDir: '/tmp/unused', secret: 's'.repeat(32) } });
    assert.throws(load('пароль-пароль-пароль'), /option "apiToken" must be printable ASCII/);
    assert.throws(load('a-token-with a-space-in-it'), /option "apiToken" must be printable ASCII/);
    assert.doesNotThrow(load('a-token-of-ascii-0123456789'));
  });

  test('tokens signed with the previous secret still admit (rotation), others are refused with 401', async () => {
    const previousSecret = randomBytes(32).toString('base64url');
    const h = await startAuthHerald({ previousSecret });
    try {
      const old = await mintToken(previousSecret, { kind: 'admin', id: 4 }, 60_000);
      const tab = await h.open('admin', { query: { token: old } });
      assert.equal((await tab.nextOfType('WELCOME')).ID, 4);
      const stranger = await mintToken(randomBytes(32).toString('base64url'), { kind: 'admin', id: 4 }, 60_000);
      assert.equal(await h.status('admin', { query: { token: stranger } }), 401);
      tab.close();
    } finally {
      await h.close();
    }
  });

  test('a live tab whose token expires is closed with 4419 "credential expired" (reconnect with a fresh one) at the next re-check', async () => {
    const h = await startAuthHerald({ sessionRecheckMs: 200 });
    try {
      // Expiry is in whole seconds (JWT exp): 2 s leaves 1–2 s, enough to open the tab first.
      const token = (await h.herald.mintToken({ kind: 'user', id: 9 }, 2000)).token;
      const tab = await h.open('user', { query: { token } });
      await tab.nextOfType('WELCOME');
      const closed = await within(tab.closed, 5000, 'the tab to close at token expiry');
      assert.deepEqual(closed, { code: CloseCode.CREDENTIAL_EXPIRED, reason: CloseReason.CREDENTIAL_EXPIRED });
      assert.equal(await h.status('user', { query: { token } }), 401);
      const fresh = await h.open('user', { query: { token: (await h.herald.mintToken({ kind: 'user', id: 9 })).token } });
      assert.equal((await fresh.nextOfType('WELCOME')).ID, 9);
      fresh.close();
      const log = h.log();
      assert.match(log, /handshake refused/);
      assert.ok(!log.includes(token), 'the log contains a token');
      assert.ok(!log.includes(token.split('.')[2]!), 'the log contains a token signature');
    } finally {
      await h.close();
    }
  });
});
