/**
 * README's migration step 4: the panel's pages load /herald.js instead of
 * the old browser script and keep the global `AMessageChecker`. In a real
 * Chromium against a real Herald, with a page server that plays the panel:
 * its footer (which calls `AMessageChecker.start(EVENT_PARAMS)` before its
 * `extend`) and, on two of the pages, a messageChecker.js of its own that
 * loads before or after herald.js. Both scripts below are this test's own
 * minimal stand-ins with the old object's members, not the panel's code.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

/** The panel's own messageChecker.js, as a stand-in: its own handlers, start, showMessage; `pagePoll` plays its polling. */
const PAGE_CHECKER = `
var AMessageChecker = (function () {
  var handlers = {};
  function processData(data) {
    (handlers[data.TYPE] || []).forEach(function (callback) { callback(data); });
  }
  window.pagePoll = processData;
  return {
    start: function (parameters) { window.pageStarted = parameters; },
    stop: function () { window.pageStopped = true; },
    extend: function (ext) { (handlers[ext.TYPE] = handlers[ext.TYPE] || []).push(ext.CALLBACK); },
    processData: processData,
    unsubscribe: function () {},
    seenMessage: function () {},
    showMessage: function (message) { window.pageShown.push(message.TITLE); }
  };
})();`;

/** The panel's page footer, unchanged by the migration. */
const FOOTER = `<script>
var EVENT_PARAMS = { portal: 'admin', interval: 30000 };
if (typeof EVENT_PARAMS !== 'undefined' && AMessageChecker) { AMessageChecker.start(EVENT_PARAMS); }
AMessageChecker.extend({ TYPE: 'EVENT', CALLBACK: function (data) { window.footerEvents.push(data.TEXT); } });
window.footerDone = true;
</script>`;

const HEAD = `<!doctype html><meta charset="utf-8"><script>
window.errors = []; window.footerEvents = []; window.pageShown = [];
window.addEventListener('error', function (e) { window.errors.push(e.message); });
</script>`;

type Order = 'herald only' | 'page script first' | 'herald first';

interface PanelWindow {
  errors: string[];
  footerEvents: unknown[];
  pageShown: unknown[];
  footerDone?: boolean;
  pageStarted?: unknown;
  pagePoll(data: unknown): void;
  Herald: { client?: { state: string } };
  AMessageChecker: Record<string, (...args: unknown[]) => unknown>;
}

/** Serves the panel's pages on 127.0.0.1 (an allowed origin of the test Herald) and its messageChecker.js. */
class PanelPages {
  readonly #server: Server;
  readonly #pages = new Map<string, string>();
  origin = '';

