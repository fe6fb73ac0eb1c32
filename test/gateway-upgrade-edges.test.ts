/**
 * Two edges of the upgrade path (gateway.ts, other-upgrade.ts):
 * - A refused handshake's socket is closed whole once the answer is written.
 *   Herald ended only its own half, so a client that kept its half open held
 *   the socket for as long as it liked: anyone, with no credential, could hold
 *   every file descriptor of the process.
 * - A request that offers another protocol (`Upgrade: h2c`, which curl's
 *   `--http2` sends over plain HTTP) is answered as the ordinary request it
 *   is. Node hands every request with an Upgrade header to the Gateway, which
 *   answered it 404 "WebSocket endpoints are …": an API call was not made.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

function connections(s: TestServer): Promise<number> {
  return new Promise((resolve, reject) => s.herald.app.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
}

/** Polls `read` until it gives `want` or `ms` passed; resolves with the last value read. */
async function settle(read: () => Promise<number>, want: number, ms: number): Promise<number> {
  const until = Date.now() + ms;
  let n = await read();
  while (n !== want && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    n = await read();
  }
  return n;
}

const HANDSHAKE = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

describe('a refused handshake', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  for (const [what, target, headers, status] of [
    ['no token', '/ws/admin', '', 401],
    ['a foreign Origin', '/ws/admin', 'Origin: https://evil.example\r\n', 403],
    ['a path that is no endpoint', '/ws/nobody', '', 404],
  ] as const) {
    test(`(${what}) is closed by Herald though the client keeps its half open`, async () => {
      const before = await connections(s);
      const port = Number(new URL(s.url).port);
      const clients: net.Socket[] = [];
      const answered: Array<Promise<string>> = [];
      for (let i = 0; i < 20; i++) {
        // allowHalfOpen: the client does not end its half when Herald ends its own.
        const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
        c.on('error', () => undefined);
        clients.push(c);
        answered.push(new Promise((resolve) => {
          let text = '';
          c.on('data', (d: Buffer) => { text += d.toString('latin1'); });
          c.on('end', () => resolve(text));
        }));
        c.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${HANDSHAKE}${headers}\r\n`);
      }
      try {
        for (const text of await Promise.all(answered)) assert.match(text, new RegExp(`^HTTP/1\\.1 ${status} `));
        const left = await settle(() => connections(s), before, 3000);
        assert.equal(left, before, `${left - before} of 20 refused sockets still open on Herald's side`);
      } finally {
        for (const c of clients) c.destroy();
      }
    });
  }
});

describe('a request that offers another protocol than WebSocket', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  /** Writes `requests` on one connection and resolves with what came back once `answers` answers are in. */
  function exchange(requests: string[], answers: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const c = net.connect(Number(new URL(s.url).port), '127.0.0.1');
      let text = '';
      const timer = setTimeout(() => { c.destroy(); reject(new Error(`no ${answers} answers in 5 s: ${JSON.stringify(text)}`)); }, 5000);
      c.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if ((text.match(/HTTP\/1\.1 \d{3} /g) ?? []).length >= answers && /\}$/.test(text)) {
          clearTimeout(timer);
          c.destroy();
          resolve(text);
        }
      });
      c.on('error', reject);
      // The body arrives apart from the head, as over a real network.
      let delay = 0;
      for (const r of requests) for (const part of r.split('\u0000')) setTimeout(() => c.write(part), (delay += 30));
    });
  }

  test('Upgrade: h2c on a GET and on a POST with a body: answered as HTTP/1.1, the connection kept for the next request', async () => {
    const tab = await s.tab('admin', 5);
    const auth = `Authorization: Bearer ${s.apiToken}\r\n`;
    const body = JSON.stringify({ to: { aid: 5 }, message: { TYPE: 'MESSAGE', TEXT: 'via h2c offer' } });
    const text = await exchange([
      `GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n${auth}\r\n`,
      `POST /api/v1/send HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: TLS/1.0\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n\u0000${body}`,
      `GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth}\r\n`,
    ], 3);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200, 200], text);
    assert.doesNotMatch(text, /HERALD_ERR_NOT_FOUND/);
    const frame = await tab.next((f) => f.TYPE === 'MESSAGE');
    assert.equal(frame.TEXT, 'via h2c offer');
  });

  test('an offer that lists websocket among others still goes to the Gateway, which refuses it in its own shape before any look-up (ws upgrades `websocket` alone)', async () => {
    const text = await exchange([`GET /ws/admin HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: h2c, WebSocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`], 1);
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"code":"HERALD_ERR_BAD_REQUEST","message":"not a WebSocket handshake/);
  });
});

// A handshake has no body (RFC 6455 §4.1). One that carried a body was upgraded, WELCOME
// was sent, and then the body's bytes were read as frames and the tab closed 1002.
describe('a handshake that carries a body', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  /** What Herald answers first to `request` on a raw socket: its status line. */
  function statusLine(request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const c = net.connect({ port: Number(new URL(s.url).port), host: '127.0.0.1' });
      let text = '';
      c.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        const end = text.indexOf('\r\n');
        if (end >= 0) { c.destroy(); resolve(text.slice(0, end)); }
      });
      c.on('error', reject);
      c.on('close', () => resolve(text));
      c.write(request);
    });
  }

  test('is refused with 400 before the upgrade, with a length or chunked', async () => {
    const token = await s.token('admin', 7);
    const head = `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n${HANDSHAKE}`;
    assert.match(await statusLine(`${head}Content-Length: 4\r\n\r\nabcd`), /^HTTP\/1\.1 400 /);
    assert.match(await statusLine(`${head}Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n`), /^HTTP\/1\.1 400 /);
  });

  test('a length of 0 is no body: upgraded', async () => {
    const token = await s.token('admin', 7);
    const head = `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\n${HANDSHAKE}`;
    assert.match(await statusLine(`${head}Content-Length: 0\r\n\r\n`), /^HTTP\/1\.1 101 /);
  });
});
