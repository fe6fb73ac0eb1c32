/**
 * What the SDK takes from whatever answers at its url: an answer's size is
 * bounded (read as it arrives, refused at once and never asked for again), a
 * 2xx must hold the fields callers read, an error body cannot claim the SDK's
 * own codes (and so its retries), and arguments that would bend the URL or
 * throw a TypeError are refused before the network. Against tiny node:http
 * servers on 127.0.0.1 that misbehave on purpose.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrowserSender, HeraldSdkError, type SendResult } from '../src/sdk/index.js';

interface FakeServer {
  url: string;
  /** Requests it has had. */
  asked: () => number;
  /** Resolves when the client has closed a connection the server was still answering on. */
  clientClosed: Promise<void>;
  close: () => Promise<void>;
}

/** A node:http server on 127.0.0.1, port 0, answering every request with `answer`. */
async function fakeServer(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeServer> {
  let asked = 0;
  let closedByClient: () => void = () => {};
  const clientClosed = new Promise<void>((resolve) => { closedByClient = resolve; });
  const server = createServer((req, res) => {
    asked++;
    req.resume();
    res.on('close', () => { if (!res.writableFinished) closedByClient(); });
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    asked: () => asked,
    clientClosed,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes 64 KiB chunks for as long as the client reads them. */
function endless(res: ServerResponse, status = 200): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.write('{"ids":[');
  const chunk = '1,'.repeat(32 * 1024);
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk));
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

const badResponse = (status: number, pattern?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof HeraldSdkError, String(e));
  assert.equal(e.code, 'HERALD_ERR_BAD_RESPONSE', e.message);
  assert.equal(e.status, status, e.message);
  if (pattern) assert.match(e.message, pattern);
  return true;
};

describe('the size of an answer', () => {
  test('an endless body is refused once it passes 64 MiB, at once and asked for once, the connection closed', async () => {
    const server = await fakeServer((_req, res) => endless(res));
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', timeoutMs: 60_000, retryForMs: 20_000 });
      const started = performance.now();
      // A GET: a read the SDK may send again (an oversized body made a RangeError, "connection lost", and a second download).
      await assert.rejects(sender.connectedAdmins(), badResponse(200, /more than the 67108864 bytes an answer may hold/));
      assert.ok(performance.now() - started < 30_000, 'not at the deadline');
      await server.clientClosed;
      assert.equal(server.asked(), 1);
    } finally {
      await server.close();
    }
  });

  test('maxAnswerBytes sets the bound; a gateway\'s 503 too large is not sent again either', async () => {
    const server = await fakeServer((_req, res) => endless(res, 503));
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', timeoutMs: 5000, retryForMs: 20_000, maxAnswerBytes: 1024 * 1024 });
      await assert.rejects(sender.listCommands(), badResponse(503, /more than the 1048576 bytes/));
      assert.equal(server.asked(), 1, 'a 503 without Herald\'s body is sent again, but not one that was too large');
    } finally {
      await server.close();
    }
  });

  test('a Content-Length above the bound is refused before the body is read', async () => {
    const server = await fakeServer((_req, res) => {
      // Says 10 GiB, sends a little, then stalls: only the header can make this fail before the deadline.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(10 * 1024 ** 3) });
      res.write('{"ids":[');
    });
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', timeoutMs: 4000, retryForMs: 20_000 });
      await assert.rejects(sender.connectedAdmins(), badResponse(200, /a body of 10737418240 bytes \(Content-Length\)/));
      await server.clientClosed;
      assert.equal(server.asked(), 1);
    } finally {
      await server.close();
    }
  });

  test('an answer of exactly maxAnswerBytes is read; maxAnswerBytes out of range is a TypeError naming it', async () => {
    const body = JSON.stringify({ kind: 'admin', ids: [1, 2, 3] });
    const server = await fakeServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(body));
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', maxAnswerBytes: Buffer.byteLength(body) });
      assert.deepEqual(await sender.connectedAdmins(), [1, 2, 3]);
      for (const maxAnswerBytes of [0, 1.5, 2 ** 29, Number.NaN]) {
        assert.throws(() => new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', maxAnswerBytes }), (e: Error) => e instanceof TypeError && /option "maxAnswerBytes"/.test(e.message));
      }
    } finally {
      await server.close();
    }
  });
});

