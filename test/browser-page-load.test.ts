/**
 * The library on a page that is still loading, in a real Chromium against a
 * real Herald: the old daemon's pages load the script in <head>, so a
 * notification can arrive (a replay right after connect, or processData())
 * before the parser reached <body>. It must still be shown, once the body
 * exists.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Browser, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

type Page0 = W & { early: Array<Record<string, unknown>>; errors: unknown[]; bodyWhenHandled: string[] };

/**
 * A page server on 127.0.0.1 (an allowed origin of the test Herald) that
 * sends a page's <head> at once and holds back its <body> until the test
 * releases it: a slow page, as a panel page that renders a long table is.
 */
class SlowPage {
  readonly #server: Server;
  #waiting: ServerResponse | undefined;
  #onRequest: () => void = () => {};
  readonly requested = new Promise<void>((resolve) => {
    this.#onRequest = resolve;
  });
  url = '';

  constructor(head: string, readonly body: string) {
    this.#server = createServer((req, res) => {
      if (req.url !== '/page') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      // Padding past the parser's first chunk, so it runs the <head> scripts without the rest.
      res.write(`<!doctype html><html><head><meta charset="utf-8">${head}<!--${' '.repeat(2048)}-->`);
      this.#waiting = res;
      this.#onRequest();
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as { port: number }).port}/page`;
  }

  release(): void {
    this.#waiting?.end(`</head><body>${this.body}</body></html>`);
    this.#waiting = undefined;
  }

  async close(): Promise<void> {
    this.#waiting?.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('browser library on a page still loading, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A SlowPage opened in a new context: `use` runs once the page has been asked for (its <head> sent), and both are closed after. */
  async function onSlowPage(head: string, body: string, use: (page: Page, slow: SlowPage) => Promise<void>): Promise<void> {
    const slow = new SlowPage(head, body);
    await slow.listen();
    const { page, context } = await newPage(browser);
    try {
      await page.goto(slow.url, { waitUntil: 'commit' });
      await slow.requested;
      await use(page, slow);
    } finally {
      await context.close();
      await slow.close();
    }
  }

  it('shows a notification replayed before <body> exists, once the body does', async () => {
    // Queued while the admin has no tab open: replayed as soon as the page connects.
    const sent = await server.api('POST', '/api/v1/send', { to: { aid: 41 }, message: { TYPE: 'MESSAGE', TITLE: 'waiting for you', TEXT: 'x' } });
    assert.equal(sent.status, 200);
    const token = await server.token('admin', 41);
    await onSlowPage(
      `<script src="${server.url}/herald.js"></script>
<script>
  window.early = []; window.errors = []; window.bodyWhenHandled = [];
  const c = Herald.connect({ kind: 'admin', url: ${JSON.stringify(server.url)}, token: ${JSON.stringify(token)} });
  c.on('MESSAGE', (m) => { early.push(m); bodyWhenHandled.push(String(document.body)); });
  c.events.on('error', (e) => errors.push(String(e.error)));
</script>`,
      '<main>the rest of the page</main>',
      async (page, slow) => {
        // The replayed notification reached the page's handler while there was no body yet.
        // Polled on a timer: animation frames, Playwright's default, do not run before the page renders.
        await page.waitForFunction(() => (window as unknown as Page0).early?.length === 1, null, { timeout: 10_000, polling: 50 });
        assert.deepEqual(await page.evaluate(() => (window as unknown as Page0).bodyWhenHandled), ['null']);
        slow.release();
        const toast = page.locator('.herald-toast[data-type="MESSAGE"]');
        await toast.waitFor({ timeout: 10_000 });
        assert.equal(await toast.locator('.herald-title').innerText(), 'waiting for you');
        assert.deepEqual(await page.evaluate(() => (window as unknown as Page0).errors), [], 'the built-in handler did not throw');
        assert.equal(await page.evaluate(() => document.getElementById('herald-toasts')?.parentElement?.tagName), 'BODY');
      },
    );
  });

  it('shows what AMessageChecker.processData() is given in <head>', async () => {
    await onSlowPage(
      `<script src="${server.url}/herald.js"></script>
<script>AMessageChecker.processData({ TYPE: 'MESSAGE', TITLE: 'from head', TEXT: 'Just<br/>some<br/>text' });</script>`,
      '<main>the rest of the page</main>',
      async (page, slow) => {
        slow.release();
        const toast = page.locator('.herald-toast[data-type="MESSAGE"]');
        await toast.waitFor({ timeout: 10_000 });
        assert.deepEqual((await toast.locator('.herald-text').innerText()).split('\n'), ['Just', 'some', 'text']);
        assert.equal(await page.locator('#herald-toasts').count(), 1, 'one host');
      },
    );
  });
});
