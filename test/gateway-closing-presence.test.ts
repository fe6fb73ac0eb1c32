/**
 * A tab the server has begun to close is no longer one of the person's open
 * tabs: nothing more is sent to it. Its close handshake can take up to ws's
 * 30 s when the peer does not read (a frozen page closed as a slow consumer,
 * a dead link closed for silence); until then it was still counted online,
 * and a live-only send to it was reported delivered, and dropped.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { startHerald } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

test('a tab closed as a slow consumer leaves presence at once; a live-only send to that person then reports 0 tabs', async () => {
  const s = await startHerald({ maxBufferedBytes: 65_536, heartbeatMs: 60_000 });
  try {
    const tab = await s.tab('admin', 41);
    await tab.nextOfType('WELCOME');
    // The page froze: nothing more is read from its socket.
    const socket = (tab.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    const text = 'x'.repeat(60_000);
    let delivered = 1;
    let sends = 0;
    // Each send goes to the one tab until its backlog passes maxBufferedBytes and it is closed.
    while (delivered === 1 && sends < 500) {
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: { TYPE: 'MESSAGE', TEXT: text }, ttl: 0 });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      delivered = r.body.delivered;
      sends++;
    }
    assert.equal(delivered, 0, `after ${sends} sends the closed tab was still sent to`);
    const online = await s.api('GET', '/api/v1/online/admin/41');
    assert.deepEqual({ online: online.body.online, tabs: online.body.tabs }, { online: false, tabs: 0 });
    // The page wakes up: it reads its backlog, then the close notice and the close frame.
    socket.resume();
    assert.deepEqual(await tab.nextOfType('close', 10_000), { TYPE: 'close', REASON: 'slow consumer' });
    assert.equal((await tab.closed).code, 4429);
  } finally {
    await s.close();
  }
});

/**
 * The first close frame of what the server sent, as [its first byte, its code]; undefined until
 * one has come whole. A heartbeat may come before it: a tab's first one comes at its slice's
 * tick, anywhere from at once to heartbeatMs after it connected (once, under load, between
 * WELCOME and the close frame). Server frames are unmasked; these are all short.
 */
function firstClose(b: Buffer): [number, number] | undefined {
  for (let i = 0; i + 2 <= b.length; i += 2 + (b[i + 1]! & 0x7f)) {
    if (b[i] === 0x88) return i + 4 <= b.length ? [0x88, b.readUInt16BE(i + 2)] : undefined;
  }
  return undefined;
}

test('a tab that ws closes itself after a bad frame (1002, 1009) leaves presence at once, though the peer never answers the close', async () => {
  const s = await startHerald({ heartbeatMs: 60_000, maxFrameBytes: 256 });
  const port = Number(new URL(s.url).port);
  const peers: net.Socket[] = [];
  try {
    const badFrames: Array<[string, Buffer, number]> = [
      // A client frame without a mask (RFC 6455 §5.1): 1002.
      ['unmasked', Buffer.from([0x81, 0x01, 0x41]), 1002],
      // A text frame past twice maxFrameBytes, refused by ws from its header: 1009.
      ['too big', Buffer.from([0x81, 0x80 | 126, 0x04, 0x00, 0, 0, 0, 0]), 1009],
    ];
    for (const [name, bytes, code] of badFrames) {
      const token = await s.token('admin', 42);
      // allowHalfOpen: the server's FIN after its close frame does not end this side either.
      const peer = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      peers.push(peer);
      let received = Buffer.alloc(0);
      const welcomed = new Promise<void>((resolve) => peer.on('data', (d: Buffer) => {
        received = Buffer.concat([received, d]);
        if (received.includes('"WELCOME"')) resolve();
      }));
      peer.write(
        `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      await welcomed;
      assert.equal(s.herald.hub.count({ kind: 'admin', id: 42 }), 1);
      received = Buffer.alloc(0);
      // The bad frame; then the peer neither answers the close frame nor ends its side.
      peer.write(bytes);
      await until(() => firstClose(received) !== undefined, 3000, `the close frame after the ${name} frame`);
      assert.deepEqual(firstClose(received), [0x88, code], name);
      await until(() => s.herald.hub.count({ kind: 'admin', id: 42 }) === 0, 3000, `the tab to leave the Hub after its ${name} frame`);
      assert.equal((await s.api('GET', '/api/v1/online/admin/42')).body.online, false);
      peer.destroy();
    }
  } finally {
    for (const p of peers) p.destroy();
    await s.close();
  }
});
