/**
 * A browser tab for tests: a real `ws` client that records every frame and
 * lets a test await the frame it expects (with a timeout that fails) instead
 * of sleeping.
 */
import WebSocket from 'ws';

export interface TestTabOptions {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  origin?: string;
  /** Answer server PINGs automatically (default true), as a browser library does. */
  autoPong?: boolean;
}

export interface Closed {
  code: number;
  reason: string;
}

type Waiter = { pred: (f: any) => boolean; resolve: (f: any) => void };

export class TestTab {
  readonly ws: WebSocket;
  /** Every frame received, parsed. */
  readonly frames: any[] = [];
  readonly closed: Promise<Closed>;
  #waiters: Waiter[] = [];
  #cursor = 0;

  private constructor(ws: WebSocket, autoPong: boolean) {
    this.ws = ws;
    ws.on('message', (data) => {
      let frame: any;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        frame = data.toString();
      }
      this.frames.push(frame);
      if (autoPong && frame?.TYPE === 'PING') ws.send('{"TYPE":"PONG"}');
      for (const w of [...this.#waiters]) {
        if (w.pred(frame)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens a tab; resolves once the WebSocket is open (rejects with the HTTP status on refusal). */
  static open(url: string, options: TestTabOptions = {}): Promise<TestTab> {
    const u = new URL(url);
    for (const [k, v] of Object.entries(options.query ?? {})) u.searchParams.set(k, v);
    const ws = new WebSocket(u, { headers: options.headers, ...(options.origin ? { origin: options.origin } : {}) });
    const tab = new TestTab(ws, options.autoPong ?? true);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(tab));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { status: res.statusCode, body })));
      });
      ws.once('error', reject);
    });
  }

  /** The handshake's HTTP status when refused, or 101. */
  static async status(url: string, options: TestTabOptions = {}): Promise<{ status: number; body: string }> {
    try {
      const tab = await TestTab.open(url, options);
      tab.terminate();
      return { status: 101, body: '' };
    } catch (e) {
      const err = e as { status?: number; body?: string };
      if (err.status === undefined) throw e;
      return { status: err.status, body: err.body ?? '' };
    }
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** The first frame (received before or after this call) that matches and was not taken by an earlier `next`. */
  next(pred: (f: any) => boolean = () => true, timeoutMs = 5000): Promise<any> {
    for (let i = this.#cursor; i < this.frames.length; i++) {
      if (pred(this.frames[i])) {
        this.#cursor = i + 1;
        return Promise.resolve(this.frames[i]);
      }
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for a frame; got ${JSON.stringify(this.frames.slice(-5))}`));
      }, timeoutMs);
      const waiter: Waiter = {
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          this.#cursor = this.frames.length;
          resolve(f);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Waits for a frame of a TYPE. */
  nextOfType(type: string, timeoutMs = 5000): Promise<any> {
    return this.next((f) => f?.TYPE === type, timeoutMs);
  }

  /** Notifications received so far (frames that are neither control nor welcome). */
  notifications(): any[] {
    return this.frames.filter((f) => typeof f === 'string' || !['WELCOME', 'PING', 'PONG', 'close', 'ERROR', 'RESET', 'PACE'].includes(f?.TYPE));
  }

  close(): void {
    this.ws.close();
  }

  terminate(): void {
    this.ws.terminate();
  }
}

/** Resolves when `fn` returns true, polling a condition that has no event (e.g. server-side presence). */
export async function until(fn: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
