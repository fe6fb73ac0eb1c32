/**
 * A tab that is closing holds its socket, and the unsent backlog on it (up to
 * maxBufferedBytes), only until closeTimeoutMs has passed: a peer that stops
 * reading never answers the close handshake, and `ws` alone waited 30 s for
 * it (or, for a peer that half-closed TCP without a close frame, for ever).
 * Each case here is a raw client that stops reading while Herald has more
 * for it than the loopback socket's buffers take; Herald's socket to it must
 * be destroyed and the tab forgotten well before ws's 30 s.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const TEXT = 'й'.repeat(1000); // 2 KB a notification
const PER_REQUEST = 300;
/**
 * What the servers here use instead of the default 3 s: the bound is the same code path
 * whatever its length, and the tests wait for it.
 */
const CLOSE_TIMEOUT_MS = 300;
/** Generous against CLOSE_TIMEOUT_MS on a loaded machine, a third of ws's own 30 s. */
const DEADLINE_MS = 10_000;

/** A client that does the WebSocket handshake on a raw socket and then never reads. */
async function deafTab(s: TestServer, id: number): Promise<{ client: net.Socket; server: net.Socket }> {
  const token = await s.token('admin', id);
  const { port } = new URL(s.url);
  const upgraded = new Promise<net.Socket>((resolve) => s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => resolve(socket)));
  const client = net.connect(Number(port), '127.0.0.1');
  client.on('error', () => undefined); // a reset when Herald destroys its side is what is expected
  await new Promise<void>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  client.pause();
  client.write(`GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const server = await upgraded;
  await until(() => s.herald.hub.count({ kind: 'admin', id }) === 1, 5000, 'the tab in the Hub');
  return { client, server };
}

/** Sends the person notifications until Herald holds some unsent in user space (the kernel's buffers are full), or `until` says stop. */
async function fill(s: TestServer, id: number, server: net.Socket, enough: () => boolean): Promise<void> {
  for (let i = 0; !enough(); i += PER_REQUEST) {
    assert.ok(i < 20_000, `Herald held nothing unsent after ${i} notifications`);
    const messages = Array.from({ length: PER_REQUEST }, (_, k) => ({ to: { aid: id }, message: { TYPE: 'MESSAGE', N: i + k + 1, TEXT } }));
    assert.equal((await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' })).status, 200);
    if (server.destroyed) return;
  }
}

/** Resolves when Herald's socket has closed; fails past the deadline. */
function closedWithin(server: net.Socket, ms: number, what: string): Promise<void> {
  if (server.destroyed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Herald's socket to ${what} was still open after ${ms} ms (${server.writableLength} bytes unsent)`)), ms);
    server.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('a closing tab whose peer does not read', () => {
  let s: TestServer;
  let big: TestServer;
  const clients: net.Socket[] = [];
  before(async () => {
    s = await startHerald({ store: 'memory', maxBufferedBytes: 65_536, heartbeatMs: 60_000, closeTimeoutMs: CLOSE_TIMEOUT_MS });
    // A limit the tests never reach: the close is the peer's, not a slow-consumer close.
    big = await startHerald({ store: 'memory', maxBufferedBytes: 256 << 20, maxPerStream: 20_000, heartbeatMs: 60_000, closeTimeoutMs: CLOSE_TIMEOUT_MS });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all([s.close(), big.close()]);
  });

  test('closed as a slow consumer: its socket and backlog are dropped within closeTimeoutMs, not after ws\'s 30 s', async () => {
    const { client, server } = await deafTab(s, 1);
    clients.push(client);
    // Past maxBufferedBytes the tab is closed (4429), its close frame queued behind what it never read.
    await fill(s, 1, server, () => s.herald.hub.count({ kind: 'admin', id: 1 }) === 0);
    assert.ok(server.writableLength > 65_536 || server.destroyed, `Herald held ${server.writableLength} bytes for the tab`);
    await closedWithin(server, DEADLINE_MS, 'the slow consumer');
    await until(() => s.herald.gateway.connections.size === 0, 5000, 'the gateway to forget the tab');
  });

  test('that sent its close frame and stopped reading: dropped within closeTimeoutMs', async () => {
    const { client, server } = await deafTab(big, 2);
    clients.push(client);
    await fill(big, 2, server, () => server.writableLength > 0);
    // A masked close frame, code 1000 (a zero mask leaves the payload as it is).
    client.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]));
    await closedWithin(server, DEADLINE_MS, 'the peer that closed');
    await until(() => big.herald.gateway.connections.size === 0, 5000, 'the gateway to forget the tab');
  });

  test('that half-closed TCP without a close frame and stopped reading: leaves the Hub, and is dropped within closeTimeoutMs', async () => {
    const { client, server } = await deafTab(big, 3);
    clients.push(client);
    await fill(big, 3, server, () => server.writableLength > 0);
    // FIN, and still no reading: ws ends its side too, which never finishes.
    client.end();
    await until(() => big.herald.hub.count({ kind: 'admin', id: 3 }) === 0, DEADLINE_MS, 'the half-closed tab to leave the Hub');
    await closedWithin(server, DEADLINE_MS, 'the half-closed peer');
    await until(() => big.herald.gateway.connections.size === 0, 5000, 'the gateway to forget the tab');
  });
});
