/**
 * A raw TCP client for the legacy protocol, as the old Perl client is: it
 * writes bytes exactly as given and reads answers (one JSON value per line).
 * Tests await answers and the close, with timeouts that fail; never sleep.
 */
import net from 'node:net';

export class RawLegacyClient {
  readonly socket: net.Socket;
  /** Every answer line received, parsed (or the raw text when not JSON). */
  readonly answers: unknown[] = [];
  /** Raw bytes received, for exact comparisons. */
  raw = Buffer.alloc(0);
  readonly ended: Promise<void>;
  readonly closed: Promise<void>;
  #text = '';
  #waiters: Array<() => void> = [];
  #taken = 0;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.raw = Buffer.concat([this.raw, chunk]);
      this.#text += chunk.toString('utf8');
      let nl: number;
      while ((nl = this.#text.indexOf('\n')) >= 0) {
        const line = this.#text.slice(0, nl);
        this.#text = this.#text.slice(nl + 1);
        try {
          this.answers.push(JSON.parse(line));
        } catch {
          this.answers.push(line);
        }
      }
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('error', () => { /* a reset after our own abuse is expected in some tests */ });
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    this.closed.then(() => { for (const w of this.#waiters.splice(0)) w(); });
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawLegacyClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      socket.once('connect', () => resolve(new RawLegacyClient(socket)));
      socket.once('error', reject);
    });
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())));
  }

  /** Writes each byte in its own write, yielding to the event loop between them. */
  async writeBytewise(data: string): Promise<void> {
    for (const b of Buffer.from(data, 'utf8')) {
      await this.write(Uint8Array.of(b));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** The next answer not yet taken. */
  async next(timeoutMs = 2000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length <= this.#taken) {
      if (this.socket.destroyed && this.answers.length <= this.#taken) throw new Error(`connection closed; answers so far: ${JSON.stringify(this.answers)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms; answers so far: ${JSON.stringify(this.answers)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return this.answers[this.#taken++];
  }

  /** Sends one request and returns its answer, with how long it took. */
  async request(data: string | Uint8Array, timeoutMs = 2000): Promise<{ answer: unknown; ms: number }> {
    const t0 = performance.now();
    await this.write(data);
    const answer = await this.next(timeoutMs);
    return { answer, ms: performance.now() - t0 };
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Rejects if `p` does not settle within `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]);
}
