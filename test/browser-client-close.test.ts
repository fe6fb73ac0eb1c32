/**
 * close() called from the page's own connection listeners, in a real
 * Chromium against a real Herald. A page that reacts to `disconnected` (or
 * to a failed token) by closing the client — a logout handler, "stop and
 * show a banner" — must be obeyed: the client stays closed and opens no
 * new socket behind the page's back.
 *
 * And close() on a link that went dead (the network went away, nothing
 * closed): the server cannot answer the CLOSE_REQUEST, and Chromium's own
 * close handshake waits a minute or more, so the client gives up on the
 * socket after its grace and is closed then, as the page asked.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

type Page = Awaited<ReturnType<typeof newPage>>['page'];

/** The client's state after whatever the current task and its timers of 0 ms still do. */
function settledState(page: Page): Promise<string | undefined> {
  return page.evaluate(() => new Promise<string | undefined>((resolve) => setTimeout(() => resolve((window as W).Herald.client?.state), 0)));
}

describe('close() from a connection listener, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    // Small frames, so that the page can make the server close its tab with 4413 (a close the client retries).
    [server, browser] = await openAll([startHerald({ maxFrameBytes: 256 }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('a disconnected listener that calls close() stops the client: no retry, no new tab', async () => {
    const { page, context } = await newPage(browser);
    try {
      await connectPage(page, server.url, await server.token('admin', 21), { reconnect: { baseMs: 20, capMs: 20 } });
      await page.evaluate(() => {
        const w = window as W & { closedBy?: boolean };
        const c = w.Herald.client!;
        c.events.on('disconnected', (e) => {
          if (!e.willReconnect) return;
          w.closedBy = true;
          void c.close();
        });
        // Too large a frame: the server closes this tab with 4413, which the client would retry.
        c.send({ TYPE: 'PING', PAD: 'x'.repeat(400) } as never);
      });
      await page.waitForFunction(() => (window as W & { closedBy?: boolean }).closedBy === true, undefined, { timeout: 10_000 });
      assert.equal(await settledState(page), 'closed', 'the client stays closed');
      // A retry would come within 20 ms; give it ten times that to show.
      await page.evaluate(() => new Promise((r) => setTimeout(r, 200)));
      const rec = await page.evaluate(() => (window as W).rec.states);
      assert.equal(rec.lastIndexOf('connecting'), 0, `no attempt after close(): ${rec.join(',')}`);
      assert.equal((await server.api('GET', '/api/v1/online/admin/21')).body.tabs, 0);
    } finally {
      await context.close();
    }
  });

  it('a state listener that calls close() on "open" gets no `connected` after it', async () => {
    const { page, context } = await newPage(browser);
    try {
      const token = await server.token('admin', 23);
      await page.goto(`${server.url}/demo`);
      await page.evaluate((t) => {
        const w = window as W & { order: string[] };
        w.order = [];
        const c = w.Herald.connect({ kind: 'admin', token: t, url: location.origin, autoConnect: false, toasts: false });
        c.events.on('state', (s) => {
          w.order.push(`state:${s}`);
          if (s === 'open') void c.close();
        });
        for (const name of ['connected', 'disconnected'] as const) c.events.on(name, () => w.order.push(name));
        c.connect();
      }, token);
      await waitForState(page, 'closed');
      const order = await page.evaluate(() => (window as unknown as { order: string[] }).order);
      assert.deepEqual(order, ['state:connecting', 'state:open', 'state:closing', 'state:closed', 'disconnected'], 'the page closed the client before it was told it connected');
    } finally {
      await context.close();
    }
  });

  it('close() and connect() in an error listener of a failed token leave one attempt, which connects', async () => {
    const { page, context } = await newPage(browser);
    try {
      const token = await server.token('admin', 22);
      await page.goto(`${server.url}/demo`);
      await page.evaluate((t) => {
        const w = window as W;
        let calls = 0;
        const c = w.Herald.connect({
          url: location.origin, autoConnect: false, reconnect: { baseMs: 60_000, capMs: 60_000 },
          token: () => (calls++ === 0 ? Promise.reject(new Error('token endpoint restarting')) : t),
        });
        // Sign in again at once when the token fails: the new attempt must not be swallowed by a retry of the old.
        const off = c.events.on('error', () => {
          off();
          void c.close();
          c.connect();
        });
        c.connect();
      }, token);
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
    } finally {
      await context.close();
    }
  });
});

describe('close() on a dead link, in Chromium', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  /** Connects a page through a proxy, freezes the link, waits `afterMs`, then closes the client; what close() did, and how long it took. */
  async function closeOnDeadLink(server: TestServer, aid: number, afterMs: number): Promise<{ ms: number; state: string; disconnected: unknown[] }> {
    const proxy = new FreezableProxy(Number(new URL(server.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { page, context } = await newPage(browser);
    try {
      await connectPage(page, base, await server.token('admin', aid));
      assert.ok(proxy.freeze() >= 1);
      return await page.evaluate(async (afterMs) => {
        await new Promise((r) => setTimeout(r, afterMs));
        const c = (window as W).Herald.client!;
        const disconnected: unknown[] = [];
        c.events.on('disconnected', (e) => disconnected.push(e));
        const t0 = performance.now();
        // Far from the grace (3 s); Chromium's own close handshake on a dead link took 63 s.
        const ms = await Promise.race([c.close().then(() => performance.now() - t0), new Promise<number>((r) => setTimeout(() => r(-1), 30_000))]);
        return { ms, state: c.state, disconnected };
      }, afterMs);
    } finally {
      await context.close();
      await proxy.close();
    }
  }

  it('resolves after its grace, closed by the client: 1000 "client closed", no reconnect', async () => {
    // A heartbeat too long for the dead-link check to end it first.
    const server = await startHerald({ heartbeatMs: 60_000 });
    try {
      const closed = await closeOnDeadLink(server, 31, 0);
      assert.ok(closed.ms >= 0, 'close() had not resolved 30 s after it was called');
      assert.equal(closed.state, 'closed');
      assert.deepEqual(closed.disconnected, [{ code: 1000, reason: 'client closed', willReconnect: false }]);
    } finally {
      await server.close();
    }
  });

  it('the dead-link check does not end the close with "no heartbeat" meanwhile', async () => {
    // 2 s heartbeats: the link is taken for dead 5 s after its last frame, during the grace of a close() 2.5 s after the freeze.
    const server = await startHerald({ heartbeatMs: 2000 });
    try {
      const closed = await closeOnDeadLink(server, 32, 2500);
      assert.ok(closed.ms >= 0, 'close() had not resolved 30 s after it was called');
      assert.equal(closed.state, 'closed');
      assert.deepEqual(closed.disconnected, [{ code: 1000, reason: 'client closed', willReconnect: false }]);
    } finally {
      await server.close();
    }
  });
});
