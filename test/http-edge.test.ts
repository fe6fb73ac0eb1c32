/**
 * HTTP/1.1 at its edges, byte for byte over raw TCP (a client library would
 * hide what is checked here: pipelining, interim answers, duplicate headers):
 * - an upgrade offer pipelined behind a request still being answered waits
 *   for that answer (h2c: every request answered, in order; WebSocket: the
 *   101 after the 200), where the connection went silent or the 101 jumped
 *   the queue;
 * - a body in another charset than UTF-8, or in a content or transfer
 *   coding Herald does not decode, is refused, not silently damaged;
 * - a bodyless request answered at once keeps its keep-alive connection;
 * - `Expect: 100-continue` gets its 100 only once the request's headers
 *   passed every check (token, path, size, type);
 * - two Host headers, or one that is no host, are refused (RFC 9112 §3.2);
 * - readable refusals of a `kind`, the old daemon's ports' request timeout,
 *   the 426's Connection header, the gzip body's own ETag, and a bad URL's
 *   refusal that does not echo its query (a token).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Wire, wireAnswers as answers, type WireAnswer as Answer } from './helpers/http-wire.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** Sends `bytes` on a new connection; resolves with the answers once the server closes it. */
async function exchange(port: number, bytes: string | Buffer): Promise<Answer[]> {
  const wire = await Wire.open(port);
  wire.write(bytes);
  return wire.closedByServer('the server to answer and close the connection');
}

const portOf = (url: string): number => Number(new URL(url).port);

