/**
 * A server that refuses the tab, in a real Chromium against a real Herald
 * behind a proxy that counts what the browser sends: WebSocket handshakes
 * (GET with Upgrade) and credential probes (POST). docs/browser.md says:
 * Herald's 401 (an expired token) and 403 (a forbidden Origin) stop the tab
 * for good, with `rejected`; 429 (too many tabs) and 503 (the server cannot
 * check credentials now, or is shutting down) are retried with a backoff
 * that grows — never a tight loop. A token that expires under a live tab
 * (4419) is not a refusal: the tab reconnects with a fresh one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { mintToken } from '../src/server/auth/token-resolver.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Forwards TCP to Herald and counts the requests that open each connection by method and path. */
class CountingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** "GET /ws/admin", "POST /ws/admin", … in arrival order. */
  readonly requests: string[] = [];

  constructor(targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      this.#sockets.add(client).add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#sockets.delete(client);
        this.#sockets.delete(upstream);
      };
      // With Herald down, the upstream connect is refused at once, often
      // before the browser's request has arrived: the client is then kept
      // until its request is read, so that every attempt is counted.
      let requested = false;
      let upstreamGone = false;
      // Chromium sends the probe on a kept-alive connection (the one that
      // loaded the page), so every request line counts, not only the first.
      client.on('data', (chunk: Buffer) => {
        for (const m of chunk.toString('latin1').matchAll(/(?:^|\r\n)(GET|POST) (\S+) HTTP\/1\.1\r\n/g)) {
          this.requests.push(`${m[1]!} ${new URL(m[2]!, 'http://x').pathname}`);
        }
        requested = true;
        if (upstreamGone) end();
      });
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('error', end).on('close', end);
      const upstreamEnded = () => {
        upstreamGone = true;
        if (requested) end();
        else setTimeout(end, 2000).unref();
      };
      upstream.on('error', upstreamEnded).on('close', upstreamEnded);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  count(what: string): number {
    return this.requests.filter((r) => r === what).length;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

type Rec = Awaited<ReturnType<typeof recorder>>;
const named = (rec: Rec, name: string) => rec.events.filter((e) => e.name === name).map((e) => e.payload as Record<string, unknown>);

describe('browser end to end: a server that refuses the tab', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  /** Shared by the tests, each on an origin of its own (a proxy, or a server, on a port of its own). */
  let context: BrowserContext;
  before(async () => {
    browser = await launchBrowser();
    context = await sharedContext(browser);
  });
  after(async () => {
    await browser?.close();
  });

  /** A page of `server`'s origin whose client goes through a counting proxy. */
  async function tabThroughProxy(server: TestServer, token: string | undefined): Promise<{ page: Page; proxy: CountingProxy; close: () => Promise<void> }> {
    const proxy = new CountingProxy(Number(new URL(server.url).port));
    const base = await proxy.listen();
    // A context (so a renderer process) of its own: Chromium delays a
    // process's WebSocket handshakes by the failures it has seen lately,
    // up to seconds, so a tab must not inherit the previous tests' refusals.
    const { page, context } = await newPage(browser);
    // The panel's session cookie, for the http resolver (the token resolver ignores it).
    await context.addCookies([{ name: 'sid', value: '0123456789abcdef', url: base }]);
    // The page is served through the proxy too, so that the probe is same-origin, as for a panel that hosts Herald behind its own origin.
    await connectPage(page, base, token ?? '', { waitOpen: false, reconnect: { baseMs: 50, capMs: 200 } });
    return { page, proxy, close: async () => { await context.close(); await proxy.close(); } };
  }

  /** The tab stopped for good: one handshake and one probe, then nothing for a while that a retrying tab would have used. */
  async function assertStopped(page: Page, proxy: CountingProxy, code: number): Promise<void> {
    await waitForState(page, 'rejected');
    await delay(500); // with a 50–200 ms backoff (the first retry within 50 ms), a retrying tab would have tried several times by now
    const rec = await recorder(page);
    assert.deepEqual(named(rec, 'rejected').map((r) => r.code), [code]);
    assert.deepEqual(named(rec, 'disconnected').map((d) => d.willReconnect), [false]);
    assert.equal(named(rec, 'reconnecting').length, 0);
    assert.equal(rec.states.filter((s) => s === 'connecting').length, 1);
    assert.equal(proxy.count('GET /ws/admin'), 1, `one handshake: ${proxy.requests.join(', ')}`);
    assert.equal(proxy.count('POST /ws/admin'), 1, 'one probe');
  }

  /** The tab retries with a growing backoff: a few attempts in the window, not a tight loop, and no `rejected`. */
  async function assertRetrying(page: Page, proxy: CountingProxy): Promise<void> {
    const attemptsMade = () => page.evaluate(() => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length);
    await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length >= 4, null, { timeout: 10_000 });
    const [handshakesBefore, attemptsBefore] = [proxy.count('GET /ws/admin'), await attemptsMade()];
    await delay(1000);
    // Past the 3rd attempt each delay is uniform in [0, 200 ms]: about 10 in 1 s; a tight loop makes hundreds.
    const handshakes = proxy.count('GET /ws/admin') - handshakesBefore;
    const attempts = (await attemptsMade()) - attemptsBefore;
    assert.ok(handshakes <= 30 && attempts <= 30, `${attempts} attempts and ${handshakes} handshakes in 1 s`);
    // And it goes on trying. Counted as the library's attempts, not as handshakes: after many
    // failed ones Chromium itself holds a page's next handshake back, for up to 5 s.
    await page.waitForFunction((n) => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length > n, attemptsBefore, { timeout: 10_000 });
    const rec = await recorder(page);
    assert.equal(named(rec, 'rejected').length, 0);
    assert.ok(!rec.states.includes('rejected'));
    assert.deepEqual(named(rec, 'reconnecting').map((r) => r.attempt as number).slice(0, 4), [1, 2, 3, 4], 'the backoff grows across refusals');
  }

  it('401 for an expired token: stops, `rejected` 4401, no retries', async () => {
    const server = await startHerald({});
    const expired = await mintToken(server.secret, { kind: 'admin', id: 31 }, 60_000, Date.now() - 3_600_000);
    const t = await tabThroughProxy(server, expired);
    try {
      await assertStopped(t.page, t.proxy, 4401);
    } finally {
      await t.close();
      await server.close();
    }
  });

  it('403 for an Origin not allowed: stops, `rejected` 4403, no retries', async () => {
    const server = await startHerald({ allowedOrigins: ['https://panel.example.net'] });
    const t = await tabThroughProxy(server, await server.token('admin', 32));
    try {
      await assertStopped(t.page, t.proxy, 4403);
    } finally {
      await t.close();
      await server.close();
    }
  });

  it('429 for too many tabs: retried with a growing backoff, in once a place frees', async () => {
    const server = await startHerald({ maxTabsPerPerson: 1 });
    const other = await server.tab('admin', 33);
    const t = await tabThroughProxy(server, await server.token('admin', 33));
    try {
      await assertRetrying(t.page, t.proxy);
      other.terminate();
      await waitForState(t.page, 'open');
    } finally {
      await t.close();
      await server.close();
    }
  });

  it('503 while credentials cannot be checked: retried with a growing backoff, in once they can', async () => {
    let up = false;
    const panel: HttpServer = createHttpServer((_req, res) => {
      res.writeHead(up ? 200 : 500, { 'content-type': 'application/json' }).end(up ? JSON.stringify({ kind: 'admin', id: 34 }) : '{}');
    });
    await new Promise<void>((resolve) => panel.listen(0, '127.0.0.1', resolve));
    const server = await startHerald({ authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`, authCacheMs: 0, authNegativeCacheMs: 0 });
    const t = await tabThroughProxy(server, undefined);
    try {
      await assertRetrying(t.page, t.proxy);
      assert.ok(t.proxy.count('POST /ws/admin') >= 4, 'each failed handshake was probed');
      up = true;
      await waitForState(t.page, 'open');
    } finally {
      await t.close();
      await server.close();
      await new Promise<void>((resolve) => panel.close(() => resolve()));
    }
  });

  it('the server shuts down (1001) and stays away: retried with a growing backoff, never `rejected`', async () => {
    const server = await startHerald({});
    const t = await tabThroughProxy(server, await server.token('admin', 35));
    try {
      await waitForState(t.page, 'open');
      await server.close();
      await assertRetrying(t.page, t.proxy);
      const rec = await recorder(t.page);
      const disconnected = named(rec, 'disconnected');
      assert.deepEqual([disconnected[0]?.code, disconnected[0]?.willReconnect], [1001, true]);
      // Once per outage: the failed attempts after it are `reconnecting` alone.
      assert.equal(disconnected.length, 1, JSON.stringify(disconnected));
    } finally {
      await t.close();
    }
  });

  it('a token that expires under a live tab (4419): reconnects with a fresh one from the token function, nothing lost', async () => {
    const server = await startHerald({ sessionRecheckMs: 300 });
    const page = await newTab(context);
    try {
      await page.goto(`${server.url}/demo`);
      // Tokens of 2 s (whole seconds in `exp`), minted by the test's "panel" on each call.
      await page.exposeFunction('freshToken', () => mintToken(server.secret, { kind: 'admin', id: 36 }, 2000));
      await page.evaluate(() => {
        const w = window as W & { freshToken: () => Promise<string> };
        const rec = { frames: [], messages: [], states: [], events: [] } as W['rec'];
        w.rec = rec;
        const c = w.Herald.connect({ kind: 'admin', token: () => w.freshToken(), url: location.origin, reconnect: { baseMs: 50, capMs: 400 } });
        c.events.on('state', (s) => rec.states.push(s));
        for (const name of ['connected', 'disconnected', 'rejected'] as const) c.events.on(name, (p: unknown) => rec.events.push({ name, payload: JSON.parse(JSON.stringify(p)) as unknown }));
        c.on('MESSAGE', (m) => { rec.messages.push(m); });
      });
      await page.waitForFunction(() => (window as W).rec.events.some((e) => e.name === 'disconnected' && (e.payload as { code: number }).code === 4419), null, { timeout: 10_000 });
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'connected').length >= 2, null, { timeout: 10_000 });
      const res = await server.api('POST', '/api/v1/send', { to: { aid: 36 }, message: { TYPE: 'MESSAGE', TITLE: 'after 4419', TEXT: 'x' } });
      assert.equal(res.status, 200);
      const messages = await waitForMessages(page, 1);
      assert.deepEqual(messages.map((m) => m.TITLE), ['after 4419']);
      const rec = await recorder(page);
      assert.equal(named(rec, 'rejected').length, 0);
    } finally {
      await page.close();
      await server.close();
    }
  });
});
