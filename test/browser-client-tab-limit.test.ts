/**
 * A tab past maxTabsPerPerson, in a real Chromium against a real Herald: the
 * handshake is refused with 429 HERALD_ERR_TOO_MANY_TABS, which a page sees
 * only as a failed WebSocket (1006). The library must treat it as "try again
 * later" — retry with a backoff that keeps growing, not stop for good and not
 * hammer — and get in once another tab of that person closes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

describe('a tab past maxTabsPerPerson, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    [server, browser] = await openAll([startHerald({ maxTabsPerPerson: 1 }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('backs off with growing delays while refused, never gives up, and gets in when a place frees', async () => {
    const other = await server.tab('admin', 5);
    const { page, context } = await newPage(browser);
    try {
      const baseMs = 50;
      const capMs = 800;
      await connectPage(page, server.url, await server.token('admin', 5), { reconnect: { baseMs, capMs }, waitOpen: false });
      // Six refusals in a row: each retry's delay ceiling doubles (the attempt count is not reset by a refusal).
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length >= 6, undefined, { timeout: 15_000 });
      const rec = await recorder(page);
      const retries = rec.events.filter((e) => e.name === 'reconnecting').map((e) => e.payload as { attempt: number; delayMs: number });
      assert.deepEqual(retries.slice(0, 6).map((r) => r.attempt), [1, 2, 3, 4, 5, 6], 'the backoff keeps growing across refusals');
      for (const r of retries) assert.ok(r.delayMs <= Math.min(capMs, baseMs * 2 ** (r.attempt - 1)), `delay ${r.delayMs} ms within the ceiling of attempt ${r.attempt}`);
      assert.ok(!rec.states.includes('rejected'), `a full house is not a refused credential: ${rec.states.join(',')}`);
      assert.equal((await server.api('GET', '/api/v1/online/admin/5')).body.tabs, 1, 'the refused tab holds no place');
      other.terminate();
      await waitForState(page, 'open', 10_000);
      assert.equal((await server.api('GET', '/api/v1/online/admin/5')).body.tabs, 1);
    } finally {
      await context.close();
    }
  });
});
