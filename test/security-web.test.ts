/**
 * The HTTP surface as an outsider sees it, on a real Herald with the demo on:
 * no path reaches a file it does not name, no method echoes a request, no
 * answer lets another site read the API with credentials, and answers that
 * carry a credential are never stored by a cache.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';

/** One request written byte for byte (no client normalises the path), the whole answer as text. */
function raw(url: string, head: string): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => s.write(head));
    let text = '';
    s.on('data', (c) => { text += c.toString('latin1'); });
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    s.on('error', reject);
    s.setTimeout(5000, () => s.destroy(new Error(`no answer to ${JSON.stringify(head.slice(0, 80))}`)));
  });
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n`;

describe('the web surface', () => {
  let server: TestServer;
  before(async () => {
    server = await startHerald({ demo: true });
  });
  after(() => server?.close());

  /** What an answer must never hold: the server's secrets, a file of the machine, a stack trace. */
  function assertNothingLeaked(text: string, what: string): void {
    for (const secret of [server.apiToken, server.secret]) assert.ok(!text.includes(secret), `${what}: the answer holds a secret`);
    assert.doesNotMatch(text, /root:x:0:0|"apiToken"|\bat [\w.<>]+ \(\/|node:internal/, `${what}: the answer leaks a file or a stack trace:\n${text.slice(0, 400)}`);
  }

  const traversals = [
    '/herald/../herald.js', '/%2e%2e/%2e%2e/etc/passwd', '/..%2f..%2fetc%2fpasswd', '/herald.js/../../../../etc/passwd',
    '/demo.js%2f..%2f..%2fsecrets.json', '/..\\..\\etc\\passwd', '/%5c..%5c..%5cetc%5cpasswd', '/%252e%252e%252fetc%252fpasswd',
    '/herald.js%00.map', '/herald.min.js.map%00', '/%00', '/demo/..%2f..%2fsecrets.json', '/./herald.js', '//etc/passwd',
    '/secrets.json', '/data/secrets.json', '/herald.sqlite', '/package.json', '/.git/config', '/dist/server/herald.js',
    '/api/v1/../../secrets.json', '/herald.esm.js/..%2f..%2fpackage.json', '/%C0%AE%C0%AE/%C0%AE%C0%AE/etc/passwd',
  ];
  for (const path of traversals) {
    test(`no file behind ${JSON.stringify(path)}`, async () => {
      const r = await raw(server.url, get(path));
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.text.slice(0, 200)}`);
      assert.match(r.text, /"code":"HERALD_ERR_(NOT_FOUND|BAD_REQUEST)"/);
      assertNothingLeaked(r.text, path);
    });
  }

  test('the library and the demo are served with nosniff; the demo page may not be framed and runs only its own scripts', async () => {
    const lib = await fetch(`${server.url}/herald.js`);
    assert.equal(lib.status, 200);
    assert.equal(lib.headers.get('x-content-type-options'), 'nosniff');
    const demo = await fetch(`${server.url}/demo`);
    assert.equal(demo.status, 200);
    assert.equal(demo.headers.get('x-content-type-options'), 'nosniff');
    const csp = demo.headers.get('content-security-policy') ?? '';
    assert.match(csp, /frame-ancestors 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  });

  test('TRACE, TRACK and CONNECT echo nothing back', async () => {
    for (const method of ['TRACE', 'TRACK']) {
      const r = await raw(server.url, `${method} /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: sid=echo-me-if-you-can\r\nAuthorization: Bearer ${server.apiToken}\r\nConnection: close\r\n\r\n`);
      assert.ok(r.status === 404 || r.status === 400, `${method}: ${r.text.slice(0, 200)}`);
      assert.ok(!r.text.includes('echo-me-if-you-can'), `${method} echoed the request`);
      assertNothingLeaked(r.text, method);
    }
    const c = await raw(server.url, 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n');
    // Node closes a CONNECT nobody listens for without a word; either way no tunnel opens.
    assert.ok(c.status === 0 || c.status >= 400, c.text.slice(0, 200));
    assert.doesNotMatch(c.text, /^HTTP\/1\.1 200/);
  });

  test('the API answers no cross-origin request: no CORS headers, preflight or not', async () => {
    const origin = 'https://evil.example';
    const preflight = await fetch(`${server.url}/api/v1/send`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);
    assert.equal(preflight.headers.get('access-control-allow-credentials'), null);
    for (const path of ['/api/v1/ping', '/api/v1/status', '/api/v1/openapi.json', '/healthz', '/ws/admin']) {
      const r = await fetch(`${server.url}${path}`, { headers: { origin, authorization: `Bearer ${server.apiToken}` } });
      assert.equal(r.headers.get('access-control-allow-origin'), null, `${path} lets ${origin} read it`);
    }
    // The library's files are public code: any origin may load them, but never with credentials.
    const lib = await fetch(`${server.url}/herald.esm.js`, { headers: { origin } });
    assert.equal(lib.headers.get('access-control-allow-origin'), '*');
    assert.equal(lib.headers.get('access-control-allow-credentials'), null);
  });

  test('an answer that carries a token is never stored by a cache', async () => {
    const api = await fetch(`${server.url}/api/v1/tokens`, {
      method: 'POST', headers: { authorization: `Bearer ${server.apiToken}`, 'content-type': 'application/json' }, body: '{"kind":"admin","id":7}',
    });
    assert.equal(api.status, 200);
    assert.match((await api.json() as { token: string }).token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(api.headers.get('cache-control'), 'no-store');
    const demo = await fetch(`${server.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"admin","id":7}' });
    assert.equal(demo.status, 200);
    assert.equal(demo.headers.get('cache-control'), 'no-store');
    const probe = await fetch(`${server.url}/ws/admin?token=x`, { method: 'POST' });
    assert.equal(probe.headers.get('cache-control'), 'no-store');
  });

  test('an error answer names no file and carries no stack trace', async () => {
    const answers = await Promise.all([
      raw(server.url, `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.apiToken}\r\nContent-Type: application/json\r\nContent-Length: 9\r\nConnection: close\r\n\r\n{"to":{"a`),
      raw(server.url, get('/api/v1/messages/%E0%A4%A', `Authorization: Bearer ${server.apiToken}\r\n`)),
      raw(server.url, `POST /api/v1/commands HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.apiToken}\r\nContent-Type: application/json\r\nContent-Length: 44\r\nConnection: close\r\n\r\n{"aid":1,"program":"../../../../bin/sh","x":1}`),
      raw(server.url, 'GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n'),
    ]);
    for (const r of answers) {
      assert.ok(r.status >= 400 && r.status < 500, r.text.slice(0, 300));
      assert.doesNotMatch(r.text, /\/(tmp|work|home|usr)\/[\w.-]+\/|\.ts:\d+|\.js:\d+/, r.text.slice(0, 400));
      assertNothingLeaked(r.text, r.text.split('\r\n')[0]!);
    }
  });
});