  constructor() {
    this.#server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const page = this.#pages.get(path);
      if (page !== undefined) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(page);
      } else if (path === '/js/messageChecker.js') {
        res.writeHead(200, { 'content-type': 'text/javascript', 'cache-control': 'no-store' }).end(PAGE_CHECKER);
      } else {
        res.writeHead(404).end();
      }
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.#server.address() as { port: number }).port}`;
  }

  /** A page with herald.js connected for `token`, the panel's messageChecker.js in `order`, and the footer; returns its URL. */
  add(name: string, order: Order, heraldUrl: string, token: string): string {
    const herald = `<script src="${heraldUrl}/herald.js"></script><script>Herald.connect({ kind: 'admin', token: ${JSON.stringify(token)} });</script>`;
    const pageChecker = '<script src="/js/messageChecker.js"></script>';
    const scripts = order === 'herald only' ? herald : order === 'page script first' ? pageChecker + herald : herald + pageChecker;
    this.#pages.set(`/${name}`, HEAD + scripts + FOOTER);
    return `${this.origin}/${name}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe("the panel's pages on herald.js: AMessageChecker as the footer uses it", { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const panel = new PanelPages();
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser(), panel.listen()]);
    context = await sharedContext(browser);
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await panel.close();
  });

  /** Opens the page for admin `aid`; resolves once its footer ran (or failed) and Herald's client is open. */
  async function openPanelPage(aid: number, order: Order): Promise<Page> {
    const url = panel.add(`admin-${aid}`, order, server.url, await server.token('admin', aid));
    const page = await newTab(context);
    pages.push(page);
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as PanelWindow).Herald.client?.state === 'open', null, { timeout: 10_000 });
    return page;
  }

  async function sendEvent(aid: number, text: string): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'EVENT', TEXT: text } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.delivered, 1);
  }

  async function footerEvents(page: Page, n: number): Promise<unknown[]> {
    await page.waitForFunction((k) => (window as unknown as PanelWindow).footerEvents.length >= k, n, { timeout: 10_000 });
    return page.evaluate(() => (window as unknown as PanelWindow).footerEvents);
  }

  it('herald.js alone: the footer runs through start() to its extend, whose handler gets Herald\'s EVENT; the other old members do no harm', async () => {
    const page = await openPanelPage(71, 'herald only');
    assert.deepEqual(await page.evaluate(() => {
      const w = window as unknown as PanelWindow;
      return { errors: w.errors, footerDone: w.footerDone === true };
    }), { errors: [], footerDone: true });
    await sendEvent(71, 'from herald');
    assert.deepEqual(await footerEvents(page, 1), ['from herald']);

    // The old object's other members: nothing to start or stop (the client stays open); showMessage is a toast.
    await page.evaluate(() => {
      const checker = (window as unknown as PanelWindow).AMessageChecker;
      checker.stop!();
      checker.unsubscribe!();
      checker.seenMessage!(5);
      checker.showMessage!({ TITLE: 'shown by showMessage', TEXT: 'Just<br/>some<br/>text' });
    });
    const toast = page.locator('.herald-toast', { hasText: 'shown by showMessage' });
    await toast.waitFor({ timeout: 10_000 });
    assert.deepEqual((await toast.locator('.herald-text').innerText()).split('\n'), ['Just', 'some', 'text']);
    assert.equal(await page.evaluate(() => (window as unknown as PanelWindow).Herald.client?.state), 'open');
    await sendEvent(71, 'still connected');
    assert.deepEqual(await footerEvents(page, 2), ['from herald', 'still connected']);
  });

  for (const order of ['page script first', 'herald first'] as const) {
    it(`the panel's own messageChecker.js too, ${order}: its start() runs, and the footer's handler gets Herald's notifications and the page's own, each once`, async () => {
      const aid = order === 'page script first' ? 72 : 73;
      const page = await openPanelPage(aid, order);
      assert.deepEqual(await page.evaluate(() => {
        const w = window as unknown as PanelWindow;
        return { errors: w.errors, footerDone: w.footerDone === true, started: w.pageStarted };
      }), { errors: [], footerDone: true, started: { portal: 'admin', interval: 30000 } }, "the page's own start() got EVENT_PARAMS");

      await sendEvent(aid, 'from herald');
      assert.deepEqual(await footerEvents(page, 1), ['from herald']);
      // What the page's own polling hands to its own processData, and what a script hands to the global's.
      await page.evaluate(() => {
        const w = window as unknown as PanelWindow;
        w.pagePoll({ TYPE: 'EVENT', TEXT: 'polled by the page' });
        w.AMessageChecker.processData!({ TYPE: 'EVENT', TEXT: 'processData' });
      });
      await sendEvent(aid, 'from herald again');
      assert.deepEqual(await footerEvents(page, 4), ['from herald', 'polled by the page', 'processData', 'from herald again']);

      // showMessage is the page's own, which kept doing what it did.
      await page.evaluate(() => (window as unknown as PanelWindow).AMessageChecker.showMessage!({ TITLE: 'page UI' }));
      assert.deepEqual(await page.evaluate(() => (window as unknown as PanelWindow).pageShown), ['page UI']);
      assert.deepEqual(await page.evaluate(() => (window as unknown as PanelWindow).footerEvents.length), 4, 'nothing twice');
    });
  }
});
