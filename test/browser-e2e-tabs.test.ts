/**
 * One admin's tabs in a real Chromium against a real Herald: two tabs, one
 * of them a background page the browser froze; a tab that goes offline for
 * a while and comes back; a tab closed right after a toast and a new one
 * opened. What docs/browser.md promises about each: every tab gets every
 * notification once, a tab back online catches up without a reload, and a
 * new tab gets only what no tab of that person has acknowledged.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForMessages, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { until } from './helpers/ws-client.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function titles(page: Page): Promise<string[]> {
  return (await recorder(page)).messages.map((m) => String(m.TITLE));
}

async function toastTitles(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const root = document.getElementById('herald-toasts')?.shadowRoot;
    return [...(root?.querySelectorAll('.herald-toast[data-type="MESSAGE"] .herald-title') ?? [])].map((t) => t.textContent ?? '');
  });
}

describe('browser end to end: background, offline, closed and reopened tabs', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  /** Shared by the tests that leave the context as it is, each with an admin of its own; the offline test takes its own. */
  let context: BrowserContext;
  before(async () => {
    [server, browser] = await openAll([startHerald({}), launchBrowser()]);
    context = await sharedContext(browser);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function send(aid: number, title: string): Promise<{ messageId: string; seq: number }> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.results[0] as { messageId: string; seq: number };
  }

  it('two tabs of one admin, one a frozen background page: both show every notification once, the frozen one when it wakes', async () => {
    const front = await newTab(context);
    const back = await newTab(context);
    await connectPage(front, server.url, await server.token('admin', 21));
    await connectPage(back, server.url, await server.token('admin', 21));
    await front.bringToFront();
    // What Chromium does to a background tab after a while: freeze it (no script runs, no event is handled).
    const cdp = await context.newCDPSession(back);
    await cdp.send('Page.setWebLifecycleState', { state: 'frozen' });
    const sent = ['f1', 'f2', 'f3', 'f4'];
    for (const t of sent) await send(21, t);
    await waitForMessages(front, sent.length);
    await cdp.send('Page.setWebLifecycleState', { state: 'active' });
    await waitForMessages(back, sent.length);
    await send(21, 'f5');
    await Promise.all([front, back].map((p) => waitForMessages(p, 5)));
    await delay(200); // a duplicate would come right behind
    for (const p of [front, back]) {
      assert.deepEqual(await titles(p), [...sent, 'f5']);
      assert.deepEqual(await toastTitles(p), [...sent, 'f5'].slice(-5));
    }
    assert.equal((await server.api('GET', '/api/v1/online/admin/21')).body.tabs, 2);
    await cdp.detach();
    await Promise.all([front.close(), back.close()]);
  });

  it('a tab that goes offline for a while catches up when it comes back: everything once, in order, without a reload or a minute of silence', async () => {
    // Chromium's offline emulation fires `offline`/`online` and fails new
    // connections, but leaves an open WebSocket working; a real network that
    // went away (Wi-Fi lost, another network joined) leaves it dead. The
    // proxy plays that part: its connections stop carrying bytes.
    const proxy = new FreezableProxy(Number(new URL(server.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { context, page } = await newPage(browser);
    try {
      await connectPage(page, base, await server.token('admin', 22), { reconnect: { baseMs: 100, capMs: 400 } });
      await send(22, 'o1');
      await waitForMessages(page, 1);
      await context.setOffline(true);
      assert.ok(proxy.freeze() >= 1);
      await send(22, 'o2');
      await send(22, 'o3');
      await delay(300); // offline for a while: the page has heard `offline` and its socket carries nothing
      await context.setOffline(false);
      await send(22, 'o4');
      // The heartbeat (25 s: silence is a dead link after 62.5 s) must not be what brings the tab back.
      await waitForMessages(page, 4, 12_000);
      await delay(300);
      assert.deepEqual(await titles(page), ['o1', 'o2', 'o3', 'o4']);
      assert.deepEqual(await toastTitles(page), ['o1', 'o2', 'o3', 'o4']);
      const rec = await recorder(page);
      const connected = rec.events.filter((e) => e.name === 'connected').map((e) => (e.payload as { resumed: boolean }).resumed);
      assert.deepEqual(connected, [false, true], 'reconnected once, resuming from its cursor');
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('a tab closed right after its toasts, then a new tab: the new one shows only what came meanwhile', async () => {
    const page = await newTab(context);
    await connectPage(page, server.url, await server.token('admin', 23));
    await send(23, 'c1');
    await send(23, 'c2');
    await waitForMessages(page, 2);
    // Closed well before the batched ack (about 1 s) is due: pagehide must send it.
    await page.close({ runBeforeUnload: true });
    // close() with runBeforeUnload does not wait for the page to go: c3 is sent once the server
    // has seen the tab leave, or the closing page may still get it (and then c3 is not "meanwhile").
    await until(async () => (await server.api('GET', '/api/v1/online/admin/23')).body.tabs === 0, 10_000, 'the closed tab to leave');
    await send(23, 'c3');
    const reopened = await newTab(context);
    await connectPage(reopened, server.url, await server.token('admin', 23));
    await send(23, 'c4');
    await waitForMessages(reopened, 2);
    await delay(300);
    assert.deepEqual(await titles(reopened), ['c3', 'c4'], 'what the closed tab showed is not shown again');
    assert.deepEqual(await toastTitles(reopened), ['c3', 'c4']);
    await reopened.close();
  });

  it('a notification that reaches a page after its pagehide is shown by the next tab (the leaving page did not show it)', async () => {
    const page = await newTab(context);
    // No ack of its own before the test is done with it: only pagehide sends one.
    await connectPage(page, server.url, await server.token('admin', 24), { ackDelayMs: 60_000 });
    await send(24, 'p1');
    await waitForMessages(page, 1);
    // The page is being left: pagehide fires (its acks go out), then frames may still arrive until the socket ends.
    await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false })));
    await send(24, 'p2');
    await waitForMessages(page, 2);
    const next = await newTab(context);
    await connectPage(next, server.url, await server.token('admin', 24));
    await waitForMessages(next, 1);
    await delay(300);
    assert.deepEqual(await titles(next), ['p2'], 'p2 reached only a page being left: the next tab shows it; p1 was acked at pagehide');
    await Promise.all([page.close(), next.close()]);
  });
});
