/**
 * Connection attempts in a real Chromium against a real Herald: an attempt
 * abandoned by close() while its token was still coming never opens a
 * socket, and connect() right after close() is not undone by the old
 * socket's close.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, waitForState, type W } from './helpers/browser.js';

/** What these tests keep in the page besides the library's globals. */
type Watch = W & {
  /** Every WebSocket the client constructed, in order. */
  sockets: WebSocket[];
  /** Resolvers of the token promises handed out, in order. */
  tokenWaiters: Array<(token: string) => void>;
  /** Connection events of the client, by name. */
  seen: string[];
};

describe('browser connection attempts in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await Promise.all([startHerald(), launchBrowser()]);
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.context().close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /**
   * A page from Herald (for /herald.js) with a client that is not connected
   * yet, whose WebSockets are recorded and whose token function hands out
   * promises the test resolves (tokenWaiters).
   */
  async function pageWithClient(): Promise<Page> {
    const { page } = await newPage(browser);
    pages.push(page);
    await page.goto(`${server.url}/demo`);
    await page.evaluate(() => {
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
      const token = () => new Promise<string>((resolve) => w.tokenWaiters.push(resolve));
      const c = w.Herald.connect({
        url: location.origin,
        autoConnect: false,
        WebSocket: Watched,
        token,
        // Long enough that a retry the test did not ask for shows as a stall.
        reconnect: { baseMs: 60_000, capMs: 60_000 },
      });
      for (const name of ['connecting', 'connected', 'disconnected', 'reconnecting', 'rejected'] as const) c.events.on(name, () => w.seen.push(name));
    });
    return page;
  }

  it('close() and connect() while the token is still coming open one socket, not one per attempt', async () => {
    const page = await pageWithClient();
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
    const page = await pageWithClient();
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
});
