/**
 * The script-tag build on panel pages with strict policies, in a real
 * Chromium against a real Herald: Trusted Types enforced with or without
 * Herald's policy name allowed (no notification lost; the page's own
 * DOMPurify keeps its policy name), a connect-src that refuses Herald (the
 * attempt ends at once and the page is told), and a page whose
 * Object.prototype was polluted before the library loaded.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { sharedContext, newTab } from './helpers/browser-context.js';

const NONCE = 'panel-nonce';
/** Trusted Types enforced for every sink; the policy names the page allows follow. */
const TRUSTED_TYPES = "require-trusted-types-for 'script'; trusted-types";

/** What the panel's inline script keeps in the page. */
type Panel = Window & {
  client: { state: string; endpoint: string; kind: string };
  seen: Array<{ name: string; error?: string }>;
  Herald?: unknown;
};

describe('browser library on pages with strict policies', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let panelServer: Server;
  let panel = '';
  /** The panel page served next: its CSP and what runs before and after herald.js. */
  let served = { csp: '', before: '', connect: '' };
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    context = await sharedContext(browser);
    panelServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...(served.csp ? { 'content-security-policy': served.csp } : {}) });
      res.end(`<!doctype html><html><head>
<script nonce="${NONCE}">${served.before}</script>
<script nonce="${NONCE}" src="${server.url}/herald.js"></script></head><body><main>panel</main>
<script nonce="${NONCE}">${served.connect}</script></body></html>`);
    });
    await new Promise<void>((resolve) => panelServer.listen(0, '127.0.0.1', resolve));
    panel = `http://127.0.0.1:${(panelServer.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((resolve) => panelServer?.close(resolve));
  });

  /** The connecting snippet, recording the client's connection events. */
  function connectSnippet(token: string, options = ''): string {
    return `window.seen = [];
