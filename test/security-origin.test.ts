/**
 * The Origin policy against what an attacker (or a confused proxy) can put in
 * the header, through real handshakes on a real Herald: every look-alike of
 * an allowed origin is refused with 403 before the credential is looked at;
 * only what a browser sends for an allowed page is admitted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';
import { mintToken } from '../src/server/auth/token-resolver.js';

const SECRET = randomBytes(32).toString('base64url');

/** The handshake's status with raw header lines (several Origin lines are possible here, not with `ws`). */
function rawHandshake(wsUrl: string, path: string, headerLines: Array<[string, string]>, version = '13'): Promise<number> {
  const u = new URL(wsUrl);
  return new Promise((resolve, reject) => {
    const headers: string[] = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Version', version, 'Sec-WebSocket-Key', randomBytes(16).toString('base64')];
    for (const [k, v] of headerLines) headers.push(k, v);
    const req = request({ host: u.hostname, port: u.port, path, headers });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Origin look-alikes', () => {
  let h: AuthHerald;
  let query: Record<string, string>;

  before(async () => {
    h = await startAuthHerald({ secret: SECRET, allowedOrigins: ['https://panel.example.net', 'https://*.isp.example', 'https://bücher.example'] });
    query = { token: await mintToken(SECRET, { kind: 'admin', id: 7 }, 60_000) };
  });
  after(() => h?.close());

  const admitted = [
    ['the exact origin', 'https://panel.example.net'],
    ['its host in capitals (hosts are case-insensitive)', 'https://PANEL.example.net'],
    ['its default port written out', 'https://panel.example.net:443'],
    ['a wildcard subdomain', 'https://a.isp.example'],
    ['an IDN host as browsers send it (punycode)', 'https://xn--bcher-kva.example'],
  ] as const;
  for (const [what, origin] of admitted) {
    test(`admitted: ${what}`, async () => {
      assert.equal(await h.status('admin', { query, origin }), 101);
    });
  }

  const refused = [
    ['Origin: null (a sandboxed frame, a file:// page)', 'null'],
    ['the allowed host as a prefix of another', 'https://panel.example.net.evil.test'],
    ['the allowed host as a suffix of another', 'https://evilpanel.example.net'],
    ['a trailing dot (another host to a browser)', 'https://panel.example.net.'],
    ['plain http', 'http://panel.example.net'],
    ['another port', 'https://panel.example.net:8443'],
    ['the wildcard\'s own apex', 'https://isp.example'],
    ['the allowed host as user info before another', 'https://panel.example.net@evil.test'],
    ['a fragment trick', 'https://evil.test#@panel.example.net'],
    ['a backslash trick', 'https://evil.test\\@panel.example.net'],
    // As a browser sends it: punycode (xn--pnel-…).
    ['an IDN homograph (Cyrillic а)', new URL('https://p\u0430nel.example.net').origin],
    ['a scheme the policy does not know', 'ftp://panel.example.net'],
    ['an allowed origin followed by a foreign one in one header', 'https://panel.example.net, https://evil.test'],
    // Not origins at all: browsers never send these (RFC 6454 §7: scheme, host, port), so nothing
    // legitimate is refused, and a header that only parses as a URL proves nothing about a page.
    ['an Origin with user info', 'https://user@panel.example.net'],
    ['an Origin with a path', 'https://panel.example.net/admin'],
    ['an Origin with a trailing slash', 'https://panel.example.net/'],
    ['an Origin with a query', 'https://panel.example.net?x'],
  ] as const;
  for (const [what, origin] of refused) {
    test(`refused with 403: ${what}`, async () => {
      assert.equal(await h.status('admin', { query, origin }), 403);
    });
  }

  test('two Origin header lines are refused whichever comes first', async () => {
    const path = `/ws/admin?token=${query.token}`;
    assert.equal(await rawHandshake(h.wsUrl, path, [['Origin', 'https://panel.example.net']]), 101);
    assert.equal(await rawHandshake(h.wsUrl, path, [['Origin', 'https://evil.test'], ['Origin', 'https://panel.example.net']]), 403);
    assert.equal(await rawHandshake(h.wsUrl, path, [['Origin', 'https://panel.example.net'], ['Origin', 'https://evil.test']]), 403);
  });

  test('a hybi-08 handshake (Sec-WebSocket-Version 8) is held to the list by its Sec-WebSocket-Origin', async () => {
    // ws accepts version 8 beside 13; its browsers (2011's) sent the origin there, with no Origin:
    // read as a client without Origin, a foreign page was admitted (allowMissingOrigin is true).
    const path = `/ws/admin?token=${query.token}`;
    assert.equal(await rawHandshake(h.wsUrl, path, [['Sec-WebSocket-Origin', 'https://evil.test']], '8'), 403);
    assert.equal(await rawHandshake(h.wsUrl, path, [['Sec-WebSocket-Origin', 'https://panel.example.net']], '8'), 101);
  });

  test('the credential probe (a plain request) follows the same policy and reflects only an allowed origin', async () => {
    const url = h.wsUrl.replace('ws:', 'http:') + `/ws/admin?token=${query.token}`;
    const evil = await fetch(url, { method: 'POST', headers: { origin: 'https://panel.example.net/admin' } });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    const good = await fetch(url, { method: 'POST', headers: { origin: 'https://panel.example.net' } });
    assert.equal(good.status, 426);
    assert.equal(good.headers.get('access-control-allow-origin'), 'https://panel.example.net');
  });
});