describe('a 2xx holds what the caller reads', () => {
  test('ping, status, sendMessage and messageStatus refuse another service\'s JSON with HERALD_ERR_BAD_RESPONSE', async () => {
    let next = '{}';
    const server = await fakeServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(next));
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123' });
      const cases: Array<[string, string, () => Promise<unknown>]> = [
        ['ping', '{}', () => sender.ping()],
        ['ping', '{"ok":true}', () => sender.ping()],
        ['ping', '{"status":"ok","version":"1"}', () => sender.ping()],
        ['status', '{}', () => sender.status()],
        ['status', '{"version":"1.0","uptimeMs":5,"connections":{}}', () => sender.status()],
        ['sendMessage', '{}', () => sender.sendMessage({ aid: 1, message: 'hi' })],
        ['sendMessage', '{"delivered":"1","queued":false}', () => sender.sendMessage({ aid: 1, message: 'hi' })],
        ['sendMessage', '{"delivered":1,"queued":false,"results":[null]}', () => sender.sendMessage({ aid: 1, message: 'hi' })],
        ['sendMessage', '{"delivered":1,"queued":false,"results":{}}', () => sender.sendMessage({ aid: 1, message: 'hi' })],
        ['messageStatus', '{}', () => sender.messageStatus('m1')],
      ];
      for (const [name, body, call] of cases) {
        next = body;
        await assert.rejects(call(), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_RESPONSE' && e.status === 200 && /not Herald's answer/.test(e.message), `${name} given ${body}`);
      }
      next = '{"ok":"yes","version":"1"}';
      assert.equal(await sender.isConnected(), false);
      // Herald's own answers still pass.
      next = '{"ok":true,"version":"1.2.3"}';
      assert.deepEqual(await sender.ping(), { ok: true, version: '1.2.3' });
      next = '{"delivered":2,"queued":true,"results":[{"kind":"admin","id":1,"delivered":2,"queued":true,"duplicate":false,"dropped":0}]}';
      assert.equal((await sender.sendMessage({ aid: 1, message: 'hi' }) as SendResult).delivered, 2);
      next = '{"delivered":3,"queued":false,"duplicate":false,"dropped":0}';
      assert.equal((await sender.sendMessage({ all: 'admins', message: 'hi' }) as SendResult).delivered, 3);
    } finally {
      await server.close();
    }
  });
});

describe('the SDK\'s own codes are its own', () => {
  test('an error body with HERALD_ERR_UNREACHABLE or CONNECTION_LOST is HERALD_ERR_BAD_RESPONSE, and is not sent again', async () => {
    let code = 'HERALD_ERR_UNREACHABLE';
    let status = 500;
    const server = await fakeServer((_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message: 'not really' } }));
    });
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123', retryForMs: 3000 });
      // A POST that may not run twice: it was sent 7 times in 3 s.
      await assert.rejects(sender.runInBackground('ping', { aid: 1 }), badResponse(500, /answered HERALD_ERR_UNREACHABLE, a code only the SDK gives/));
      assert.equal(server.asked(), 1);
      code = 'HERALD_ERR_CONNECTION_LOST';
      status = 503;
      await assert.rejects(sender.listCommands(), badResponse(503, /HERALD_ERR_CONNECTION_LOST/));
      assert.equal(server.asked(), 2, 'a read is not sent again either');
      code = 'HERALD_ERR_VALIDATION';
      status = 400;
      await assert.rejects(sender.sendMessage({ aid: 1, message: 'x' }), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_VALIDATION' && e.status === 400 && e.message === 'not really');
    } finally {
      await server.close();
    }
  });
});

describe('arguments refused before the network', () => {
  test('null for a person or a send, and ids "", "." and ".." are HERALD_ERR_BAD_ARGUMENT, with no request made', async () => {
    const server = await fakeServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    try {
      const sender = new BrowserSender({ url: server.url, apiToken: 'whatever-token-123' });
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['sendMessage(null)', () => sender.sendMessage(null as never)],
        ['sendMessage("hi")', () => sender.sendMessage('hi' as never)],
        ['connectedTabs(null)', () => sender.connectedTabs(null as never)],
        ['disconnect(null)', () => sender.disconnect(null as never)],
        ['createConnectToken(null)', () => sender.createConnectToken(null as never)],
        ['idempotencyKey ""', () => sender.sendMessage({ aid: 1, message: { TEXT: 'x' }, idempotencyKey: '' })],
        ['idempotencyKey of 201', () => sender.sendMessage({ aid: 1, message: { TEXT: 'x' }, idempotencyKey: 'k'.repeat(201) })],
      ];
      for (const id of ['', '.', '..']) {
        calls.push([`commandStatus(${JSON.stringify(id)})`, () => sender.commandStatus(id)]);
        calls.push([`cancelCommand(${JSON.stringify(id)})`, () => sender.cancelCommand(id)]);
        calls.push([`messageStatus(${JSON.stringify(id)})`, () => sender.messageStatus(id)]);
      }
      calls.push(['commandStatus(undefined)', () => sender.commandStatus(undefined as never)]);
      for (const [name, call] of calls) {
        await assert.rejects(call(), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_ARGUMENT' && e.status === 0, name);
      }
      assert.equal(server.asked(), 0);
    } finally {
      await server.close();
    }
  });
});
