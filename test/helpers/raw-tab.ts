/**
 * A tab on a raw TCP socket that reads only when its test says so: the
 * WebSocket handshake is written by hand and the server's frames are parsed
 * with ws's own Receiver, so the test decides how fast the "browser" reads
 * (a slow link, a tab that never reads) and sees what the server sent.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import type { TestServer } from './server.js';

const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable };

/** Connects to `s` as admin `id` and sends the upgrade request; the socket is paused, nothing read yet. */
export async function openRawSocket(s: TestServer, id: number, query: Record<string, string> = {}): Promise<net.Socket> {
  const token = await s.token('admin', id);
  const { port } = new URL(s.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const q = new URLSearchParams({ token, ...query });
  socket.write(`GET /ws/admin?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  socket.pause();
  return socket;
}

export class RawTab {
  readonly socket: net.Socket;
  readonly messages: any[] = [];
  close: { code: number; reason: string } | undefined;
  readonly #receiver = new Receiver({ isServer: false, maxPayload: 0 });
  readonly #head: Buffer[] = [];
  #upgraded = false;

  protected constructor(socket: net.Socket) {
    this.socket = socket;
    this.#receiver.on('message', (data: Buffer) => {
      this.messages.push(JSON.parse(data.toString('utf8')));
      this.onFrame();
    });
    this.#receiver.on('conclude', (code: number, reason: Buffer) => {
      this.close = { code, reason: reason.toString() };
      // As a browser does: the close handshake ends the connection.
      this.socket.end();
      this.onFrame();
    });
    this.#receiver.on('error', (err: Error) => assert.fail(`bad frame from the server: ${err.message}`));
  }

  /** Sends a text frame, masked as a client's must be (RFC 6455 §5.3). */
  sendText(text: string): void {
    const payload = Buffer.from(text);
    const mask = randomBytes(4);
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i & 3]!;
    const head = payload.length < 126 ? Buffer.from([0x81, 0x80 | payload.length]) : Buffer.from([0x81, 0xfe, payload.length >> 8, payload.length & 0xff]);
    this.socket.write(Buffer.concat([head, mask, payload]));
  }

  /** Called after each message and after the close frame. */
  protected onFrame(): void {}

  /** Hands bytes read from the socket on: first the 101 response's head (checked), then frames. */
  protected take(b: Buffer): void {
    if (!this.#upgraded) {
      this.#head.push(b);
      const all = Buffer.concat(this.#head);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return;
      assert.match(all.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101/);
      this.#upgraded = true;
      this.#receiver.write(all.subarray(end + 4));
      return;
    }
    this.#receiver.write(b);
  }
}
