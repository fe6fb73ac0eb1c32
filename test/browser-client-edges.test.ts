/**
 * Edges of the browser library, in a real Chromium: one page connected to
 * both endpoints of a real Herald, a server that is not Herald (a `ws` server
 * of the test's own that sends what Herald never would), and its link check
 * against URLs a browser reads as another host:
 * - with both endpoints on one page (one shared dispatcher), an admin's
 *   EVENT, its handlers' errors and its Cancel went through the client made
 *   last, the user's;
 * - a WELCOME without ID threw an uncaught TypeError (delivery.ts);
 * - a WELCOME HEARTBEAT past what a timer can wait made the dead-link timer
 *   fire at once, a connect and drop loop;
 * - a RESET SEQ that is no cursor (1e300, -5.5) was sent back as one;
 * - links starting `/\`, `\\` or `\/` went to another host, as `//host` does;
 * - a page's own HTML (`<img name="currentScript">`, no script at all) sent
 *   the library's socket, and its token, to the address the img named, and
 *   `<img name="body">` hid the toasts inside that img;
 * - a long TEXT made a toast taller than the screen, and every later toast
 *   appeared below it, out of sight.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { WebSocketServer, type WebSocket } from 'ws';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

describe('browser library edges: both endpoints on a page, a server that is not Herald, links to other hosts', { skip: browserSkipReason() }, () => {
  let herald: TestServer;
  let browser: Browser;
  let fake: Server;
  let wss: WebSocketServer;
  /** Each connection the fake server took: its request URL, and what it does with the socket. */
  const connections: Array<{ url: string }> = [];
  let onConnection: (ws: WebSocket, req: IncomingMessage) => void = () => undefined;

  before(async () => {
    [herald, browser] = await openAll([startHerald(), launchBrowser()]);
    fake = createServer();
    wss = new WebSocketServer({ server: fake });
    wss.on('connection', (ws, req) => {
      connections.push({ url: req.url ?? '' });
      onConnection(ws, req);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const ws of wss?.clients ?? []) ws.terminate();
    wss?.close();
    fake?.close();
    await browser?.close();
    await herald?.close();
  });

  /** The demo page hosts the library (from the real Herald); its client connects to the fake server. */
  async function pageOnFake(): Promise<{ page: Page; errors: string[] }> {
    const { page } = await newPage(browser, { bypassCSP: true });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${herald.url}/demo`);
    await page.evaluate((port) => {
      const w = window as W;
      w.Herald.connect({ kind: 'admin', token: 't', url: `http://127.0.0.1:${port}`, reconnect: { baseMs: 50, capMs: 100 } });
    }, (fake.address() as AddressInfo).port);
    return { page, errors };
  }

  it('a WELCOME without ID: no uncaught error, the client is open', async () => {
    connections.length = 0;
    onConnection = (ws) => ws.send(JSON.stringify({ TYPE: 'WELCOME', HEARTBEAT: 25000 }));
    const { page, errors } = await pageOnFake();
    try {
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
      await page.waitForTimeout(200);
      assert.deepEqual(errors, []);
    } finally {
      await page.context().close();
    }
  });

  it('a WELCOME HEARTBEAT past what a timer can wait: the client stays connected, no drop loop', async () => {
    connections.length = 0;
    onConnection = (ws) => ws.send(JSON.stringify({ TYPE: 'WELCOME', ID: 1, HEARTBEAT: 1e10 }));
    const { page, errors } = await pageOnFake();
    try {
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
      // Dropped at once before (the timer's delay overflowed to 1 ms), and again on every reconnect 50–100 ms later.
      await page.waitForTimeout(1000);
      assert.equal(connections.length, 1, `${connections.length} connections in a second`);
      assert.equal(await page.evaluate(() => (window as W).Herald.client?.state), 'open');
      assert.deepEqual(errors, []);
    } finally {
      await page.context().close();
    }
  });

  it('a RESET whose SEQ is no cursor is ignored, not sent back in the next connection\'s query', async () => {
    connections.length = 0;
    onConnection = (ws) => {
      ws.send(JSON.stringify({ TYPE: 'WELCOME', ID: 1, HEARTBEAT: 25000 }));
      if (connections.length === 1) {
        ws.send(JSON.stringify({ TYPE: 'RESET', EPOCH: 'e1', SEQ: 1e300, REASON: 'epoch changed' }));
        ws.send(JSON.stringify({ TYPE: 'RESET', STREAM: '*', EPOCH: 'e2', SEQ: -5.5, REASON: 'epoch changed' }));
        setTimeout(() => ws.close(1001, 'server shutdown'), 100);
      }
    };
    const { page, errors } = await pageOnFake();
    try {
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
      const deadline = Date.now() + 10_000;
      while (connections.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.ok(connections.length >= 2, 'the client reconnected');
      const query = new URL(connections[1]!.url, 'http://x').searchParams;
      assert.equal(query.get('seq'), null, connections[1]!.url);
      assert.equal(query.get('bseq'), null, connections[1]!.url);
      assert.deepEqual(errors, []);
    } finally {
      await page.context().close();
    }
  });

  it('links and URLs that start with a backslash are dropped as //host is; same-host ones are kept', async () => {
    const { page } = await newPage(browser);
    try {
      await page.goto(`${herald.url}/demo`);
      const out = await page.evaluate(() => {
        const H = (window as W).Herald;
        const hrefs = (html: string) => [...H.sanitizeHtml(html).querySelectorAll('a')].map((a) => a.getAttribute('href'));
        return {
          links: hrefs('<a href="/\\evil.example/b">1</a><a href="\\\\evil.example/a">2</a><a href="\\/evil.example/c">3</a><a href="//evil.example/d">4</a><a href="/ok/path?q=a\\b">5</a><a href="https://example.net/x">6</a>'),
          urls: ['/\\evil.example/extra', '/\t/evil.example', '\\\\evil.example', '/ok', 'https://example.net/y'].map((u) => H.isSafeUrl(u)),
        };
      });
      assert.deepEqual(out.links, [null, null, null, null, '/ok/path?q=a\\b', 'https://example.net/x']);
      assert.deepEqual(out.urls, [false, false, false, true, true]);
    } finally {
      await page.context().close();
    }
  });

  it("a page's HTML naming an element currentScript or body neither sends the socket elsewhere nor hides the toasts", async () => {
    const fakePort = (fake.address() as AddressInfo).port;
    const panel = `http://127.0.0.1:${fakePort}/panel/index.html`;
    const { page, context } = await newPage(browser);
    try {
      // The panel's page, served by the fake server (another origin than Herald's; Chromium refuses a routed
      // page's requests to loopback), the library from Herald, as docs/browser.md shows.
      const html = `<!doctype html><html><body><img name="currentScript" src="http://127.0.0.1:${fakePort}/x/y.png"><img name="body" alt="">`
        + `<script src="${herald.url}/herald.js"></script></body></html>`;
      fake.on('request', (req, res) => {
        res.writeHead(req.url === '/panel/index.html' ? 200 : 404, { 'content-type': 'text/html' });
        res.end(req.url === '/panel/index.html' ? html : '');
      });
      connections.length = 0;
      await page.goto(panel);
      const token = await herald.token('admin', 31);
      const endpoint = await page.evaluate((token) => {
        const w = window as W;
        // The clobbering works: the page's own `document.currentScript` and `document.body` are its imgs.
        if ((document as unknown as Record<string, Element>).body!.tagName !== 'IMG') throw new Error('document.body is not the img');
        return w.Herald.connect({ kind: 'admin', token }).endpoint;
      }, token);
      assert.equal(endpoint, `${herald.url.replace(/^http/, 'ws')}/ws/admin`, 'the base is the real <script>, Herald');
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
      assert.equal(connections.length, 0, 'nothing reached the address the img named');
      const r = await herald.api('POST', '/api/v1/send', { to: { aid: 31 }, message: { TYPE: 'MESSAGE', TITLE: 'seen', TEXT: 'x' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await page.locator('.herald-toast .herald-title').first().waitFor({ timeout: 10_000 });
      const host = await page.evaluate(() => {
        const el = document.getElementById('herald-toasts')!;
        const rect = el.getBoundingClientRect();
        return { parent: el.parentElement?.tagName, height: rect.height };
      });
      assert.equal(host.parent, 'BODY', 'the stack is in the real <body>, not inside the img');
      assert.ok(host.height > 0, 'and shows');
    } finally {
      await context.close();
    }
  });

  it('no toast grows past the screen: a long TEXT or TITLE scrolls in its toast, and the newest toast stays in view', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.setViewportSize({ width: 1000, height: 800 });
      await page.goto(`${herald.url}/demo`);
      const token = await herald.token('admin', 32);
      await page.evaluate((token) => (window as W).Herald.connect({ kind: 'admin', token, url: location.origin }), token);
      await page.waitForFunction(() => (window as W).Herald.client?.state === 'open', undefined, { timeout: 10_000 });
      const messages = [
        { TYPE: 'MESSAGE', TITLE: 'lines', TEXT: 'line<br>'.repeat(1200), TIMEOUT: 0 },
        { TYPE: 'MESSAGE', TITLE: 'T'.repeat(20_000), TEXT: 'long title', TIMEOUT: 0 },
        { TYPE: 'MESSAGE', TITLE: 'paragraphs', TEXT: '<p>para</p>'.repeat(400), TIMEOUT: 0 },
        { TYPE: 'MESSAGE', TITLE: 'newest', TEXT: 'must be seen', TIMEOUT: 0 },
      ];
      for (const message of messages) {
        const r = await herald.api('POST', '/api/v1/send', { to: { aid: 32 }, message });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      await page.waitForFunction(() => document.getElementById('herald-toasts')?.shadowRoot?.querySelectorAll('.herald-toast').length === 4, undefined, { timeout: 10_000 });
      const layout = await page.evaluate(() => {
        const root = document.getElementById('herald-toasts')!.shadowRoot!;
        const toasts = [...root.querySelectorAll<HTMLElement>('.herald-toast')];
        const newest = toasts.at(-1)!.getBoundingClientRect();
        const first = toasts[0]!.querySelector<HTMLElement>('.herald-text')!;
        const title = toasts[1]!.querySelector<HTMLElement>('.herald-title')!;
        return {
          viewport: innerHeight,
          newest: { top: newest.top, bottom: newest.bottom },
          tallest: Math.max(...toasts.map((t) => t.getBoundingClientRect().height)),
          textScrolls: first.scrollHeight > first.clientHeight,
          titleScrolls: title.scrollHeight > title.clientHeight,
        };
      });
      assert.ok(layout.newest.top >= 0 && layout.newest.bottom <= layout.viewport, `the newest toast is in view: ${JSON.stringify(layout)}`);
      assert.ok(layout.tallest < layout.viewport / 2 + 120, `no toast much taller than its text's bound: ${JSON.stringify(layout)}`);
      assert.ok(layout.textScrolls && layout.titleScrolls, `the long TEXT and TITLE scroll within their toasts: ${JSON.stringify(layout)}`);
    } finally {
      await context.close();
    }
  });

  it('each client hears its own EVENTs and its own handlers\' errors', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.goto(`${herald.url}/demo`);
      const [admin, user] = [await herald.token('admin', 7), await herald.token('user', 8)];
      await page.evaluate(({ admin, user }) => {
        const w = window as W & { heard: Record<string, string[]> };
        w.heard = { adminEvent: [], userEvent: [], adminError: [], userError: [] };
        const a = w.Herald.connect({ kind: 'admin', token: admin, url: location.origin });
        const u = w.Herald.connect({ kind: 'user', token: user, url: location.origin });
        a.events.on('event', (m) => w.heard.adminEvent!.push(String(m.TEXT)));
        u.events.on('event', (m) => w.heard.userEvent!.push(String(m.TEXT)));
        a.events.on('error', (e) => w.heard.adminError!.push(String(e.message?.TEXT)));
        u.events.on('error', (e) => w.heard.userError!.push(String(e.message?.TEXT)));
        w.AMessageChecker.on('BOOM', () => {
          throw new Error('a page handler that throws');
        });
        (w as unknown as { clients: unknown[] }).clients = [a, u];
      }, { admin, user });
      await page.waitForFunction(() => ((window as unknown as { clients: Array<{ state: string }> }).clients).every((c) => c.state === 'open'), undefined, { timeout: 10_000 });
      for (const [to, text] of [[{ aid: 7 }, 'for-admin'], [{ uid: 8 }, 'for-user']] as const) {
        for (const TYPE of ['EVENT', 'BOOM']) {
          const r = await herald.api('POST', '/api/v1/send', { to, message: { TYPE, TEXT: text } });
          assert.equal(r.status, 200, JSON.stringify(r.body));
        }
      }
      await page.waitForFunction(() => Object.values((window as unknown as { heard: Record<string, string[]> }).heard).flat().length >= 4, undefined, { timeout: 10_000 });
      await page.waitForTimeout(200);
      const heard = await page.evaluate(() => (window as unknown as { heard: Record<string, string[]> }).heard);
      assert.deepEqual(heard, { adminEvent: ['for-admin'], userEvent: ['for-user'], adminError: ['for-admin'], userError: ['for-user'] });
    } finally {
      await context.close();
    }
  });
});
