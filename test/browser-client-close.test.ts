/**
 * close() called from the page's own connection listeners, in a real
 * Chromium against a real Herald. A page that reacts to `disconnected` (or
 * to a failed token) by closing the client — a logout handler, "stop and
 * show a banner" — must be obeyed: the client stays closed and opens no
 * new socket behind the page's back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, type W } from './helpers/browser.js';

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
    [server, browser] = await Promise.all([startHerald({ maxFrameBytes: 256 }), launchBrowser()]);
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
