/**
 * A connection to an HTTP port that has sent nothing (a browser's preconnect,
 * a port check) does not hold up shutdown: node counts it as active, and
 * close() waited the whole shutdownGraceMs for it. One that sent part of a
 * request still has the grace.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { restartablePort } from './helpers/ports.js';
import { startHerald } from './helpers/server.js';

/** A connection to 127.0.0.1:`port` that sends nothing. */
async function silentConnection(port: number): Promise<{ socket: Socket; closed: Promise<unknown> }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const closed = once(socket, 'close');
  await once(socket, 'connect');
  return { socket, closed };
}


describe('shutdown with connections that sent nothing', () => {
  test('silent connections to the main port and the old daemon\'s ports end at close(), which does not wait out the grace', async () => {
    const s = await startHerald({ shutdownGraceMs: 10_000, legacyEnabled: false, adminPort: await restartablePort(), userPort: await restartablePort() });
    const ports = [Number(new URL(s.url).port), s.options.adminPort, s.options.userPort];
    const silent = await Promise.all(ports.map((port) => silentConnection(port)));
    // Accepted by the server before close() begins.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    const closing = s.close();
    const inTime = await Promise.race([closing.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000))]);
    assert.ok(inTime, `close() took more than 2 s with a grace of 10 s (${Math.round(performance.now() - started)} ms)`);
    const ended = await Promise.race([Promise.all(silent.map((c) => c.closed)).then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000))]);
    assert.ok(ended, 'every silent connection was closed');
  });

  test('a connection with part of a request still has the grace: it is closed when the grace ends, not before', async () => {
    const s = await startHerald({ shutdownGraceMs: 1500, requestTimeoutMs: 60_000, legacyEnabled: false });
    const { socket, closed } = await silentConnection(Number(new URL(s.url).port));
    socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    const closing = s.close();
    let closedAt: number | undefined;
    void closed.then(() => { closedAt = performance.now(); });
    await closing;
    await closed;
    assert.ok(closedAt !== undefined && closedAt - started >= 1000, `the half-sent request's connection ended after ${Math.round((closedAt ?? 0) - started)} ms, before the grace`);
  });
});
