/**
 * A tab whose peer sends its close frame and then leaves the TCP connection
 * open (a browser whose network died just after, a client that never
 * finishes the close) is gone at once: it leaves the Hub when the server has
 * answered the close, not when ws's 30 s close timer ends the socket. Until
 * then it counted as online and a send to it reported delivered:1.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

let s: TestServer;
before(async () => {
  s = await startHerald({ store: 'memory' });
});
after(() => s.close());

/** A masked client close frame (RFC 6455 §5.5.1) with `code`. */
function closeFrame(code: number): Buffer {
  const mask = randomBytes(4);
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}

async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a peer that sends its close frame and keeps TCP open leaves the Hub at once', async () => {
  const me = { kind: 'admin' as const, id: 77 };
  const socket = net.connect({ port: Number(new URL(s.url).port), host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => undefined);
  let received = Buffer.alloc(0);
  socket.on('data', (b: Buffer) => {
    received = Buffer.concat([received, b]);
  });
  try {
    socket.write(`GET /ws/admin?token=${await s.token('admin', me.id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await until(() => received.includes('"TYPE":"WELCOME"'), 5000, 'WELCOME');
    assert.equal(s.herald.hub.count(me), 1);
    socket.write(closeFrame(1000));
    // The server answers with its own close frame (0x88) and ends its side; the peer never closes.
    await until(() => received.includes(Buffer.from([0x88, 0x02, 0x03, 0xe8])), 5000, 'the server\'s answering close frame');
    await until(() => s.herald.hub.count(me) === 0, 2000, 'the tab gone from the Hub');
    const online = await s.api('GET', `/api/v1/online/admin/${me.id}`);
    assert.equal(online.body.tabs, 0, JSON.stringify(online.body));
    const sent = await s.api('POST', '/api/v1/send', { to: { aid: me.id }, message: { TYPE: 'MESSAGE', TEXT: 'after close' }, ttl: 0 });
    assert.equal(sent.body.delivered, 0, JSON.stringify(sent.body));
    assert.ok(!socket.destroyed, 'the test kept its side of TCP open throughout');
  } finally {
    socket.destroy();
  }
});
