/**
 * When the SDK's transport sends a failed request again, against peers that
 * are not Herald: a gateway in front of it (a 504 of its own), a peer that
 * cuts every request while its body is being written, and a repeat that
 * could reach the server after the request's key is gone.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { AddressInfo, Server } from 'node:net';
import { DEFAULT_MAX_ANSWER_BYTES, HttpTransport } from '../src/sdk/http-transport.js';
import { HeraldSdkError } from '../src/sdk/index.js';
import { until } from './helpers/ws-client.js';

function urlOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function transportTo(url: string, options: { timeoutMs?: number; retryForMs?: number } = {}): HttpTransport {
  return new HttpTransport({
    url,
    apiToken: 'a-token-for-the-stub-123',
    timeoutMs: options.timeoutMs ?? 5000,
    userAgent: 'herald-test',
    retryForMs: options.retryForMs ?? 10_000,
    maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES,
  });
}

/** A gateway stub: answers each request with the next of `answers` (status, plain-text body), the last one from then on. */
async function gatewayStub(answers: Array<{ status: number; body: string; type: string }>): Promise<{ server: Server; requests: () => number }> {
  let n = 0;
  const handler: RequestListener = (req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answers[Math.min(n, answers.length - 1)]!;
      n++;
      res.writeHead(a.status, { 'content-type': a.type });
      res.end(a.body);
    });
  };
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, requests: () => n };
}

async function closeServer(server: Server): Promise<void> {
  (server as { closeAllConnections?: () => void }).closeAllConnections?.();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const GATEWAY_TIMEOUT = { status: 504, body: '<html><body>504 Gateway Time-out</body></html>', type: 'text/html' };
const BAD_GATEWAY = { status: 502, body: '<html><body>502 Bad Gateway</body></html>', type: 'text/html' };
const OK = { status: 200, body: '{"ok":true}', type: 'application/json' };

describe('HttpTransport: repeats of a failed request, against peers that are not Herald', () => {
  test('a gateway\'s 504 (its own page, not Herald\'s JSON error) to a repeatable request is sent again: the second attempt\'s 200 is the answer', async () => {
    const { server, requests } = await gatewayStub([GATEWAY_TIMEOUT, OK]);
    try {
      const answer = await transportTo(urlOf(server)).request('GET', '/health');
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body, { ok: true });
      assert.equal(answer.attempts, 2);
      assert.equal(requests(), 2);
    } finally {
      await closeServer(server);
    }
  });

  test('a repeat that could reach the server only past repeatableForMs (its backoff plus timeoutMs) is not made: the gateway\'s 502 is the error, after one attempt', async () => {
    const { server, requests } = await gatewayStub([BAD_GATEWAY, OK]);
    try {
      // The first backoff is under 100 ms: elapsed + backoff is well under repeatableForMs
      // (3000), but adding timeoutMs (5000) passes it, so the repeat might arrive after the
      // key is gone and run the send twice.
      const e = await transportTo(urlOf(server), { timeoutMs: 5000 }).request('POST', '/send', { to: { aid: 1 }, message: 'x', idempotencyKey: 'k1' }, { repeatable: true, repeatableForMs: 3000 })
        .then(() => assert.fail('the 502 was sent again and its repeat answered'), (err: unknown) => err);
      assert.ok(e instanceof HeraldSdkError, String(e));
      assert.equal(e.code, 'HERALD_ERR_BAD_RESPONSE');
      assert.equal(e.status, 502);
      assert.equal(requests(), 1);
    } finally {
      await closeServer(server);
    }
  });

  test('a request cut twice while its body was being written gives up with HERALD_ERR_REQUEST_CUT after exactly 2 attempts, well inside retryForMs', async () => {
    // A peer that drops the connection as soon as the request's first bytes come, with the
    // rest unread (so the drop is a reset): the 8 MiB body is still being written, and the
    // write meets the reset. It runs in a process of its own, as Herald would: in this
    // process, the client's read would meet the reset first (a lost connection, not a cut).
    const source = `const net = require('node:net');
      const server = net.createServer((socket) => {
        console.log('connection');
        socket.on('error', () => {});
        socket.once('data', () => socket.destroy());
      });
      server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));`;
    const stub = spawn(process.execPath, ['-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const listening = new Promise<number>((resolve) => {
      createInterface({ input: stub.stdout! }).on('line', (line) => {
        lines.push(line);
        if (line.startsWith('port ')) resolve(Number(line.slice(5)));
      });
    });
    const connections = () => lines.filter((l) => l === 'connection').length;
    try {
      const transport = transportTo(`http://127.0.0.1:${await listening}`, { retryForMs: 5000 });
      const big = 'x'.repeat(8 * 1024 * 1024);
      let cuts = 0;
      // A send meets the reset in its write, or in its read first, which is a lost connection
      // instead (not repeated: a POST without a key), and the next is tried. Which one comes
      // first is a race: six copies of this test at once took 1 to 4 sends each, and the
      // suite's load once took more than 5. Even with 6 sends in 10 lost, twenty all lost
      // is about 4 in 100,000.
      for (let i = 0; i < 20 && cuts === 0; i++) {
        const before = connections();
        const e = await transport.request('POST', '/send', { to: { aid: 1 }, message: { TEXT: big } })
          .then(() => assert.fail('the stub answered'), (err: unknown) => err);
        assert.ok(e instanceof HeraldSdkError, String(e));
        if (e.code === 'HERALD_ERR_CONNECTION_LOST') continue;
        assert.equal(e.code, 'HERALD_ERR_REQUEST_CUT', e.message);
        assert.match(e.message, /\(2 attempts in \d+ ms\)$/);
        // The stub's word of each connection may come after the client met the reset.
        await until(() => connections() - before >= 2, 5000, 'the stub to report both connections');
        assert.equal(connections() - before, 2, 'connections made for the request');
        cuts++;
      }
      assert.equal(cuts, 1, 'no send met the reset in its write');
    } finally {
      stub.kill();
    }
  });
});
