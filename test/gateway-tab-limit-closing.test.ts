/**
 * maxTabsPerPerson counts a person's sockets until each has closed, not the
 * tabs in the Hub: a tab leaves the Hub when its close begins, but its socket
 * is held until the close handshake ends or closeTimeoutMs passes. Counted
 * from the Hub, a client that sent a close frame and then neither read nor
 * closed TCP could open its next tab at once, and one credential held any
 * number of sockets and filled the node's maxTabs: everybody else got 503.
 * The count is given back once for every socket, however it ends.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { test } from 'node:test';
import { openRawSocket } from './helpers/raw-tab.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

/** A close frame with `code`, masked as a client's must be (RFC 6455 §5.3). */
function maskedClose(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  const mask = randomBytes(4);
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([Buffer.from([0x88, 0x82]), mask, payload]);
}

async function handshake(s: TestServer, id: number): Promise<number> {
  return (await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: await s.token('admin', id) } })).status;
}

/** Opens an admin tab on a raw socket, then begins its close and neither reads nor closes TCP. */
async function halfClosedTab(s: TestServer, id: number): Promise<net.Socket> {
  const before = s.herald.gateway.connections.size;
  const socket = await openRawSocket(s, id);
  await until(() => s.herald.gateway.connections.size === before + 1, 5000, `a tab of admin ${id} upgraded`);
  socket.write(maskedClose(1000));
  return socket;
}

test('a person\'s tabs still closing count against maxTabsPerPerson: one credential cannot fill the node by leaving them half-closed', async () => {
  // closeTimeoutMs long: the half-closed sockets are held throughout.
  const s = await startHerald({ maxTabsPerPerson: 2, maxTabs: 4, closeTimeoutMs: 60_000 });
  const held: net.Socket[] = [];
  try {
    held.push(await halfClosedTab(s, 1), await halfClosedTab(s, 1));
    await until(() => s.herald.hub.count({ kind: 'admin', id: 1 }) === 0, 5000, 'admin 1\'s tabs left the Hub');
    assert.equal(s.herald.gateway.connections.size, 2, 'their sockets are still held');
    assert.equal(await handshake(s, 1), 429, 'a third socket for admin 1');
    assert.equal(await handshake(s, 2), 101, 'another admin');
    // Once its sockets have closed, admin 1 gets in again.
    for (const socket of held) socket.destroy();
    await until(() => s.herald.gateway.connections.size === 0, 5000, 'the held sockets closed');
    assert.equal(await handshake(s, 1), 101);
  } finally {
    for (const socket of held) socket.destroy();
    await s.close();
  }
});

/** A handshake ws itself refuses after Herald admitted it (an unknown Sec-WebSocket-Version): answers its status line. */
async function refusedByWs(s: TestServer, id: number): Promise<string> {
  const token = await s.token('admin', id);
  const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1');
  socket.write(`GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 12\r\n\r\n`);
  let answer = '';
  socket.on('data', (b: Buffer) => { answer += b.toString('latin1'); });
  await new Promise((resolve) => socket.on('close', resolve));
  return answer.split('\r\n')[0]!;
}

test('every way a tab ends gives its place back once: after many, the person has exactly maxTabsPerPerson places', async () => {
  const s = await startHerald({ maxTabsPerPerson: 3, closeTimeoutMs: 300, maxFrameBytes: 1024 });
  const id = 7;
  const open = async (): Promise<TestTab> => {
    const tab = await s.tab('admin', id);
    await tab.nextOfType('WELCOME');
    return tab;
  };
  const gone = (): Promise<void> => until(() => s.herald.gateway.connections.size === 0, 5000, 'every socket closed');
  try {
    for (let round = 0; round < 4; round++) {
      // The client's close, a reset, and a frame past maxFrameBytes (4413).
      let [a, b, c] = [await open(), await open(), await open()];
      assert.equal(await handshake(s, id), 429, 'a fourth while three are open');
      a.close();
      b.terminate();
      c.ws.send('x'.repeat(1025));
      await gone();
      // A frame that is not UTF-8 (ws's 1007), more than 1000 frames (4429), a kick.
      [a, b, c] = [await open(), await open(), await open()];
      a.ws.send(Buffer.from([0xc3, 0x28]), { binary: false });
      for (let i = 0; i < 1001; i++) b.ws.send('{"TYPE":"PONG"}');
      await b.closed;
      assert.equal((await s.api('POST', '/api/v1/disconnect', { to: { aid: id }, reason: 'bye' })).status, 200);
      await gone();
      // A close frame, then nothing read; a half-close of TCP without a close frame, nothing read:
      // each socket is ended by closeTimeoutMs.
      const half = await halfClosedTab(s, id);
      const finned = await openRawSocket(s, id);
      await until(() => s.herald.gateway.connections.size === 2, 5000, 'two raw tabs upgraded');
      finned.end();
      await gone();
      half.destroy();
      finned.destroy();
      // Refused: by maxTabsPerPerson itself, and by ws after Herald admitted it.
      assert.match(await refusedByWs(s, id), /^HTTP\/1\.1 400 /);
    }
    const last = [await open(), await open(), await open()];
    assert.equal(await handshake(s, id), 429, 'three places, not more: the count never went below what is open');
    for (const tab of last) tab.terminate();
    await gone();
    assert.equal(await handshake(s, id), 101, 'and all three free again');
  } finally {
    await s.close();
  }
});
