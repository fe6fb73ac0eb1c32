/**
 * Acks that were lost with the link, in a real Chromium against a real
 * Herald. Acks are batched, so a tab may show a notification and then lose
 * its ack: written onto a socket that turned out dead (the write "worked"),
 * or still waiting when the link dropped and the page was reloaded. The tab
 * then resumes after that notification and is replayed nothing, so its
 * connect must acknowledge it again (docs/browser.md: an ack that could not
 * be sent is sent after the reconnect), or the server keeps it
 * unacknowledged for good and the person's next new tab elsewhere shows it
 * again. What the tab was not shown is not acknowledged that way.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { until } from './helpers/ws-client.js';

async function titles(page: Page): Promise<string[]> {
  return (await recorder(page)).messages.map((m) => String(m.TITLE));
}

describe('acks lost with the link are sent again, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    // A short heartbeat: the tab finds a frozen link dead within about 5 s.
    [server, browser] = await openAll([startHerald({ heartbeatMs: 2000 }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function send(aid: number, title: string): Promise<string> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body.results[0].messageId as string;
  }

  async function acknowledged(id: string): Promise<boolean> {
    return (await server.api('GET', `/api/v1/messages/${encodeURIComponent(id)}`)).body.acknowledged === true;
  }

  /** A new tab of the person in another browser (no storage of this one's) is shown only what it is sent after `marker`'s send. */
  async function newTabElsewhereShows(aid: number, marker: string): Promise<string[]> {
    const other = await newPage(browser);
    try {
      await connectPage(other.page, server.url, await server.token('admin', aid));
      await send(aid, marker);
      await until(async () => (await titles(other.page)).includes(marker), 10_000, `${marker} in the new tab`);
      return await titles(other.page);
    } finally {
      await other.context.close();
    }
  }

  it('an ack written onto a dead link is sent again after the reconnect', async () => {
    const proxy = new FreezableProxy(Number(new URL(server.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { page, context } = await newPage(browser);
    try {
      // The ack goes 0.75–2.25 s after the notification: after the freeze below, before the tab finds the link dead.
      await connectPage(page, base, await server.token('admin', 21), { reconnect: { baseMs: 50, capMs: 200 }, ackDelayMs: 1500 });
      const id = await send(21, 'once');
      await waitForMessages(page, 1);
      assert.ok(proxy.freeze() >= 1);
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'connected').length === 2, null, { timeout: 20_000 });
      await until(() => acknowledged(id), 10_000, 'the ack of what the tab showed, after its reconnect');
      assert.deepEqual(await newTabElsewhereShows(21, 'marker'), ['marker'], 'the new tab was not shown again what the first one showed');
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('a notification shown before the link dropped is acknowledged by the page reloaded meanwhile', async () => {
    const { page, context } = await newPage(browser);
    try {
      // A minute between attempts: the page is reloaded while it waits, its ack still pending.
      await connectPage(page, server.url, await server.token('admin', 22), { reconnect: { baseMs: 60_000, capMs: 60_000 }, ackDelayMs: 60_000 });
      const id = await send(22, 'shown');
      await waitForMessages(page, 1);
      // The link drops without a close notice; pagehide at the reload finds no socket for the ack.
      for (const c of server.herald.gateway.connections) if (c.principal.id === 22) c.terminate();
      await waitForState(page, 'waiting');
      await connectPage(page, server.url, await server.token('admin', 22));
      assert.equal((await page.evaluate(() => (window as W).Herald.client!.cursors())).own?.SEQ, 1, 'the reloaded page resumed after what it showed');
      await until(() => acknowledged(id), 10_000, 'the ack of what the page showed before its reload');
      assert.deepEqual(await titles(page), [], 'nothing shown twice');
      assert.deepEqual(await newTabElsewhereShows(22, 'marker'), ['marker']);
    } finally {
      await context.close();
    }
  });

  it('what reached the page after its pagehide is neither acknowledged by the reloaded page nor lost to it: it is shown there', async () => {
    const { page, context } = await newPage(browser);
    try {
      await connectPage(page, server.url, await server.token('admin', 23), { reconnect: { baseMs: 60_000, capMs: 60_000 }, ackDelayMs: 60_000 });
      const shown = await send(23, 'before');
      await waitForMessages(page, 1);
      // The page is being left: pagehide sends its acks; a frame may still arrive until the socket ends.
      await page.evaluate(() => window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false })));
      await until(() => acknowledged(shown), 10_000, 'the ack sent at pagehide');
      const late = await send(23, 'late');
      await waitForMessages(page, 2);
      for (const c of server.herald.gateway.connections) if (c.principal.id === 23) c.terminate();
      await waitForState(page, 'waiting');
      await connectPage(page, server.url, await server.token('admin', 23));
      await waitForMessages(page, 1);
      assert.deepEqual(await titles(page), ['late'], 'the reloaded page shows what only the page being left got');
      // Shown now, and acknowledged with the reloaded page's own batched ack (its default, about a second).
      await until(() => acknowledged(late), 10_000, 'the ack of what the reloaded page showed');
    } finally {
      await context.close();
    }
  });
});
