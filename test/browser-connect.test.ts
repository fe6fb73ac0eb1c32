/**
 * Connection attempts in a real Chromium against a real Herald: an attempt
 * abandoned by close() while its token or its credential probe was still
 * coming neither opens a socket nor decides the next attempt, connect()
 * right after close() is not undone by the old socket's close, and an
 * attempt that never completes (a handshake nobody answers, a token
 * function that never settles) is given up and retried.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pipeTo } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

/** What these tests keep in the page besides the library's globals. */
type Watch = W & {
  /** Every WebSocket the client constructed, in order. */
  sockets: WebSocket[];
  /** Resolvers of the token promises handed out, in order. */
  tokenWaiters: Array<(token: string) => void>;
  /** Connection events of the client, by name. */
  seen: string[];
};

/**
 * A TCP endpoint that accepts connections and holds them without a byte in
 * answer (a server or proxy that hangs) until release(); connections made
 * after that are forwarded to Herald.
 */
class HangingProxy {
  readonly #server: Server;
  /** The first connection held. */
  readonly firstHeld: Promise<Socket>;
  #onHeld: (s: Socket) => void = () => {};
  #released = false;
  /** Every socket either side, so close() does not wait for the page. */
  readonly #all = new Set<Socket>();
  port = 0;

  constructor(targetPort: number) {
    this.firstHeld = new Promise((resolve) => {
      this.#onHeld = resolve;
    });
    this.#server = createServer((client: Socket) => {
      this.#all.add(client);
      client.on('close', () => this.#all.delete(client));
      if (!this.#released) {
        this.#onHeld(client);
        client.on('error', () => {});
        // Read (and drop) what the page sends, so that its FIN is seen and 'close' follows.
        client.resume();
        return;
      }
      const upstream = pipeTo(client, targetPort);
      this.#all.add(upstream);
      upstream.on('close', () => this.#all.delete(upstream));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  release(): void {
    this.#released = true;
  }

  async close(): Promise<void> {
    for (const s of this.#all) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/**
 * An endpoint that refuses every WebSocket handshake (HTTP 503, seen by the
 * page as close code 1006) and holds each credential probe (the POST the
 * library sends after such a refusal) until the test answers it.
 */
class RefusingEndpoint {
  readonly #server: HttpServer;
  readonly #probes: ServerResponse[] = [];
  #onProbe: () => void = () => {};
  port = 0;

  constructor() {
    this.#server = createHttpServer((req, res) => {
      if (req.method !== 'POST') {
        res.writeHead(404).end();
        return;
      }
      // The page is on Herald's origin: a credentialed cross-origin POST needs these to be read.
      res.setHeader('access-control-allow-origin', req.headers.origin ?? '*');
      res.setHeader('access-control-allow-credentials', 'true');
      this.#probes.push(res);
      this.#onProbe();
    });
    this.#server.on('upgrade', (_req, socket: Socket) => {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  /** Resolves when `n` probes have arrived in all. */
  async probes(n: number): Promise<void> {
    while (this.#probes.length < n) await new Promise<void>((resolve) => (this.#onProbe = resolve));
  }

  /** Answers the `i`-th probe (0-based) with an HTTP status and, for 401 and 403, Herald's error body. */
  answer(i: number, status: number): void {
    const code = status === 401 ? 'HERALD_ERR_UNAUTHORIZED' : status === 403 ? 'HERALD_ERR_ORIGIN' : 'HERALD_ERR_UNAVAILABLE';
    this.#probes[i]!.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify({ error: { code, message: 'refused' } }));
  }

  /** Answers the `i`-th probe as a proxy in front of Herald might: the status with a page of its own. */
  answerAsProxy(i: number, status: number): void {
    this.#probes[i]!.writeHead(status, { 'content-type': 'text/html' }).end(`<html><body>${status} from the proxy</body></html>`);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Rejects after `ms`: an awaited event that does not come fails the test instead of hanging it. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('browser connection attempts in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  /**
   * One context for the file, a new page per test: a context costs about as much again as
   * its page. Storage a test could see from another is localStorage's record of what this
   * browser showed, kept per person, and each test here has a person of its own.
   */
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    // The demo page hosts the library here; the endpoints are the tests' own servers on other ports.
    const first = await newPage(browser, { bypassCSP: true });
    context = first.context;
    await first.page.close();
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /**
   * A page from Herald (for /herald.js) with a client that is not connected
   * yet, whose WebSockets are recorded and whose token comes from `token`:
   * 'queued' hands out promises the test resolves (tokenWaiters);
   * 'hang-first' never settles the first time and gives `tokenValue` after
   * that; a string is used as it is.
   */
  async function pageWithClient(options: { token: 'queued' | 'hang-first' | string; endpoint?: string; connectTimeoutMs?: number; tokenValue?: string; reconnectMs?: number }): Promise<Page> {
    const page = await context.newPage();
    pages.push(page);
    await page.goto(`${server.url}/demo`);
    await page.evaluate((o) => {
      const w = window as unknown as Watch;
      w.sockets = [];
      w.tokenWaiters = [];
      w.seen = [];
      class Watched extends WebSocket {
        constructor(url: string | URL, protocols?: string | string[]) {
          super(url, protocols);
          w.sockets.push(this);
        }
      }
      let calls = 0;
      const token = o.token === 'queued'
        ? () => new Promise<string>((resolve) => w.tokenWaiters.push(resolve))
        : o.token === 'hang-first'
          ? () => (calls++ === 0 ? new Promise<string>(() => {}) : Promise.resolve(o.tokenValue!))
          : o.token;
      const c = w.Herald.connect({
        url: location.origin,
        autoConnect: false,
        WebSocket: Watched,
        token,
        // Long enough that a retry the test did not ask for shows as a stall; short where the test wants retries.
        reconnect: o.reconnectMs
          ? { baseMs: o.reconnectMs, capMs: o.reconnectMs }
          : o.endpoint || o.token === 'hang-first' ? { baseMs: 50, capMs: 100 } : { baseMs: 60_000, capMs: 60_000 },
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
        ...(o.connectTimeoutMs ? { connectTimeoutMs: o.connectTimeoutMs } : {}),
      });
      for (const name of ['connecting', 'connected', 'disconnected', 'reconnecting', 'rejected'] as const) c.events.on(name, () => w.seen.push(name));
    }, options);
    return page;
  }

  it('close() and connect() while the token is still coming open one socket, not one per attempt', async () => {
    const page = await pageWithClient({ token: 'queued' });
    await page.evaluate(() => {
      const c = (window as unknown as Watch).Herald.client!;
      c.connect();
      void c.close();
      c.connect();
    });
    assert.equal(await page.evaluate(() => (window as unknown as Watch).tokenWaiters.length), 2, 'each attempt asked for a token');
    // The abandoned attempt's token comes first, then the current one's.
    const token = await server.token('admin', 31);
    await page.evaluate((t) => {
      for (const resolve of (window as unknown as Watch).tokenWaiters) resolve(t);
    }, token);
    await waitForState(page, 'open');
    assert.equal(await page.evaluate(() => (window as unknown as Watch).sockets.length), 1, 'the abandoned attempt opened no socket');
    assert.equal((await server.api('GET', '/api/v1/online/admin/31')).body.tabs, 1);
  });

  it('connect() right after close() is not undone when the old socket finishes closing', async () => {
    const page = await pageWithClient({ token: 'queued' });
    const token = await server.token('admin', 32);
    await page.evaluate(() => (window as unknown as Watch).Herald.client!.connect());
    await page.evaluate((t) => (window as unknown as Watch).tokenWaiters[0]!(t), token);
    await waitForState(page, 'open');
    // Signing out and in again: the new attempt waits for its token while the old socket closes.
    await page.evaluate(async () => {
      const w = window as unknown as Watch;
      const old = w.sockets[0]!;
      const closed = new Promise((resolve) => old.addEventListener('close', resolve));
      void w.Herald.client!.close();
      w.Herald.client!.connect();
      await closed;
    });
    assert.equal(await page.evaluate(() => (window as unknown as Watch).Herald.client!.state), 'connecting', 'still the new attempt');
    await page.evaluate((t) => (window as unknown as Watch).tokenWaiters[1]!(t), token);
    await waitForState(page, 'open');
    const seen = await page.evaluate(() => (window as unknown as Watch).seen);
    assert.deepEqual(seen, ['connecting', 'connected', 'connecting', 'connected'], 'no retry was scheduled');
    assert.equal(await page.evaluate(() => (window as unknown as Watch).sockets.length), 2);
  });

  it('an answer to the probe of an attempt that close() abandoned does not decide the next attempt', async () => {
    const endpoint = new RefusingEndpoint();
    const port = await endpoint.listen();
    try {
      const page = await pageWithClient({ token: 'static-token', endpoint: `ws://127.0.0.1:${port}/ws/admin`, reconnectMs: 60_000 });
      // The page's own record of when each probe's answer reached it (fetch itself is the browser's).
      await page.evaluate(() => {
        const w = window as unknown as Watch & { probeAnswers: number[] };
        w.probeAnswers = [];
        const fetch0 = window.fetch.bind(window);
        window.fetch = async (...args: Parameters<typeof fetch>) => {
          const res = await fetch0(...args);
          w.probeAnswers.push(res.status);
          return res;
        };
        w.Herald.client!.connect();
      });
      await within(10_000, 'the first probe', endpoint.probes(1));
      // Signed out and in again while the first attempt's probe is out.
      await page.evaluate(() => {
        const c = (window as unknown as Watch).Herald.client!;
        void c.close();
        c.connect();
      });
      await within(10_000, 'the second probe', endpoint.probes(2));
      // The old attempt's probe says "refused" (say, the token of the signed-out session)...
      endpoint.answer(0, 401);
      await page.waitForFunction(() => (window as unknown as { probeAnswers: number[] }).probeAnswers.length === 1, null, { timeout: 10_000 });
      // ...the current attempt's says "unavailable": it must retry, not stop.
      endpoint.answer(1, 503);
      await page.waitForFunction(() => (window as unknown as Watch).seen.some((e) => e === 'reconnecting' || e === 'rejected'), null, { timeout: 10_000 });
      const seen = await page.evaluate(() => (window as unknown as Watch).seen);
      // close() stopped a client that was connecting: `disconnected` says so once (willReconnect false).
      assert.deepEqual(seen, ['connecting', 'disconnected', 'connecting', 'reconnecting']);
      assert.equal(await page.evaluate(() => (window as unknown as Watch).Herald.client!.state), 'waiting');
    } finally {
      await endpoint.close();
    }
  });

  it("a 401 or 403 from a proxy in front of Herald is retried; only Herald's own refusal stops the tab", async () => {
    const endpoint = new RefusingEndpoint();
    const port = await endpoint.listen();
    try {
      const page = await pageWithClient({ token: 'static-token', endpoint: `ws://127.0.0.1:${port}/ws/admin`, reconnectMs: 50 });
      await page.evaluate(() => (window as unknown as Watch).Herald.client!.connect());
      await within(10_000, 'the first probe', endpoint.probes(1));
      endpoint.answerAsProxy(0, 401);
      await within(10_000, 'a second attempt after the proxy\'s 401', endpoint.probes(2));
      endpoint.answerAsProxy(1, 403);
      await within(10_000, 'a third attempt after the proxy\'s 403', endpoint.probes(3));
      endpoint.answer(2, 401);
      await waitForState(page, 'rejected');
      const seen = await page.evaluate(() => (window as unknown as Watch).seen);
      assert.deepEqual(seen, ['connecting', 'reconnecting', 'connecting', 'reconnecting', 'connecting', 'disconnected', 'rejected']);
    } finally {
      await endpoint.close();
    }
  });

  it('gives up on a handshake nobody answers, closes its connection, and retries', async () => {
    const proxy = new HangingProxy(Number(new URL(server.url).port));
    const port = await proxy.listen();
    try {
      const page = await pageWithClient({ token: await server.token('admin', 33), endpoint: `ws://127.0.0.1:${port}/ws/admin`, connectTimeoutMs: 500 });
      await page.evaluate(() => (window as unknown as Watch).Herald.client!.connect());
      // Chromium itself would wait 240 s for this handshake.
      await page.waitForFunction(() => (window as unknown as Watch).seen.includes('reconnecting'), null, { timeout: 10_000 });
      // The hung connection is closed by the page, not left open beside the next one.
      await within(10_000, 'the first held connection closing', (async () => {
        const held = await proxy.firstHeld;
        if (!held.destroyed) await once(held, 'close');
      })());
      proxy.release();
      await waitForState(page, 'open', 15_000);
      assert.equal(await page.evaluate(() => (window as unknown as Watch).Herald.client!.welcome?.ID), 33);
    } finally {
      await proxy.close();
    }
  });

  it('gives up on a token function that never settles, and connects with the next token', async () => {
    const page = await pageWithClient({ token: 'hang-first', tokenValue: await server.token('admin', 34), connectTimeoutMs: 500 });
    await page.evaluate(() => (window as unknown as Watch).Herald.client!.connect());
    await waitForState(page, 'open', 10_000);
    const seen = await page.evaluate(() => (window as unknown as Watch).seen);
    assert.deepEqual(seen, ['connecting', 'reconnecting', 'connecting', 'connected']);
    assert.equal(await page.evaluate(() => (window as unknown as Watch).sockets.length), 1, 'the hung attempt never made a socket');
  });
  it('refuses timings that would make it retry in a loop: a heartbeat, a backoff or a connect timeout of 0 or NaN', async () => {
    const page = await context.newPage();
    pages.push(page);
    await page.goto(`${server.url}/demo`);
    const refused = await page.evaluate(() => {
      const w = window as unknown as W;
      const bad: Array<Record<string, unknown>> = [
        { heartbeatMs: 0 }, { heartbeatMs: -1 }, { heartbeatMs: Number.NaN },
        { reconnect: { baseMs: Number.NaN } }, { reconnect: { baseMs: 100, capMs: Number.NaN } }, { reconnect: { baseMs: 100, capMs: Infinity } },
        { connectTimeoutMs: 0 },
      ];
      return bad.map((o) => {
        try {
          w.Herald.connect({ url: location.origin, autoConnect: false, token: 'x', ...o }).close();
          return 'accepted';
        } catch (e) {
          return (e as Error).name;
        }
      });
    });
    assert.deepEqual(refused, Array(7).fill('TypeError'));
  });
});