window.client = Herald.connect({ kind: 'admin', token: ${JSON.stringify(token)}, reconnect: { baseMs: 200, capMs: 400 }${options} });
for (const name of ['connected', 'reconnecting', 'error']) client.events.on(name, (p) => seen.push({ name, error: name === 'error' ? String(p.error && p.error.message) : undefined }));`;
  }

  /** Opens the panel with this CSP, connected as admin `aid`. */
  async function openPanel(aid: number, csp: string, beforeLibrary = ''): Promise<Page> {
    served = { csp: `script-src 'nonce-${NONCE}' ${server.url}; connect-src ${server.url} ${server.wsUrl}; ${csp}`, before: beforeLibrary, connect: connectSnippet(await server.token('admin', aid)) };
    const page = await newTab(context);
    pages.push(page);
    await page.goto(panel);
    await page.waitForFunction(() => (window as unknown as Panel).client.state === 'open', null, { timeout: 10_000 });
    return page;
  }

  async function send(aid: number, message: Record<string, unknown>): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', ...message } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  /** The toasts shown, once there are `n`: their titles, their text's markup and text. */
  async function toasts(page: Page, n: number): Promise<Array<{ title: string; html: string; text: string }>> {
    await page.waitForFunction((k) => (document.getElementById('herald-toasts')?.shadowRoot?.querySelectorAll('.herald-toast').length ?? 0) >= k, n, { timeout: 10_000 });
    return page.evaluate(() =>
      [...document.getElementById('herald-toasts')!.shadowRoot!.querySelectorAll('.herald-toast')].map((t) => ({
        title: t.querySelector('.herald-title')?.textContent ?? '',
        html: t.querySelector('.herald-text')?.innerHTML ?? '',
        text: t.querySelector('.herald-text')?.textContent ?? '',
      })),
    );
  }

  it("shows HTML TEXT as plain text, nothing lost, where Trusted Types allow no policy ('none')", async () => {
    const page = await openPanel(301, `${TRUSTED_TYPES} 'none'`);
    await send(301, { TITLE: 'formatted', TEXT: 'Just<br/>some<b>bold</b><img src=x onerror=alert(1)> &amp; more' });
    await send(301, { TITLE: 'after it', TEXT: 'still here' });
    const shown = await toasts(page, 2);
    assert.deepEqual(shown.map((t) => t.title).sort(), ['after it', 'formatted']);
    const formatted = shown.find((t) => t.title === 'formatted')!;
    assert.equal(formatted.html, 'Just<br>somebold &amp; more', 'its text, lines kept, no element of the sender');
  });

  it('decodes the character references of too intricate TEXT without an HTML parser where Trusted Types refuse one', async () => {
    const page = await openPanel(302, `${TRUSTED_TYPES} 'none'`);
    // Past the 1000-tag limit: shown as text, which used DOMParser (a Trusted Types sink) for its references.
    // As a browser's parser reads them: leading zeros, windows-1252 for 0x80–0x9F, U+FFFD past U+10FFFF, no &apos without ;.
    const references = '&#x0000041;&#00000065;&#128;&#150;&#99999999; &apos';
    await send(302, { TITLE: 'intricate', TEXT: `caf&#233; &lt;ok&gt; &#x1F600; ${references}${'<i></i>'.repeat(600)} end` });
    const [shown] = await toasts(page, 1);
    assert.equal(shown!.text, 'café <ok> 😀 AA€–\uFFFD &apos end');
  });

  it("formats TEXT through Herald's own policy, leaving the name dompurify to the page's DOMPurify", async () => {
    const page = await openPanel(303, `${TRUSTED_TYPES} herald dompurify`);
    await send(303, { TITLE: 'formatted', TEXT: 'some <b>bold</b> and caf&eacute;' });
    const [shown] = await toasts(page, 1);
    assert.equal(shown!.html, 'some <b>bold</b> and café');
    // The page's own DOMPurify (or any code) can still take the name its policy is listed under.
    const pagePolicy = await page.evaluate(() => {
      try {
        const factory = (window as unknown as { trustedTypes: { createPolicy(name: string, rules: object): { createHTML: unknown } } }).trustedTypes;
        return typeof factory.createPolicy('dompurify', { createHTML: (s: string) => s }).createHTML;
      } catch (error) {
        return String(error);
      }
    });
    assert.equal(pagePolicy, 'function');
    // Too intricate for DOMPurify: its references decoded by the parser, through Herald's policy (&eacute; is no common one).
    await send(303, { TITLE: 'intricate', TEXT: `caf&eacute;${'<i></i>'.repeat(600)}` });
    const both = await toasts(page, 2);
    assert.equal(both.find((t) => t.title === 'intricate')?.text, 'café');
  });

  it("formats TEXT where the page's own DOMPurify took the name dompurify first", async () => {
    const page = await openPanel(304, `${TRUSTED_TYPES} dompurify herald`, "trustedTypes.createPolicy('dompurify', { createHTML: (s) => s });");
    await send(304, { TITLE: 'formatted', TEXT: 'some <b>bold</b>' });
    const [shown] = await toasts(page, 1);
    assert.equal(shown!.html, 'some <b>bold</b>');
  });

  it("ends an attempt at once and says so when the page's connect-src refuses Herald", async () => {
    served = {
      csp: `script-src 'nonce-${NONCE}' ${server.url}; connect-src 'self'`,
      before: '',
      connect: connectSnippet(await server.token('admin', 305)),
    };
    const page = await newTab(context);
    pages.push(page);
    await page.goto(panel);
    // Each attempt used to wait for connectTimeoutMs (20 s) and the page heard nothing.
    await page.waitForFunction(() => (window as unknown as Panel).seen.filter((e) => e.name === 'reconnecting').length >= 3, null, { timeout: 8_000 });
    const errors = await page.evaluate(() => (window as unknown as Panel).seen.filter((e) => e.name === 'error').map((e) => e.error));
    assert.ok(errors.length >= 1, 'an error event');
    assert.match(errors[0]!, /Content-Security-Policy \(connect-src\)/);
  });

  it('connects to Herald, not to a url or endpoint found on a polluted Object.prototype', async () => {
    served = {
      csp: '',
      before: "Object.prototype.url = 'http://127.0.0.1:9/elsewhere'; Object.prototype.endpoint = 'ws://127.0.0.1:9/x'; Object.prototype.kind = 'user';",
      connect: connectSnippet('not-sent', ', autoConnect: false'),
    };
    const page = await newTab(context);
    pages.push(page);
    await page.goto(panel);
    const client = await page.evaluate(() => [(window as unknown as Panel).client.kind, (window as unknown as Panel).client.endpoint]);
    assert.deepEqual(client, ['admin', `${server.wsUrl}/ws/admin`], 'the kind it says is the one it connects as');
    // Options a page inherits from its own defaults are read: only what Object.prototype alone has is not.
    const inherited = await page.evaluate((url) => {
      const { HeraldClient } = (window as unknown as { Herald: { HeraldClient: new (o: object) => { kind: string; endpoint: string } } }).Herald;
      const fromDefaults = new HeraldClient(Object.create({ kind: 'user', url, autoConnect: false }));
      return [fromDefaults.kind, fromDefaults.endpoint];
    }, server.url);
    assert.deepEqual(inherited, ['user', `${server.wsUrl}/ws/user`]);
  });

  it('loads on a page whose Object.prototype has an enumerable value that is not a function', async () => {
    served = { csp: '', before: 'Object.prototype.pageFlag = 1;', connect: '' };
    const page = await newTab(context);
    pages.push(page);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(panel);
    const api = await page.evaluate(() => {
      const herald = (window as unknown as Panel).Herald as Record<string, unknown> | undefined;
      return herald ? ['connect', 'HeraldClient', 'Toaster', 'sanitizeHtml', 'VERSION'].filter((name) => Object.prototype.hasOwnProperty.call(herald, name)) : null;
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(api, ['connect', 'HeraldClient', 'Toaster', 'sanitizeHtml', 'VERSION']);
  });
});
