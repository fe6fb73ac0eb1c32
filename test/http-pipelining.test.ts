/**
 * What one HTTP/1.1 connection can ask of Herald, over raw TCP:
 * - a client that pipelines requests and never reads the answers: node parses
 *   a whole read (64 KB, 1,300 `GET /api/v1/openapi.json`) and kept every
 *   answer, 191 MiB for one connection. At most 32 requests may wait for
 *   their answers now (api/pipelining.ts); the next is refused with 429 in
 *   its turn and the connection closes, nothing after it run; the OpenAPI
 *   document is serialised once;
 * - a request node's parser refuses, pipelined behind one being answered, is
 *   refused after that answer, not in its place (a send was delivered and its
 *   client read the 400 as the send's answer);
 * - CONNECT, dropped unanswered, is a 404 in Herald's error shape;
 * - the old daemon's ports' answers carry an X-Request-Id, as the main port's;
 * - headers get requestTimeoutMs, not node's own 60 s.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gatedStore } from './helpers/gated-store.js';
import { Wire } from './helpers/http-wire.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The heap and the memory outside it (Buffers), after two collections. */
function held(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** The bound of api/pipelining.ts (MAX_PIPELINED), as documented (docs/http-api.md). */
const BOUND = 32;

const portOf = (url: string): number => Number(new URL(url).port);

/** Every HTTP server Herald listens with (the main port's, the old daemon's ports'), by port. */
function httpServers(): Map<number, HttpServer> {
  const found = new Map<number, HttpServer>();
  for (const handle of (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles()) {
    const server = handle as HttpServer;
    if (typeof server.headersTimeout !== 'number') continue;
    const address = server.address();
    if (address !== null && typeof address === 'object') found.set(address.port, server);
  }
  return found;
}

describe('one HTTP connection, pipelined', () => {
  let s: TestServer;
  let port: number;
  let adminPort: number;
  let auth: string;
  before(async () => {
    adminPort = await restartablePort();
    s = await startHerald({ adminPort });
    port = portOf(s.url);
    auth = `Authorization: Bearer ${s.apiToken}\r\n`;
  });
  after(() => s.close());

  test('a client that pipelines 1,300 requests in one read and never reads the answers holds 32 answers at most, not 191 MiB', async () => {
    // The document is built on the first request: not part of what the burst holds.
    assert.equal((await fetch(`${s.url}/api/v1/openapi.json`)).status, 200);
    const server = s.herald.app.server;
    // The answers node made for the first requests parsed, the refused one among them.
    const first: ServerResponse[] = [];
    const watch = (_req: IncomingMessage, res: ServerResponse): void => {
      if (first.length <= BOUND) first.push(res);
    };
    server.on('request', watch);
    const wire = await Wire.open(port, { paused: true });
    try {
      const before = held();
      // 61,100 bytes: one read of node's (64 KB), every request in it parsed at once. No token needed.
      wire.write('GET /api/v1/openapi.json HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(1300));
      await until(() => first.length === BOUND + 1 && first.every((res) => res.writableEnded), 10_000, 'the first 33 requests to be answered');
      const grown = held() - before;
      // 78 KB a document, serialised anew for each, 150 KB as a string: 191 MiB held for this connection.
      // Now one document shared by 32 answers, and the rest of the read parsed but not run.
      assert.ok(grown < 8 * 2 ** 20, `the server holds ${(grown / 2 ** 20).toFixed(1)} MiB for a client that sent 61 KB`);
      assert.equal(first[BOUND]!.statusCode, 429, 'the 33rd is refused');
    } finally {
      server.off('request', watch);
      wire.destroy();
    }
  });

  test('past 32 requests waiting for their answers, the next gets 429 in its turn and the connection closes: none after it is run', async () => {
    // Sends that wait for the store: their answers are not written until the test opens it.
    const gate = gatedStore();
    const g = await startHerald({}, { store: gate.store });
    const server = g.herald.app.server;
    let parsed = 0;
    const count = (): void => {
      parsed++;
    };
    server.on('request', count);
    const wire = await Wire.open(portOf(g.url));
    try {
      const tab = await g.tab('admin', 31);
      await tab.nextOfType('WELCOME');
      let sends = '';
      for (let i = 0; i < 40; i++) {
        const body = JSON.stringify({ to: { aid: 31 }, message: { TYPE: 'MESSAGE', TEXT: `n${i}` } });
        sends += `POST /api/v1/send HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${g.apiToken}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      }
      wire.write(sends);
      await until(() => parsed === 40, 5000, 'the 40 requests to be parsed');
      assert.equal(gate.writes(), BOUND, 'the first 32 sends are run, and wait for the store');
      gate.open();
      const got = await wire.closedByServer('32 answers, the refusal and the close');
      assert.deepEqual(got.map((a) => a.status), [...Array<number>(BOUND).fill(200), 429], wire.text.slice(0, 300));
      for (const a of got.slice(0, BOUND)) assert.equal(JSON.parse(a.body).delivered, 1);
      const refused = got[BOUND]!;
      assert.equal(JSON.parse(refused.body).error.code, 'HERALD_ERR_RATE_LIMITED');
      assert.match(refused.headers.connection ?? '', /close/);
      assert.match(refused.headers['x-request-id'] ?? '', /^req-[0-9a-z]+$/);
      // A send after the connection's end arrives after every one that was run.
      assert.equal((await g.api('POST', '/api/v1/send', { to: { aid: 31 }, message: { TYPE: 'MESSAGE', TEXT: 'after' } })).status, 200);
      const texts: unknown[] = [];
      for (;;) {
        const m = await tab.nextOfType('MESSAGE');
        texts.push(m.TEXT);
        if (m.TEXT === 'after') break;
      }
      assert.deepEqual(texts, [...Array.from({ length: BOUND }, (_, i) => `n${i}`), 'after']);
      assert.equal(gate.writes(), BOUND + 1);
    } finally {
      server.off('request', count);
      wire.destroy();
      await g.close();
    }
  });

  test('a client that reads each answer before its next request sends as many as it likes on one connection', async () => {
    const wire = await Wire.open(port);
    try {
      for (let i = 1; i <= 3 * BOUND; i++) {
        wire.write(`GET /api/v1/ping HTTP/1.1\r\nHost: a\r\n${auth}\r\n`);
        const got = await wire.answers(i, `answer ${i}`);
        assert.equal(got[i - 1]!.status, 200, `answer ${i}`);
      }
      assert.equal(wire.closed, false);
    } finally {
      wire.destroy();
    }
  });

  test("the old daemon's port bounds its pipeline too, and names each answer's request", async () => {
    const wire = await Wire.open(adminPort);
    wire.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(40));
    const got = await wire.closedByServer('32 probes answered, the refusal and the close');
    assert.deepEqual(got.map((a) => a.status), [...Array<number>(BOUND).fill(401), 429]);
    assert.equal(JSON.parse(got[BOUND]!.body).error.code, 'HERALD_ERR_RATE_LIMITED');
    assert.match(got[BOUND]!.headers.connection ?? '', /close/);
    const ids = got.map((a) => a.headers['x-request-id']);
    for (const id of ids) assert.match(id ?? '', /^req-[0-9a-z]+$/);
    assert.equal(new Set(ids).size, ids.length, 'one id a request');
  });

  describe('a request node refuses, pipelined behind a send', () => {
    const send = (aid = 32): string => {
      const body = JSON.stringify({ to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'pipelined' }, ttl: 0 });
      return `POST /api/v1/send HTTP/1.1\r\nHost: a\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    };
    for (const [what, second, status, code] of [
      ['a request line that is not HTTP', 'THIS IS NOT HTTP\r\n\r\n', 400, 'HERALD_ERR_BAD_REQUEST'],
      ['headers over 16 KiB', `GET /api/v1/ping HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(17_000)}\r\n\r\n`, 431, 'HERALD_ERR_HEADERS_TOO_LARGE'],
    ] as const) {
      test(`${what}: the send's answer first, then the refusal, then the connection ends`, async () => {
        const tab = await s.tab('admin', 32);
        await tab.nextOfType('WELCOME');
        const wire = await Wire.open(port);
        wire.write(send() + second);
        const got = await wire.closedByServer('both answers and the close');
        assert.deepEqual(got.map((a) => a.status), [200, status], wire.text.slice(0, 400));
        assert.equal(JSON.parse(got[0]!.body).delivered, 1, 'the send, delivered, is answered as such');
        assert.equal(JSON.parse(got[1]!.body).error.code, code);
        assert.equal((await tab.nextOfType('MESSAGE')).TEXT, 'pipelined');
        tab.close();
      });
    }

    // The refusal of a request whose own answer is in progress (its route waits for the rest of
    // its body) is not held back behind that answer, which would never come.
    test('a body the client ends before its Content-Length: the send answered first, then the 400 of the request cut short', async () => {
      const wire = await Wire.open(port);
      wire.end(`${send(3200)}POST /api/v1/send HTTP/1.1\r\nHost: a\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"to":{"aid":32}`);
      const got = await wire.closedByServer('both answers and the close');
      assert.deepEqual(got.map((a) => a.status), [200, 400], wire.text.slice(0, 400));
      assert.equal(JSON.parse(got[0]!.body).delivered, 0);
      assert.match(JSON.parse(got[1]!.body).error.message, /HPE_INVALID_EOF_STATE/);
    });
  });

  describe('CONNECT', () => {
    const connectRequest = 'CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n';
    test('is a 404 in Herald\'s error shape, with a request id, and the connection ends: on the main port and the old daemon\'s', async () => {
      for (const at of [port, adminPort]) {
        const wire = await Wire.open(at);
        wire.write(connectRequest);
        const got = await wire.closedByServer('the 404 and the close');
        assert.deepEqual(got.map((a) => a.status), [404], wire.text);
        assert.deepEqual(JSON.parse(got[0]!.body), { error: { code: 'HERALD_ERR_NOT_FOUND', message: 'no route CONNECT 127.0.0.1:80' } });
        assert.match(got[0]!.headers['x-request-id'] ?? '', /^req-[0-9a-z]+$/);
        assert.match(got[0]!.headers.connection ?? '', /close/);
      }
    });

    test('pipelined behind a request, after its answer', async () => {
      const wire = await Wire.open(port);
      wire.write(`GET /api/v1/ping HTTP/1.1\r\nHost: a\r\n${auth}\r\n${connectRequest}`);
      const got = await wire.closedByServer('both answers and the close');
      assert.deepEqual(got.map((a) => a.status), [200, 404], wire.text);
      assert.equal(JSON.parse(got[0]!.body).ok, true);
    });
  });

  test("the old daemon's port names each answer's request in X-Request-Id, as the main port does", async () => {
    const token = await s.token('admin', 33);
    const asked = [
      await fetch(`http://127.0.0.1:${adminPort}/`),
      await fetch(`http://127.0.0.1:${adminPort}/ws?token=${token}`, { method: 'POST' }),
      await fetch(`http://127.0.0.1:${adminPort}/`, { method: 'DELETE' }),
      await fetch(`${s.url}/healthz`),
    ];
    assert.deepEqual(asked.map((r) => r.status), [401, 426, 426, 200]);
    const ids = asked.map((r) => r.headers.get('x-request-id'));
    for (const id of ids) assert.match(id ?? '', /^req-[0-9a-z]+$/);
    assert.equal(new Set(ids).size, ids.length, 'one count of ids for every port');
    await Promise.all(asked.map((r) => r.arrayBuffer()));
  });
});

describe('requestTimeoutMs', () => {
  test('headers get all of it, past node\'s own 60 s too, on every port; 0 turns both limits off', async () => {
    for (const requestTimeoutMs of [120_000, 30_000, 0]) {
      const adminPort = await restartablePort();
      const s = await startHerald({ requestTimeoutMs, adminPort });
      try {
        const servers = httpServers();
        for (const at of [portOf(s.url), adminPort]) {
          const server = servers.get(at);
          assert.ok(server, `an HTTP server on ${at}`);
          assert.deepEqual({ requestTimeout: server.requestTimeout, headersTimeout: server.headersTimeout }, { requestTimeout: requestTimeoutMs, headersTimeout: requestTimeoutMs }, `port ${at}`);
        }
      } finally {
        await s.close();
      }
    }
  });
});
