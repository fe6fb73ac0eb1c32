/**
 * The browser library against hostile notifications, in a real Chromium and
 * a real Herald: TEXT built to cost the tab's main thread, and toasts on a
 * page whose Content-Security-Policy allows no inline style.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, waitForMessages } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

describe('browser library against hostile notifications', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  /**
   * One context for the file, a new page per test: a context costs about as much again as
   * its page. The tests connect as different people, or to another Herald.
   */
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    const first = await newPage(browser);
    context = first.context;
    await first.page.close();
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  async function page(): Promise<Page> {
    const page = await context.newPage();
    pages.push(page);
    return page;
  }

  async function send(to: Record<string, unknown>, message: unknown): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to, message });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  it('shows a huge TEXT of nested markup at once, cut to its head and tail, and the tab goes on', async () => {
    const p = await page();
    await connectPage(p, server.url, await server.token('admin', 1));
    // 300 KB of unclosed <b> (the HTTP API takes a megabyte): Chromium's
    // parser nests them 512 deep and took about 30 s to parse them uncut,
    // a frozen tab all that time.
    const text = `HEAD-MARK ${'<b>'.repeat(100_000)} TAIL-MARK`;
    const started = Date.now();
    await send({ aid: 1 }, { TYPE: 'MESSAGE', TITLE: 'huge', TEXT: text });
    await send({ aid: 1 }, { TYPE: 'MESSAGE', TITLE: 'next', TEXT: 'still here' });
    await waitForMessages(p, 2, 10_000);
    const shown = await p.evaluate(() => {
      const root = document.getElementById('herald-toasts')?.shadowRoot;
      const texts = [...(root?.querySelectorAll('.herald-text') ?? [])].map((t) => t.textContent ?? '');
      return { texts, elements: root?.querySelectorAll('.herald-text *').length ?? 0 };
    });
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10_000, `both toasts shown in ${elapsed} ms`);
    assert.equal(shown.texts.length, 2);
    assert.match(shown.texts[0]!, /^HEAD-MARK\s+…\s+TAIL-MARK$/, 'the head and the tail, around …');
    assert.ok(shown.elements <= 10_000 / 3, `at most one element per 3 characters kept: ${shown.elements}`);
    assert.equal(shown.texts[1], 'still here');
  });

  it('shows a TEXT of `<a` over and over with no `>` at once: the tag scan does not backtrack', async () => {
    const p = await page();
    await connectPage(p, server.url, await server.token('admin', 2));
    // 10,000 characters (maxTextChars): the scan before sanitising split each `<a…` run between
    // two overlapping patterns every way, cubic in the length (4,000 characters blocked the tab
    // 3.3 s, 10,000 about 50). A hostile sender's words, echoed by a backend, are enough.
    const started = Date.now();
    await send({ aid: 2 }, { TYPE: 'MESSAGE', TITLE: 'tags', TEXT: '<a'.repeat(5000) });
    await send({ aid: 2 }, { TYPE: 'MESSAGE', TITLE: 'next', TEXT: 'still here' });
    await waitForMessages(p, 2, 10_000);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 10_000, `both toasts shown in ${elapsed} ms`);
    const texts = await p.evaluate(() => [...(document.getElementById('herald-toasts')?.shadowRoot?.querySelectorAll('.herald-text') ?? [])].map((t) => t.textContent ?? ''));
    assert.equal(texts.at(-1), 'still here');
  });

  it('puts at most 1,000 characters of a TITLE, a PROGRAM or a STATE on a toast, 33 of one grapheme, and 16 of an ICON, however long one grapheme runs', async () => {
    const p = await page();
    await connectPage(p, server.url, await server.token('admin', 3));
    // One letter and 20,000 combining marks: one grapheme, which Chromium lays out in time
    // growing with the square of its length (100,000 in a TITLE blocked the tab 27 s, in an
    // ICON 31 s). Uncut, these take seconds; what must hold is what reaches the toast.
    const run = `a${'\u0301'.repeat(20_000)}`;
    await send({ aid: 3 }, { TYPE: 'MESSAGE', TITLE: run, TEXT: 'x', ICON: run });
    await send({ aid: 3 }, { TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c-long', PROGRAM: run, STATE: run, OUTPUT: 'x' });
    await waitForMessages(p, 1, 60_000);
    await p.locator('.herald-toast[data-command-id="c-long"]').waitFor({ timeout: 60_000 });
    const shown = await p.evaluate(() => {
      const root = document.getElementById('herald-toasts')!.shadowRoot!;
      const message = root.querySelector('.herald-toast[data-type="MESSAGE"]')!;
      const command = root.querySelector('.herald-toast[data-command-id="c-long"]')!;
      return {
        title: message.querySelector('.herald-title')!.textContent!,
        icon: message.querySelector('.herald-icon-text')!.textContent!,
        program: command.querySelector('.herald-title > span[dir="auto"]')!.textContent!,
        state: command.querySelector('.herald-state')!.textContent!,
      };
    });
    // Lengths, not the strings: an uncut one is 20,001 characters to print.
    const cut = (s: string, start: string) => ({ length: s.length, cut: s.startsWith(start) && s.endsWith('…') && s.slice(start.length, -1) === '\u0301'.repeat(s.length - start.length - 1) });
    // Cut to 1,000 characters (… last), then the grapheme to its letter and 32 marks (browser-long-grapheme.test.ts).
    assert.deepEqual(cut(shown.title, 'a'), { length: 34, cut: true }, 'the TITLE cut, … last');
    assert.deepEqual(cut(shown.program, 'a'), { length: 34, cut: true }, 'the PROGRAM cut like a TITLE');
    assert.deepEqual(cut(shown.state, '— a'), { length: 36, cut: true }, 'a STATE of its own cut like a TITLE');
    assert.ok(shown.icon === `a${'\u0301'.repeat(15)}`, `the ICON: its first 16 UTF-16 units, not ${shown.icon.length}`);
  });

  it('cuts TEXT at maxTextChars without splitting a character, and leaves shorter TEXT whole', async () => {
    const p = await page();
    await p.goto(`${server.url}/demo`);
    const out = await p.evaluate(() => {
      const H = (window as unknown as { Herald: typeof import('../src/client/index.js') }).Herald;
      const t = new H.Toaster({ hostId: 'cut', maxTextChars: 25, maxToasts: 10, timeoutMs: 0 });
      const text = (m: string) => t.show({ TYPE: 'MESSAGE', TEXT: m }).querySelector('.herald-text')?.innerHTML;
      return {
        exact: text('1234567890123456789012345'),
        astral: text(`xy${'😀'.repeat(12)}zw`),
        html: text(`<b>bold</b>${'x'.repeat(20)}<i>end</i>`),
      };
    });
    assert.equal(out.exact, '1234567890123456789012345', 'TEXT of exactly maxTextChars is whole');
    // 28 UTF-16 units; 11 kept each side, less the half of a pair that a cut splits.
    assert.equal(out.astral, `xy${'😀'.repeat(4)}\n…\n${'😀'.repeat(4)}zw`, 'no lone surrogate at either cut');
    assert.equal(out.html, '<b>bold</b>\n…\nx<i>end</i>', 'the head and the tail, each sanitised');
  });

  it('styles its toasts on a panel page whose CSP allows no inline style', async () => {
    // A panel on its own origin, as in production: a strict policy, the
    // library from Herald, and a nonce'd snippet that connects.
    let panelServer: Server | undefined;
    let herald: TestServer | undefined;
    try {
      let html = '';
      let csp = '';
      panelServer = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': csp });
        res.end(html);
      });
      await new Promise<void>((resolve) => panelServer!.listen(0, '127.0.0.1', resolve));
      const panel = `http://127.0.0.1:${(panelServer.address() as AddressInfo).port}`;
      herald = await startHerald({ allowedOrigins: [panel] });
      csp = `default-src 'none'; script-src 'nonce-panel' ${herald.url}; style-src 'self'; connect-src ${herald.url} ${herald.wsUrl}`;
      const token = await herald.token('admin', 7);
      html = `<!doctype html><html><head><script src="${herald.url}/herald.js"></script></head><body><main>panel</main>
<script nonce="panel">window.client = Herald.connect({ kind: 'admin', token: ${JSON.stringify(token)} });</script></body></html>`;
      const p = await page();
      await p.addInitScript(() => {
        const w = window as unknown as { violations: string[] };
        w.violations = [];
        document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
      });
      await p.goto(panel);
      await p.waitForFunction(() => (window as unknown as { client: { state: string } }).client.state === 'open', null, { timeout: 10_000 });
      const res = await herald.api('POST', '/api/v1/send', { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TITLE: 'styled', TEXT: 'under a strict CSP' } });
      assert.equal(res.status, 200);
      const toast = p.locator('#herald-toasts .herald-toast');
      await toast.waitFor({ timeout: 10_000 });
      const look = await p.evaluate(() => {
        const host = document.getElementById('herald-toasts')!;
        const t = host.shadowRoot!.querySelector('.herald-toast')!;
        return {
          position: getComputedStyle(host).position,
          border: getComputedStyle(t).borderLeftWidth,
          violations: (window as unknown as { violations: string[] }).violations,
        };
      });
      assert.deepEqual(look.violations, [], 'nothing the policy refused');
      assert.equal(look.position, 'fixed', 'the stack is in its corner, not at the end of <body>');
      assert.equal(look.border, '4px');
    } finally {
      await herald?.close();
      await new Promise((resolve) => panelServer?.close(resolve));
    }
  });

  it('loads the module build into a panel on another origin (a module script is fetched in CORS mode)', async () => {
    let html = '';
    const panelServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    });
    try {
      await new Promise<void>((resolve) => panelServer.listen(0, '127.0.0.1', resolve));
      const panel = `http://127.0.0.1:${(panelServer.address() as AddressInfo).port}`;
      const token = await server.token('admin', 12);
      html = `<!doctype html><html><body><script type="module">
import { connect } from '${server.url}/herald.esm.js';
window.client = connect({ kind: 'admin', url: '${server.url}', token: ${JSON.stringify(token)} });
</script></body></html>`;
      const p = await page();
      await p.goto(panel);
      // Herald's default Origin allowlist takes 127.0.0.1 on any port, so the tab opens.
      await p.waitForFunction(() => (window as unknown as { client?: { state: string } }).client?.state === 'open', null, { timeout: 10_000 });
      await send({ aid: 12 }, { TYPE: 'MESSAGE', TITLE: 'from a module', TEXT: 'cross-origin' });
      await p.locator('#herald-toasts .herald-toast').waitFor({ timeout: 10_000 });
    } finally {
      await new Promise((resolve) => panelServer.close(resolve));
    }
  });
});
