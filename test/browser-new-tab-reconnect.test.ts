/**
 * A tab that has had no notification yet on a stream reconnects from where
 * it was replayed when it connected (WELCOME's ACKED), not as a new tab. As a
 * new tab it was replayed only what nobody had acknowledged, so what another
 * tab of the person (or, on the broadcast stream, any tab of the kind)
 * acknowledged during its outage never reached it. Real Chromium pages
 * behind a TCP proxy that cuts their connections, a real Herald.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { FreezableProxy } from './helpers/freezable-proxy.js';

describe('a tab reconnecting before its first notification', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let proxy: FreezableProxy;

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    proxy = new FreezableProxy(Number(new URL(server.url).port));
    await proxy.listen();
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await server?.close();
  });

  async function send(to: Record<string, unknown>, title: string): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  async function connected(aid: number): Promise<Page> {
    const { page } = await newPage(browser);
    await connectPage(page, `http://127.0.0.1:${proxy.port}`, await server.token('admin', aid), { reconnect: { baseMs: 100, capMs: 400 }, ackDelayMs: 50 });
    return page;
  }

  const titles = (page: Page) => page.evaluate(() => (window as W).rec.messages.map((m) => m.TITLE));

  it('is replayed what another tab acknowledged during its outage, on its own stream and the broadcast stream', async () => {
    proxy.down = false;
    const page = await connected(21);
    // Its cursors come from WELCOME: nothing shown yet, and nothing replayed twice.
    const cursors = await page.evaluate(() => (window as W).Herald.client!.cursors());
    assert.equal(cursors.own?.SEQ, 0);
    assert.equal(typeof cursors.broadcast?.SEQ, 'number');
    // Another tab of the same admin, on another device, and another admin: both show and ack.
    const other = await server.tab('admin', 21);
    const colleague = await server.tab('admin', 22);
    await Promise.all([other.nextOfType('WELCOME'), colleague.nextOfType('WELCOME')]);

    proxy.cut();
    await waitForState(page, 'waiting');
    await send({ aid: 21 }, 'own, during the outage');
    await send({ all: 'admins' }, 'broadcast, during the outage');
    const own = await other.next((f) => f?.TITLE === 'own, during the outage');
    other.send({ TYPE: 'RESPONSE', SEQ: own.SEQ, EPOCH: own.EPOCH });
    const broadcast = await colleague.next((f) => f?.TITLE === 'broadcast, during the outage');
    colleague.send({ TYPE: 'RESPONSE', SEQ: broadcast.SEQ, EPOCH: broadcast.EPOCH, STREAM: '*' });
    // Both acks are in before the tab comes back: a new tab would now be replayed neither.
    await new Promise((resolve) => setTimeout(resolve, 300));

    proxy.down = false;
    await waitForState(page, 'open', 15_000);
    await waitForMessages(page, 2, 10_000);
    await send({ aid: 21 }, 'after');
    await waitForMessages(page, 3, 10_000);
    assert.deepEqual((await titles(page)).sort(), ['after', 'broadcast, during the outage', 'own, during the outage']);
    other.terminate();
    colleague.terminate();
    await page.close();
  });

  it('a new tab is still not replayed what was acknowledged before it connected', async () => {
    proxy.down = false;
    const other = await server.tab('admin', 23);
    await other.nextOfType('WELCOME');
    await send({ aid: 23 }, 'read elsewhere');
    const f = await other.next((x) => x?.TITLE === 'read elsewhere');
    other.send({ TYPE: 'RESPONSE', SEQ: f.SEQ, EPOCH: f.EPOCH });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const page = await connected(23);
    assert.equal((await page.evaluate(() => (window as W).Herald.client!.cursors())).own?.SEQ, f.SEQ, 'its cursor starts after what was acknowledged');
    await send({ aid: 23 }, 'new');
    await waitForMessages(page, 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(await titles(page), ['new']);
    other.terminate();
    await page.close();
  });
});
