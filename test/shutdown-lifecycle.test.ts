/**
 * What close() leaves behind: nothing listening when it overlaps listen() or
 * comes before it, no connection to the old daemon's ports outliving it, no
 * WebSocket handshake pipelined behind unread answers holding it up, and a
 * request already in an idle keep-alive connection's buffer answered 503, not
 * reset.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createHerald } from '../src/server/herald.js';
import { loadOptions, type OptionKey } from '../src/server/options.js';
import { within } from './helpers/legacy-client.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** A raw connection to 127.0.0.1:`port` that collects what it is sent, and how it ended. */
async function rawSocket(port: number): Promise<{ socket: Socket; received: () => string; error: () => string | undefined; closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  let error: string | undefined;
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message));
  // 'close' however it ended (once() would reject on a reset, which the test reads from error()).
  const closed = new Promise<unknown>((resolve) => socket.once('close', resolve));
  await once(socket, 'connect');
  return { socket, received: () => text, error: () => error, closed };
}

/** Whether a connection to 127.0.0.1:`port` is refused (nothing listens there). */
async function refused(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  } finally {
    socket.destroy();
  }
}

/** A Herald built (not listening) on a fresh data dir, with its legacy door and the old daemon's admin port. */
async function builtHerald(overrides: Partial<Record<OptionKey, unknown>> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-lifecycle-'));
  const options = loadOptions({
    env: {},
    overrides: {
      host: '127.0.0.1', port: 0, legacyEnabled: true, legacyPort: 0, adminPort: await restartablePort(), dataDir,
      secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url'), logLevel: process.env.HERALD_TEST_LOG ?? 'silent', ...overrides,
    },
  });
  return { herald: await createHerald(options), options, removeDir: () => rmSync(dataDir, { recursive: true, force: true }) };
}

/** A WebSocket handshake for /ws/admin with `token`, as raw bytes. */
function handshake(s: TestServer, token: string): string {
  const { host } = new URL(s.url);
  return `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${s.url}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
}

/** Requests for a 400 KB asset, more answers than a client that does not read can have in its buffers (and fewer than MAX_PIPELINED). */
const UNREAD_ANSWERS = 'GET /herald.min.js.map HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(30);

describe('close() and listen()', () => {
  test('close() called while listen() runs leaves nothing listening: the HTTP port, the old daemon\'s port and the legacy door are closed', async () => {
    const { herald, options, removeDir } = await builtHerald();
    try {
      const listening = herald.listen();
      const closing = herald.close();
      const urls = await listening;
      await closing;
      const ports = { http: Number(new URL(urls.http).port), admin: options.adminPort, legacy: urls.legacy!.port };
      assert.deepEqual(
        { http: await refused(ports.http), admin: await refused(ports.admin), legacy: await refused(ports.legacy) },
        { http: true, admin: true, legacy: true },
      );
    } finally {
      removeDir();
    }
  });

  test('listen() after close() rejects with HERALD_ERR_SHUTTING_DOWN and opens nothing', async () => {
    const { herald, options, removeDir } = await builtHerald();
    try {
      await herald.close();
      await assert.rejects(herald.listen(), { code: 'HERALD_ERR_SHUTTING_DOWN', message: /listen\(\) after close\(\)/ });
      assert.equal(herald.app.server.listening, false);
      assert.equal(await refused(options.adminPort), true, 'the old daemon\'s port is not opened');
      assert.throws(() => herald.urls, /not listening/);
    } finally {
      removeDir();
    }
  });
});

describe('connections at close()', () => {
  test('a connection to the old daemon\'s port with half a request is closed when the grace ends, never answered after close()', async () => {
    // requestTimeoutMs far past the grace: only the shutdown can end the connection in time.
    const s = await startHerald({ adminPort: await restartablePort(), shutdownGraceMs: 1000, requestTimeoutMs: 600_000, legacyEnabled: false });
    const adminPort = s.options.adminPort;
    const c = await rawSocket(adminPort);
    c.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // A whole request and its answer on another connection: the half one has been read meanwhile.
    const probe = await fetch(`http://127.0.0.1:${adminPort}/`);
    await probe.text();
    await s.close();
    await within(c.closed, 10_000, 'the half-sent request\'s connection to be closed by close()');
    assert.equal(c.received(), '', 'nothing was answered on it');
  });

  test('a WebSocket handshake pipelined behind answers the client does not read does not hold up close(), and its connection ends', async () => {
    // A grace far longer than the test's timeouts: close() must not wait for it.
    const s = await startHerald({ shutdownGraceMs: 120_000, legacyEnabled: false });
    const c = await rawSocket(Number(new URL(s.url).port));
    c.socket.pause();
    const upgrading = once(s.herald.app.server, 'upgrade');
    c.socket.write(UNREAD_ANSWERS + handshake(s, await s.token('admin', 1)));
    // Node hands the handshake over once parsed; the Gateway, listening first, has it waiting by now.
    await within(upgrading, 10_000, 'the handshake to reach the server');
    await within(s.close(), 20_000, 'close() to end without waiting out the grace');
    c.socket.resume();
    await within(c.closed, 10_000, 'the connection to end');
    assert.doesNotMatch(c.received(), /HTTP\/1\.1 101 /, 'no tab was opened');
  });

  test('a request already in an idle keep-alive connection\'s buffer as the HTTP server closes is answered 503, not reset', async () => {
    const s = await startHerald({ legacyEnabled: false });
    const c = await rawSocket(Number(new URL(s.url).port));
    const firstAnswer = new Promise<void>((resolve) => c.socket.on('data', () => {
      if (c.received().includes('{"ok":true}')) resolve();
    }));
    c.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await within(firstAnswer, 10_000, 'the keep-alive request to be answered');
    const before = c.received().length;
    // The moment the server stops listening, the connection's next request is in its buffer, unread.
    const server = s.herald.app.server;
    const close = server.close.bind(server);
    server.close = (...args: Parameters<typeof server.close>) => {
      server.close = close;
      c.socket.write(`POST /api/v1/send HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${s.apiToken}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
      return close(...args);
    };
    await s.close();
    await within(c.closed, 10_000, 'the connection to end');
    const answer = c.received().slice(before);
    assert.deepEqual({ status: answer.split('\r\n')[0], error: c.error() }, { status: 'HTTP/1.1 503 Service Unavailable', error: undefined });
    assert.match(answer, /\r\nconnection: close\r\n/i);
    assert.match(answer, /HERALD_ERR_SHUTTING_DOWN/);
  });
});
