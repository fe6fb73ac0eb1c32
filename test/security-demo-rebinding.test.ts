/**
 * The demo's endpoints mint a token for any admin and send to anyone, and
 * by default they are on only on a loopback listener: "only this machine".
 * DNS rebinding breaks that promise: a web site whose name the attacker
 * re-points at 127.0.0.1 is, to the browser, the same origin as its own
 * page, so the page can call /demo/token and /demo/send and read the
 * answers. What gives it away is the Host header (the attacker's name, not
 * a loopback one), so on a loopback listener the demo answers only to a
 * loopback Host.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startHerald, type TestServer } from './helpers/server.js';

/** A request with the Host header of our choosing (fetch will not send one). */
function withHost(url: string, host: string, method = 'GET', body?: string): Promise<{ status: number; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, method, setHost: false,
      headers: { host, ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }) } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the demo on a loopback listener refuses a rebound host name', () => {
  let server: TestServer;
  let port: string;
  before(async () => {
    server = await startHerald({ demo: 'auto' });
    port = new URL(server.url).port;
  });
  after(() => server?.close());

  const tokenBody = JSON.stringify({ kind: 'admin', id: 1 });
  const sendBody = JSON.stringify({ kind: 'admin', id: 1, title: 'rebound', text: 'x' });

  // PORT: the listener's, known once it listens.
  for (const template of ['evil.example:PORT', 'evil.example', '127.0.0.1.nip.example:PORT', 'localhost.evil.example:PORT']) {
    test(`Host: ${template} gets no page, no token, no send`, async () => {
      const host = template.replace('PORT', port);
      const page = await withHost(`${server.url}/demo`, host);
      assert.equal(page.status, 403, page.text.slice(0, 200));
      assert.match(page.text, /HERALD_ERR_FORBIDDEN/);
      const token = await withHost(`${server.url}/demo/token`, host, 'POST', tokenBody);
      assert.equal(token.status, 403, token.text);
      assert.doesNotMatch(token.text, /"token"/);
      const send = await withHost(`${server.url}/demo/send`, host, 'POST', sendBody);
      assert.equal(send.status, 403, send.text);
    });
  }

  for (const template of ['127.0.0.1:PORT', 'localhost:PORT', 'LOCALHOST:PORT', '[::1]:PORT', '127.0.0.2:PORT', '127.0.0.1']) {
    test(`Host: ${template} is served as before`, async () => {
      const host = template.replace('PORT', port);
      assert.equal((await withHost(`${server.url}/demo`, host)).status, 200);
      const token = await withHost(`${server.url}/demo/token`, host, 'POST', tokenBody);
      assert.equal(token.status, 200, token.text);
      assert.match(token.text, /"token"/);
    });
  }

  test('the library and the API do not depend on the Host (a proxy may give any)', async () => {
    assert.equal((await withHost(`${server.url}/herald.js`, 'evil.example')).status, 200);
    const ping = await new Promise<number>((resolve, reject) => {
      const u = new URL(server.url);
      request({ host: u.hostname, port: u.port, path: '/api/v1/ping', setHost: false, headers: { host: 'panel.example.net', authorization: `Bearer ${server.apiToken}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject).end();
    });
    assert.equal(ping, 200);
  });
});
