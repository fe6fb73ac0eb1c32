/**
 * `client.welcome` in a real Chromium against a real Herald: the last
 * WELCOME frame (docs/browser.md), kept while the client retries during an
 * outage and replaced by the next one. The tab's desktop notifier agrees
 * with the person's other tabs under a name made from it, so in an outage
 * too the tab tells them when it is hidden; and a tab signed in as somebody
 * else is counted for the new person, no longer for the previous one.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

/** The tabs of admin `aid` that told the others they are visible (desktop.ts's record), by tab. */
function visibleTabs(page: Page, aid: number): Promise<string[]> {
  return page.evaluate((aid) => {
    const c = (window as W).Herald.client!;
    const raw = localStorage.getItem(`herald:desktop-visible:${c.endpoint}#${aid}`);
    return Object.keys((JSON.parse(raw ?? 'null') as Record<string, number> | null) ?? {});
  }, aid);
}

/** Pretends the page became hidden (headless Chromium shows every page), and tells the library as the browser would. */
function hide(page: Page): Promise<void> {
  return page.evaluate(() => {
    Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  });
}

describe('client.welcome, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    [server, browser] = await openAll([startHerald({}), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('stays the last WELCOME during an outage: the tab that goes hidden then still tells the others', async () => {
    const proxy = new FreezableProxy(Number(new URL(server.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { page, context } = await newPage(browser);
    try {
      await context.grantPermissions(['notifications'], { origin: base });
      await connectPage(page, base, await server.token('admin', 41), { reconnect: { baseMs: 50, capMs: 100 } });
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.desktop.enable()), 'granted');
      assert.equal((await visibleTabs(page, 41)).length, 1, 'the visible tab says so');
      proxy.cut();
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length >= 3, null, { timeout: 10_000 });
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.welcome?.ID), 41, 'the client connected once: `welcome` is that WELCOME while it retries');
      await hide(page);
      assert.deepEqual(await visibleTabs(page, 41), [], 'hidden during the outage: the person is no longer taken to be looking at it');
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('is replaced by the next WELCOME: signed in as somebody else, the tab is no longer counted for the previous person', async () => {
    const { page, context } = await newPage(browser);
    try {
      await context.grantPermissions(['notifications'], { origin: server.url });
      const first = await server.token('admin', 42);
      const second = await server.token('admin', 43);
      await page.goto(`${server.url}/demo`);
      await page.evaluate(({ first, second }) => {
        const w = window as W & { signedInAs: string };
        w.signedInAs = 'first';
        w.Herald.connect({ kind: 'admin', url: location.origin, toasts: false, reconnect: { baseMs: 50, capMs: 100 }, token: () => (w.signedInAs === 'second' ? second : first) });
      }, { first, second });
      await waitForState(page, 'open');
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.desktop.enable()), 'granted');
      assert.equal((await visibleTabs(page, 42)).length, 1);
      await page.evaluate(() => {
        (window as W & { signedInAs: string }).signedInAs = 'second';
      });
      for (const c of server.herald.gateway.connections) if (c.principal.id === 42) c.terminate();
      await page.waitForFunction(() => (window as W).Herald.client!.welcome?.ID === 43 && (window as W).Herald.client!.state === 'open', null, { timeout: 10_000 });
      assert.deepEqual(await visibleTabs(page, 42), [], 'not the previous person’s tab any more');
      assert.equal((await visibleTabs(page, 43)).length, 1, 'the new person’s visible tab');
    } finally {
      await context.close();
    }
  });
});
