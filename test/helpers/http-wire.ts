/**
 * HTTP/1.1 over a raw TCP connection, byte for byte: what a client library
 * would hide (pipelining, a request node cannot parse, a CONNECT) is written
 * as it is, and the server's answers are read back in order.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { within } from './legacy-client.js';

/** One answer read off the wire: its status, headers (names in lower case) and body. */
export interface WireAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Splits what a server sent into its answers, in order. A 1xx, a 204 and a
 * 304 have no body; Herald's other answers carry a Content-Length. Stops at a
 * 101 (what follows is WebSocket) and at an answer not yet whole.
 */
export function wireAnswers(text: string): WireAnswer[] {
  const out: WireAnswer[] = [];
  let at = 0;
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const [statusLine = '', ...lines] = text.slice(at, end).split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = status < 200 || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
    if (end + 4 + length > text.length) break;
    out.push({ status, headers, body: text.slice(end + 4, end + 4 + length) });
    at = end + 4 + length;
    if (status === 101) break;
  }
  return out;
}

/** A raw TCP connection to a server: what it sent so far, and waits for more. */
export class Wire {
  /** What the server sent, as latin1 (one character a byte). */
  text = '';
  closed = false;
  readonly #waiters = new Set<() => void>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
      for (const w of this.#waiters) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters) w();
    });
    socket.on('error', () => undefined);
  }

  /** Connects; `paused`: reads nothing until resume(), as a client that does not read its answers. */
  static async open(port: number, options: { paused?: boolean } = {}): Promise<Wire> {
    const socket = connect(port, '127.0.0.1');
    if (options.paused) socket.pause();
    await once(socket, 'connect');
    const wire = new Wire(socket);
    // The 'data' listener set it flowing.
    if (options.paused) socket.pause();
    return wire;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes, then half-closes (the client sends nothing more). */
  end(bytes: string | Buffer): void {
    this.socket.end(bytes);
  }

  resume(): void {
    this.socket.resume();
  }

  /** Resolves with the answers once there are `count` (rejects if the connection closes first, or after 5 s). */
  answers(count: number, what: string): Promise<WireAnswer[]> {
    const wait = new Promise<WireAnswer[]>((resolve, reject) => {
      const check = (): void => {
        const got = wireAnswers(this.text);
        if (got.length < count && !this.closed) return;
        this.#waiters.delete(check);
        if (got.length >= count) resolve(got);
        else reject(new Error(`the connection closed before ${what}; the server sent ${JSON.stringify(this.text.slice(-600))}`));
      };
      this.#waiters.add(check);
      check();
    });
    return within(wait, 5000, what);
  }

  /** Resolves with the answers once `enough` says they are all in; rejects if the connection closes first, or after 5 s. */
  until(enough: (got: WireAnswer[]) => boolean, what: string): Promise<WireAnswer[]> {
    const wait = new Promise<WireAnswer[]>((resolve, reject) => {
      const check = (): void => {
        const got = wireAnswers(this.text);
        if (enough(got)) {
          this.#waiters.delete(check);
          resolve(got);
        } else if (this.closed) {
          this.#waiters.delete(check);
          reject(new Error(`the connection closed before ${what}; the server sent ${JSON.stringify(this.text.slice(0, 600))}`));
        }
      };
      this.#waiters.add(check);
      check();
    });
    return within(wait, 5000, `${what} (got ${JSON.stringify(this.text.slice(0, 600))})`);
  }

  /** Resolves once the server has closed the connection (rejects after `ms`). */
  async closedByServer(what: string, ms = 5000): Promise<WireAnswer[]> {
    try {
      if (!this.closed) await within(once(this.socket, 'close'), ms, what);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the server sent ${JSON.stringify(this.text.slice(0, 600))}`);
    }
    return wireAnswers(this.text);
  }

  destroy(): void {
    this.socket.destroy();
  }
}
