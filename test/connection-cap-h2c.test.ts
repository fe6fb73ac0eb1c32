/**
 * ConnectionCap (file-limit.ts) counts a connection once, however many
 * requests it carries: node emits `connection` again for a connection handed
 * back from an `Upgrade: h2c` request (other-upgrade.ts), and each such
 * request on one keep-alive connection counted it once more, until every new
 * connection, tabs and API alike, was closed unanswered. A real node HTTP
 * server with Herald's own hand-back, and a raw TCP client.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { ConnectionCap } from '../src/server/file-limit.js';
import { answerWithoutUpgrade } from '../src/server/gateway/other-upgrade.js';

/** Writes a GET with `extra` headers on `socket` and reads its answer's status line. */
function request(socket: Socket, extra = ''): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(got)}`)), 3000);
    const onData = (d: Buffer): void => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end < 0 || got.length < end + 4 + 2) return;
      clearTimeout(timer);
      socket.off('data', onData);
      resolve(got.split('\r\n')[0]!);
    };
    socket.on('data', onData);
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`);
  });
}

describe('ConnectionCap and connections handed back from Upgrade: h2c', () => {
  let server: Server;
  let cap: ConnectionCap;
  let port: number;
  const sockets: Socket[] = [];
  before(async () => {
    server = createServer((_req, res) => res.end('ok'));
    cap = new ConnectionCap(3, pino({ level: 'silent' }));
    cap.watch(server);
    server.on('upgrade', (req, socket, head) => answerWithoutUpgrade(server, req, socket, head));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const open = async (): Promise<Socket> => {
    const s = connect(port, '127.0.0.1');
    sockets.push(s);
    await new Promise((resolve) => s.once('connect', resolve));
    return s;
  };

  it('counts one connection once through 10 h2c requests, and a new connection is still answered', async () => {
    const flood = await open();
    for (let i = 0; i < 10; i++) assert.equal(await request(flood, 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n'), 'HTTP/1.1 200 OK');
    assert.equal(cap.open, 1, 'the connection is counted once');
    const next = await open();
    assert.equal(await request(next), 'HTTP/1.1 200 OK', 'a new connection is answered');
    assert.equal(cap.open, 2);
  });
});
