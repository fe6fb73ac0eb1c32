/**
 * The browser library on a panel page whose markup shadows the document's
 * own members, in a real Chromium and a real Herald. A panel that shows a
 * subscriber's text with `<img name="createElement">` in it (markup its
 * sanitiser lets through) makes `document.createElement` that image, and
 * the same for `addEventListener`, `removeEventListener` and
 * `visibilityState`: no script is needed (named properties of the document,
 * HTML standard). The library must go on showing toasts, listening, closing
 * and judging visibility, and its module build must load at all.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

/** The names a panel's markup shadows here, each an <img name> as a subscriber's text would bring it. */
const SHADOWED = ['createElement', 'addEventListener', 'removeEventListener', 'visibilityState'];
const MARKUP = SHADOWED.map((name) => `<img name="${name}" src="data:,">`).join('');

/** What the tests keep in the page. */
type Page$ = W & {
  notes: Array<{ title: string; body: string | undefined }>;
  errors: unknown[];
  client: InstanceType<W['Herald']['HeraldClient']>;
};

describe('browser library on a page whose markup shadows the document', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const pages: Page[] = [];
  /** The panel: a server of its own on 127.0.0.1, as in production another origin than Herald's; its pages by path. */
  let panelServer: Server;
  let panelUrl: string;
  const html = new Map<string, string>();

  before(async () => {
    panelServer = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html.get(req.url ?? '') ?? '');
    });
    await new Promise<void>((resolve) => panelServer.listen(0, '127.0.0.1', resolve));
    panelUrl = `http://127.0.0.1:${(panelServer.address() as AddressInfo).port}`;
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    context = await sharedContext(browser);
    await context.grantPermissions(['notifications'], { origin: panelUrl });
    // Every Notification the library creates is recorded (the real one still runs).
    await context.addInitScript(() => {
      const w = window as unknown as Page$;
      w.notes = [];
      const Real = Notification;
      w.Notification = class extends Real {
        constructor(title: string, options?: NotificationOptions) {
          super(title, options);
          w.notes.push({ title, body: options?.body });
        }
      };
    });
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((resolve) => panelServer?.close(resolve));
  });

  /** A panel page with this HTML; `HERALD` in it stands for Herald's URL. */
  async function panel(page: string): Promise<Page> {
    const path = `/panel-${html.size + 1}`;
    html.set(path, page.replaceAll('HERALD', server.url));
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${panelUrl}${path}`);
    return p;
  }

  async function send(aid: number, message: Record<string, unknown>): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  it('shows toasts, reaches the desktop, closes and connects again on a panel that names createElement, addEventListener, removeEventListener and visibilityState', async () => {
    const p = await panel(`<!doctype html><html><head><script src="HERALD/herald.js"></script></head><body><div class="ticket">subscriber wrote: ${MARKUP}</div></body></html>`);
    assert.deepEqual(
      await p.evaluate((names) => names.map((n) => (document as unknown as Record<string, unknown>)[n] instanceof HTMLImageElement), SHADOWED),
      SHADOWED.map(() => true),
      'the page shadows every one of them',
    );
    const token = await server.token('admin', 41);
    await p.evaluate(({ token, herald }) => {
      const w = window as unknown as Page$;
      w.errors = [];
      w.rec = { frames: [], messages: [], states: [], events: [] };
      w.client = w.Herald.connect({ kind: 'admin', token, url: herald });
      w.client.on('MESSAGE', (m) => {
        w.rec.messages.push(m);
      });
      w.client.events.on('error', (e) => w.errors.push(String((e as { error: unknown }).error)));
    }, { token, herald: server.url });
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });

    await send(41, { TYPE: 'MESSAGE', TITLE: 'Payment received', TEXT: 'subscriber <b>42</b>' });
    await p.waitForFunction(() => (window as unknown as Page$).rec.messages.length === 1, null, { timeout: 10_000 });
    const toast = await p.evaluate(() => {
      const root = document.getElementById('herald-toasts')?.shadowRoot;
      return { titles: [...(root?.querySelectorAll('.herald-title') ?? [])].map((t) => t.textContent), bold: root?.querySelector('.herald-text b')?.textContent, errors: (window as unknown as Page$).errors };
    });
    assert.deepEqual(toast, { titles: ['Payment received'], bold: '42', errors: [] }, 'the toast is there (the notification was acknowledged: losing it loses it for good)');

    // Hidden, opted in: the desktop hears of it (visibilityState read from the document, not the <img>).
    assert.equal(await p.evaluate(() => (window as unknown as Page$).client.desktop.enable()), 'granted');
    await p.evaluate(() => Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => 'hidden' }));
    await send(41, { TYPE: 'MESSAGE', TITLE: 'While away', TEXT: 'ticket 7' });
    await p.waitForFunction(() => (window as unknown as Page$).rec.messages.length === 2, null, { timeout: 10_000 });
    assert.deepEqual(await p.evaluate(() => (window as unknown as Page$).notes), [{ title: 'While away', body: 'ticket 7' }]);

    // close() stops listening (removeEventListener), and Herald.connect() closes the old client and makes a new one.
    const again = await server.token('admin', 41);
    const closing = await p.evaluate(async ({ token, herald }) => {
      const w = window as unknown as Page$;
      const out: string[] = [];
      try {
        await w.client.close();
        out.push(`closed: ${w.client.state}`);
        w.client = w.Herald.connect({ kind: 'admin', token, url: herald });
        out.push('connected again');
      } catch (error) {
        out.push(`threw: ${String(error)}`);
      }
      return out;
    }, { token: again, herald: server.url });
    assert.deepEqual(closing, ['closed: closed', 'connected again']);
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });
  });

  it('loads the module build on a page that already names createElement, and shows TEXT as text without running any of it', async () => {
    // A module script runs after the page is parsed: the <img> is there when DOMPurify starts.
    const p = await panel(`<!doctype html><html><head><script>
window.failures = [];
addEventListener('error', (e) => failures.push(String(e.message)));
</script><script type="module">
import * as herald from 'HERALD/herald.esm.js';
window.heraldModule = herald;
</script></head><body><div class="ticket">${MARKUP}</div></body></html>`);
    await p.waitForFunction(() => (window as unknown as { heraldModule?: unknown; failures: string[] }).heraldModule !== undefined || (window as unknown as { failures: string[] }).failures.length > 0, null, { timeout: 10_000 });
    assert.deepEqual(await p.evaluate(() => (window as unknown as { failures: string[] }).failures), [], 'the module loaded');
    await p.evaluate(({ token, herald }) => {
      const w = window as unknown as Page$ & { heraldModule: W['Herald'] };
      w.rec = { frames: [], messages: [], states: [], events: [] };
      w.client = new w.heraldModule.HeraldClient({ kind: 'admin', token, url: herald });
      w.client.on('MESSAGE', (m) => {
        w.rec.messages.push(m);
      });
    }, { token: await server.token('admin', 42), herald: server.url });
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });
    await send(42, { TYPE: 'MESSAGE', TITLE: 'Ticket', TEXT: 'Line <b>one</b><br>two <img src="data:," onerror="window.pwned = 1"><script>window.pwned = 2</script>' });
    await p.waitForFunction(() => (window as unknown as Page$).rec.messages.length === 1, null, { timeout: 10_000 });
    const shown = await p.evaluate(() => {
      const text = document.getElementById('herald-toasts')?.shadowRoot?.querySelector<HTMLElement>('.herald-text');
      return { lines: text?.innerText.split('\n'), elements: [...(text?.querySelectorAll('*') ?? [])].map((e) => e.localName), pwned: (window as unknown as { pwned?: number }).pwned };
    });
    // DOMPurify could not start under that markup: the text, its line break kept, and nothing else.
    assert.deepEqual(shown, { lines: ['Line one', 'two'], elements: ['br'], pwned: undefined });
  });
});