describe('HTTP at its edges', () => {
  let s: TestServer;
  let port: number;
  let adminPort: number;
  let auth: string;
  before(async () => {
    // 0 turns the old daemon's port off, so it is a free port picked beforehand.
    adminPort = await restartablePort();
    s = await startHerald({ adminPort });
    port = portOf(s.url);
    auth = `Authorization: Bearer ${s.apiToken}\r\n`;
  });
  after(() => s.close());

  describe('an upgrade offer pipelined behind a request being answered', () => {
    test('h2c: the offer is answered as an ordinary request, after the one before it, and so is the request after it', async () => {
      const send = JSON.stringify({ to: { aid: 9 }, message: 'hi', ttl: 0 });
      const wire = await Wire.open(port);
      // One write: node parses the upgrade request while the first is still in its route.
      wire.write(
        `GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n${auth}\r\n` +
          `POST /api/v1/send HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n${auth}Content-Type: application/json\r\nContent-Length: ${send.length}\r\n\r\n${send}` +
          `GET /api/v1/status HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`,
      );
      const got = await wire.closedByServer('the three answers and the close the last one asked for');
      assert.deepEqual(got.map((a) => a.status), [200, 200, 200], wire.text);
      assert.equal(JSON.parse(got[0]!.body).ok, true, 'the ping first');
      assert.equal(JSON.parse(got[1]!.body).delivered, 0, 'then the send');
      assert.equal(typeof JSON.parse(got[2]!.body).uptimeMs, 'number', 'then the status');
    });

    test('WebSocket: the 101 goes out after the answer to the request before it, not in front of it', async () => {
      const token = await s.token('admin', 5);
      const wire = await Wire.open(port);
      wire.write(
        `GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n${auth}\r\n` +
          `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
      );
      try {
        const got = await wire.until((a) => a.length >= 2, 'the 200 and the 101');
        assert.deepEqual(got.map((a) => a.status), [200, 101], wire.text);
        assert.equal(JSON.parse(got[0]!.body).ok, true);
      } finally {
        wire.destroy();
      }
    });
  });

  describe('bodies are UTF-8 JSON, sent as they are', () => {
    const body = (text: Buffer) => Buffer.concat([Buffer.from('{"to":{"aid":1},"message":{"TYPE":"MESSAGE","TEXT":"'), text, Buffer.from('"},"ttl":0}')]);
    const post = (contentType: string, payload: Buffer, headers: Record<string, string> = {}) => fetch(`${s.url}/api/v1/send`, {
      method: 'POST', headers: { authorization: `Bearer ${s.apiToken}`, 'content-type': contentType, ...headers }, body: new Uint8Array(payload),
    });

    test('a charset other than UTF-8 is refused, naming it, where the text was damaged (a latin1 é became U+FFFD)', async () => {
      for (const [charset, text] of [
        ['iso-8859-1', Buffer.from('caf\xe9', 'latin1')],
        ['"windows-1251"', Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2])],
        ['UTF-16LE', Buffer.from('hi', 'utf16le')],
      ] as const) {
        const r = await post(`application/json; charset=${charset}`, body(text));
        const answer = await r.json() as { error: { code: string; message: string } };
        assert.equal(r.status, 400, charset);
        assert.equal(answer.error.code, 'HERALD_ERR_BAD_REQUEST');
        assert.ok(answer.error.message.includes(charset.replace(/"/g, '').toLowerCase()), answer.error.message);
        assert.match(answer.error.message, /UTF-8/);
      }
      for (const charset of ['utf-8', 'UTF-8', '"utf-8"', 'utf8']) {
        const r = await post(`application/json;charset=${charset}`, body(Buffer.from('café')));
        assert.equal(r.status, 200, `charset=${charset}: ${await r.text()}`);
      }
    });

    test('a content coding is refused (a gzip body was "not valid JSON", a plain one labelled br was taken)', async () => {
      const plain = body(Buffer.from('x'));
      for (const [coding, payload] of [['gzip', gzipSync(plain)], ['br', plain]] as const) {
        const r = await post('application/json', payload, { 'content-encoding': coding });
        const answer = await r.json() as { error: { code: string; message: string } };
        assert.equal(r.status, 400, coding);
        assert.equal(answer.error.code, 'HERALD_ERR_BAD_REQUEST');
        assert.match(answer.error.message, new RegExp(`Content-Encoding: ${coding}`));
      }
      assert.equal((await post('application/json', plain, { 'content-encoding': 'identity' })).status, 200);
    });

    test('a transfer coding other than chunked is refused', async () => {
      const payload = body(Buffer.from('x')).toString('latin1');
      const chunked = `${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`;
      const head = `POST /api/v1/send HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\n`;
      const [refused] = await exchange(port, `${head}Transfer-Encoding: gzip, chunked\r\n\r\n${chunked}`);
      assert.equal(refused?.status, 400);
      assert.match(JSON.parse(refused!.body).error.message, /Transfer-Encoding: gzip, chunked/);
      const [taken] = await exchange(port, `${head}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked}`);
      assert.equal(taken?.status, 200);
    });
  });

  test('a request without a body answered at once (a 404, a 304) keeps its connection: the next request is answered', async () => {
    for (const first of ['GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /herald.js HTTP/1.1\r\nHost: x\r\nIf-None-Match: *\r\n\r\n']) {
      const wire = await Wire.open(port);
      wire.write(`${first}GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
      try {
        const got = await wire.until((a) => a.length >= 2, 'both answers');
        assert.notEqual(got[0]!.headers.connection, 'close', first);
        assert.equal(got[1]!.status, 200, first);
      } finally {
        wire.destroy();
      }
    }
  });

  describe('Expect: 100-continue', () => {
    const expecting = (path: string, headers: string, length = 45) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;

    test('a request refused from its headers gets the refusal alone, no 100 before it, and the connection ends', async () => {
      for (const [what, head, status] of [
        ['a wrong token', expecting('/api/v1/send', 'Authorization: Bearer wrong\r\nContent-Type: application/json\r\n'), 401],
        ['a body over maxBodyBytes', expecting('/api/v1/send', `${auth}Content-Type: application/json\r\n`, 2_000_000), 413],
        ['no such route', expecting('/api/v1/nowhere', `${auth}Content-Type: application/json\r\n`), 404],
        ['a body that is not JSON', expecting('/api/v1/send', `${auth}Content-Type: text/plain\r\n`), 400],
        ['a body in latin1', expecting('/api/v1/send', `${auth}Content-Type: application/json; charset=latin1\r\n`), 400],
      ] as const) {
        const got = await exchange(port, head);
        assert.deepEqual(got.map((a) => a.status), [status], `${what}: ${JSON.stringify(got)}`);
      }
    });

    test('a request that passes gets its 100, then its answer once the body is sent', async () => {
      const body = JSON.stringify({ to: { aid: 3 }, message: 'hi', ttl: 0 });
      const wire = await Wire.open(port);
      wire.write(expecting('/api/v1/send', `${auth}Content-Type: application/json\r\n`, body.length));
      try {
        const interim = await wire.until((a) => a.length >= 1, 'the 100');
        assert.equal(interim[0]!.status, 100);
        wire.write(body);
        const got = await wire.until((a) => a.length >= 2, 'the answer');
        assert.equal(got[1]!.status, 200, wire.text);
      } finally {
        wire.destroy();
      }
    });

    test("on the old daemon's port, whose probe never reads a body, no 100 either", async () => {
      const got = await exchange(adminPort, expecting('/', 'Content-Type: application/json\r\n'));
      assert.deepEqual(got.map((a) => a.status), [401], JSON.stringify(got));
    });
  });

  describe('Host (RFC 9112 §3.2)', () => {
    test('two Host headers, or a Host that is no host[:port], are refused with 400', async () => {
      for (const [what, request] of [
        ['two Host headers', 'GET /healthz HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n'],
        ['the demo, behind a loopback Host and then another (DNS rebinding)', 'GET /demo HTTP/1.1\r\nHost: 127.0.0.1\r\nhost: evil.example\r\nConnection: close\r\n\r\n'],
        ['a Host that is no host', 'GET /healthz HTTP/1.1\r\nHost: a b/c@d\r\nConnection: close\r\n\r\n'],
        ['a Host with a port that is no number', 'GET /healthz HTTP/1.1\r\nHost: a.example:80x\r\nConnection: close\r\n\r\n'],
      ] as const) {
        const got = await exchange(port, request);
        assert.equal(got[0]?.status, 400, what);
        assert.equal(JSON.parse(got[0]!.body).error.code, 'HERALD_ERR_BAD_REQUEST', what);
      }
    });

    test('a host name, an IPv4 or IPv6 address, with or without a port, or an empty Host, are taken', async () => {
      for (const host of ['panel.example.net', '127.0.0.1:8080', '[::1]:80', '[::1]', 'xn--d1abbgf6aiiy.xn--p1ai', '']) {
        const got = await exchange(port, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.equal(got[0]?.status, 200, `Host: ${host}`);
      }
    });
  });

  test('a kind that is neither admin nor user is refused in words', async () => {
    const online = await s.api('GET', '/api/v1/online/ADMIN/1');
    assert.equal(online.status, 400);
    assert.equal(online.body.error.message, 'params/kind must be "admin" or "user"');
    const query = await s.api('GET', '/api/v1/online?kind=x');
    assert.equal(query.body.error.message, 'querystring/kind must be "admin" or "user"');
    const send = await s.api('POST', '/api/v1/send', { to: { all: 'everyone' }, message: 'hi' });
    assert.equal(send.body.error.message, 'body/to/all must be "admins" or "users"');
  });

  test("the old daemon's port answers a request that does not arrive whole within requestTimeoutMs with 408", async () => {
    const compatPort = await restartablePort();
    const slow = await startHerald({ adminPort: compatPort, requestTimeoutMs: 500 });
    try {
      const wire = await Wire.open(compatPort);
      // Headers that never end: node's own limits were 60 s for the headers, checked every 30 s.
      wire.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n');
      const got = await wire.closedByServer('the 408');
      assert.equal(got[0]?.status, 408, wire.text);
      assert.equal(JSON.parse(got[0]!.body).error.code, 'HERALD_ERR_REQUEST_TIMEOUT');
    } finally {
      await slow.close();
    }
  });

  test('a 426 says Connection: upgrade with its Upgrade (RFC 9110 §7.8), on the main port and the old daemon\'s', async () => {
    const token = await s.token('admin', 1);
    for (const [where, request] of [
      ['the probe', `POST /ws/admin?token=${token} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`],
      ['the probe, on the old port', `GET /?token=${token} HTTP/1.1\r\nHost: x\r\n\r\n`],
      ['another method, on the old port', 'PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'],
      ['the probe, HTTP/1.0', `POST /ws/admin?token=${token} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n`],
    ] as const) {
      const wire = await Wire.open(where.includes('old port') ? adminPort : port);
      wire.write(request);
      try {
        const [got] = await wire.until((a) => a.length >= 1, where);
        assert.equal(got!.status, 426, where);
        assert.equal(got!.headers.upgrade, 'websocket', where);
        assert.match(got!.headers.connection ?? '', /^upgrade\b/i, where);
        if (where.includes('HTTP/1.0')) assert.match(got!.headers.connection ?? '', /\bclose$/, 'an HTTP/1.0 request without keep-alive still ends its connection');
      } finally {
        wire.destroy();
      }
    }
  });

  test('the gzip body of the library has its own ETag, and each revalidates to 304', async () => {
    const get = async (headers: string): Promise<Answer> => (await exchange(port, `GET /herald.js HTTP/1.1\r\nHost: x\r\n${headers}Connection: close\r\n\r\n`))[0]!;
    const identity = await get('');
    const gzip = await get('Accept-Encoding: gzip\r\n');
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.ok(identity.headers.etag && gzip.headers.etag);
    assert.notEqual(identity.headers.etag, gzip.headers.etag, 'two bodies, two strong ETags (RFC 9110 §8.8.3)');
    assert.equal((await get(`If-None-Match: ${identity.headers.etag}\r\n`)).status, 304);
    const revalidated = await get(`Accept-Encoding: gzip\r\nIf-None-Match: ${gzip.headers.etag}\r\n`);
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.headers.etag, gzip.headers.etag);
    assert.equal((await get(`If-None-Match: ${gzip.headers.etag}\r\n`)).status, 200, 'the gzip ETag is not the plain body\'s');
  });

  test('a URL that is not valid percent-encoding is refused without echoing its query (a token)', async () => {
    const [got] = await exchange(port, 'GET /api/v1/messages/%E0?token=SECRET HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(got?.status, 400);
    const { error } = JSON.parse(got!.body) as { error: { code: string; message: string } };
    assert.equal(error.code, 'HERALD_ERR_BAD_REQUEST');
    assert.doesNotMatch(error.message, /SECRET|token/);
    assert.match(error.message, /\/api\/v1\/messages\/%E0/);
  });
});
