/**
 * The HTTP API while Herald shuts down: a keep-alive connection busy at
 * close() ends with its answer (which is whole), a request that arrives
 * during shutdown is refused in Herald's error shape, and a connection still
 * open after shutdownGraceMs is closed, so close() always ends.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { connect, type Socket } from 'node:net';
import { within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';

/** A raw HTTP client socket to Herald that collects what it is sent. */
async function rawSocket(url: string): Promise<{ socket: Socket; received: () => string; closed: Promise<unknown> }> {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  return { socket, received: () => text, closed };
}

describe('HTTP during shutdown', () => {
  test('a keep-alive connection with a long poll in flight: the answer is whole and closes the connection, and close() ends without waiting out the grace', async () => {
    // A grace far longer than the test's timeouts: close() must not wait for it.
    const s = await startHerald({ commandsAllow: ['sleep'], commandsKillGraceMs: 200, shutdownGraceMs: 120_000, legacyEnabled: false });
    const agent = new http.Agent({ keepAlive: true });
    try {
      const started = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['60'] });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      const { hostname, port } = new URL(s.url);
      const request = http.request({
        agent, host: hostname, port, path: `/api/v1/commands/${started.body.id}?wait=60`, headers: { authorization: `Bearer ${s.apiToken}` },
      });
      const socketClosed = new Promise<void>((resolve) => request.on('socket', (so) => so.once('close', () => resolve())));
      const answered = new Promise<{ status: number | undefined; connection: string | undefined; body: string }>((resolve, reject) => {
        request.on('response', (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection, body }));
        });
        request.on('error', reject);
      });
      const arrived = once(s.herald.app.server, 'request');
      request.end();
      await within(arrived, 10_000, 'the long poll to reach the server');
      // Microtasks (the token check, the route) run before the next turn: the handler is waiting for the command now.
      await new Promise((resolve) => setImmediate(resolve));
      const closing = s.herald.close();
      const answer = await within(answered, 20_000, 'the long poll to be answered');
      assert.equal(answer.status, 200);
      assert.equal(answer.connection, 'close');
      assert.equal(JSON.parse(answer.body).id, started.body.id, 'the whole answer arrived');
      await within(socketClosed, 20_000, 'the keep-alive connection to end with its answer');
      await within(closing, 20_000, 'close() to end once the request in flight was answered');
    } finally {
      agent.destroy();
      await s.close();
    }
  });

  test('a request that arrives during shutdown is refused with 503 HERALD_ERR_SHUTTING_DOWN and Connection: close', async () => {
    const s = await startHerald({ shutdownGraceMs: 120_000, legacyEnabled: false });
    try {
      // A connection that has begun a request is not idle, so the server's close() leaves it open.
      const c = await rawSocket(s.url);
      c.socket.write('GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      // Let the server read the start of the request before close() begins.
      assert.equal((await s.api('GET', '/api/v1/ping')).status, 200);
      const closing = s.herald.close();
      c.socket.write(`Authorization: Bearer ${s.apiToken}\r\n\r\n`);
      await within(c.closed, 20_000, 'the connection to end with the refusal');
      const [head, body] = c.received().split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 503 /);
      assert.match(head!, /\r\nconnection: close/i);
      assert.match(head!, /\r\nretry-after: 1\r\n/i, 'the door\'s refusal says when to come back (RFC 9110 §10.2.3)');
      assert.deepEqual(JSON.parse(body!), { error: { code: 'HERALD_ERR_SHUTTING_DOWN', message: 'the server is shutting down' } });
      await within(closing, 20_000, 'close() to end');
    } finally {
      await s.close();
    }
  });

  test('a route already running when the shutdown began answers its own 503 HERALD_ERR_SHUTTING_DOWN without Retry-After, so a client can tell it from the door\'s', async () => {
    const s = await startHerald({ commandsAllow: ['sleep'], commandsKillGraceMs: 200, shutdownGraceMs: 120_000, legacyEnabled: false });
    try {
      const started = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['60'] });
      assert.equal(started.status, 201, JSON.stringify(started.body));
      // A long poll on that command is answered when the runner stops it: the sign that the runner is closing.
      let arrived = once(s.herald.app.server, 'request');
      const poll = s.api('GET', `/api/v1/commands/${started.body.id}?wait=60`);
      await within(arrived, 10_000, 'the long poll to reach the server');
      // POST /commands whose headers passed the door before the shutdown, its body not yet whole.
      const body = JSON.stringify({ aid: 1, program: 'sleep', args: ['1'] });
      const c = await rawSocket(s.url);
      arrived = once(s.herald.app.server, 'request');
      c.socket.write(`POST /api/v1/commands HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${s.apiToken}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 5)}`);
      await within(arrived, 10_000, 'the POST to reach the server');
      await new Promise((resolve) => setImmediate(resolve));
      const closing = s.herald.close();
      const ended = await within(poll, 20_000, 'the long poll to be answered');
      assert.equal(ended.body.state, 'cancelled', JSON.stringify(ended.body));
      c.socket.write(body.slice(5));
      await within(c.closed, 20_000, 'the connection to end with the answer');
      const [head, answer] = c.received().split('\r\n\r\n');
      assert.match(head!, /^HTTP\/1\.1 503 /);
      assert.equal(JSON.parse(answer!).error.code, 'HERALD_ERR_SHUTTING_DOWN');
      assert.doesNotMatch(head!, /\r\nretry-after:/i, 'a route ran: this is not the door\'s refusal');
      await within(closing, 20_000, 'close() to end');
    } finally {
      await s.close();
    }
  });

  test('a connection still open after shutdownGraceMs (a request never finished) is closed, and close() ends', async () => {
    const s = await startHerald({ shutdownGraceMs: 300, requestTimeoutMs: 0, legacyEnabled: false });
    try {
      const c = await rawSocket(s.url);
      c.socket.write('GET /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      assert.equal((await s.api('GET', '/api/v1/ping')).status, 200);
      await within(s.herald.close(), 20_000, 'close() to end');
      await within(c.closed, 20_000, 'the unfinished connection to be closed');
    } finally {
      await s.close();
    }
  });
});
