/**
 * XSS end to end, beyond what browser-library.test.ts already sends (HTML in
 * TITLE and TEXT, a javascript: EXTRA): hostile ICON values, EXTRA links
 * disguised with case, whitespace and control characters, SVG carrying
 * script, CSS injection through <style> and style attributes, a plain
 * string notification, a FORMAT "text" notification, and a background
 * command's live toast whose PROGRAM and output are HTML. Every payload
 * would set `window.__pwned` (or open a dialog); none may, even after every
 * link and icon in the toasts has been clicked, and no injected style may
 * reach the page or the toasts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

const PWN = (n: number) => `window.__pwned=${n};alert(${n})`;

describe('browser end to end: hostile notifications never run script', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  before(async () => {
    [server, browser] = await openAll([startHerald({}), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('ICON, EXTRA, SVG, CSS, a string notification, FORMAT text and a command toast: nothing runs, nothing styles', async () => {
    const { page, context } = await newPage(browser);
    const dialogs: string[] = [];
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    // Links open in a new tab: any such tab must not run the payload either.
    const popups: string[] = [];
    context.on('page', (p) => popups.push(p.url()));
    // A stack that keeps every toast, so that every payload stays on the page to be inspected and clicked.
    await page.goto(`${server.url}/demo`);
    await page.evaluate((token) => {
      const w = window as W;
      w.rec = { frames: [], messages: [], states: [], events: [] };
      const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: { maxToasts: 100, timeoutMs: 0 } });
      c.on('MESSAGE', (m) => { w.rec.messages.push(m); });
    }, await server.token('admin', 41));
    await waitForState(page, 'open');
    const icons = [
      `javascript:${PWN(1)}`,
      `x" onerror="${PWN(2)}`,
      `data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" onload="${PWN(3)}"><script>${PWN(3)}</script></svg>`,
      `<img src=x onerror="${PWN(4)}">`,
      ` JaVaScRiPt:${PWN(5)}`,
    ];
    const extras = [
      ` JAVASCRIPT:${PWN(11)}`,
      `java\tscript:${PWN(12)}`,
      `java\nscript:${PWN(13)}`,
      `\u0001javascript:${PWN(14)}`,
      `data:text/html,<script>${PWN(15)}</script>`,
      `vbscript:${PWN(16)}`,
      `&#106;avascript:${PWN(17)}`,
    ];
    const texts = [
      `<svg><script>${PWN(21)}</script></svg>`,
      `<svg><animate onbegin="${PWN(22)}" attributeName="x" dur="1s"/></svg>`,
      `<math><mtext><table><mglyph><style><img src=x onerror="${PWN(23)}">`,
      `<style>body{background:rgb(1, 2, 3)!important}.herald-toast{display:none!important}</style>plain`,
      `<b style="background:url(javascript:${PWN(24)});color:rgb(1, 2, 3)">styled</b>`,
      `<a href="  javascript:${PWN(25)}">a1</a><a href="JaVaScRiPt:${PWN(26)}">a2</a><a href="data:text/html,<script>${PWN(27)}</script>">a3</a>`,
      `<noscript><p title="</noscript><img src=x onerror=${PWN(28)}>"></noscript>`,
      `<details open ontoggle="${PWN(29)}">x</details><video><source onerror="${PWN(30)}"></video>`,
    ];
    const n = Math.max(icons.length, extras.length, texts.length);
    for (let i = 0; i < n; i++) {
      const res = await server.api('POST', '/api/v1/send', {
        to: { aid: 41 },
        message: { TYPE: 'MESSAGE', TITLE: `<script>${PWN(40 + i)}</script>t${i}`, TEXT: texts[i] ?? 'x', ICON: icons[i] ?? '', EXTRA: extras[i] ?? '', ID: `"><img src=x onerror=${PWN(50)}>` },
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
    }
    // A plain string notification (the old daemon allowed it), and a FORMAT "text" one.
    await server.api('POST', '/api/v1/send', { to: { aid: 41 }, message: `<img src=x onerror="${PWN(60)}">string` });
    await server.api('POST', '/api/v1/send', { to: { aid: 41 }, message: { TYPE: 'MESSAGE', TITLE: 'out', FORMAT: 'text', TEXT: `<script>${PWN(61)}</script><img src=x onerror="${PWN(62)}">` } });
    await waitForMessages(page, n + 2);
    // A background command's live toast, fed as the server would send it.
    await page.evaluate((pwn) => {
      const w = window as unknown as { Herald: { client: { process(m: unknown): void } } };
      w.Herald.client.process({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: `c"><img src=x onerror=${pwn}>`, PROGRAM: `<img src=x onerror="${pwn}">`, STATE: `<svg onload="${pwn}">`, OUTPUT: `<script>${pwn}</script>` });
    }, PWN(70));
    // Give every image a chance to fail and every handler a chance to fire.
    await page.waitForTimeout(300);

    const root = page.locator('#herald-toasts');
    const toasts = page.locator('.herald-toast');
    assert.equal(await page.locator('.herald-toast[data-type="MESSAGE"]').count(), n + 2, 'every notification is shown');
    assert.equal(await page.locator('.herald-toast').count(), n + 3, 'and the command');
    // Click every link and icon there is, in every toast still shown. The stack ends above the
    // viewport's bottom and cuts off the oldest (styles.ts): here it may grow, as it did, so that
    // none of the hundred toasts is clipped away from the pointer (each such click waited 30 s).
    await page.evaluate(() => {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(':host { max-height: none !important; overflow: visible !important; }');
      const shadow = document.getElementById('herald-toasts')!.shadowRoot!;
      shadow.adoptedStyleSheets = [...shadow.adoptedStyleSheets, sheet];
    });
    for (const a of await root.locator('a').all()) await a.click({ modifiers: [] }).catch(() => undefined);
    for (const img of await root.locator('img').all()) await img.click().catch(() => undefined);
    await page.waitForTimeout(300);

    const state = await page.evaluate(() => {
      const r = document.getElementById('herald-toasts')!.shadowRoot!;
      return {
        pwned: (window as unknown as { __pwned?: number }).__pwned,
        scripts: r.querySelectorAll('script, iframe, object, embed, svg, math, style:not([data-herald]), details, video, noscript').length,
        handlers: [...r.querySelectorAll('.herald-toast, .herald-toast *')].flatMap((el) => [...el.attributes].filter((a) => /^on/i.test(a.name) || a.name === 'style').map((a) => `${el.tagName}[${a.name}]`)),
        // Where each link and image really goes, as the browser resolved it.
        hrefs: [...r.querySelectorAll('a[href]')].map((a) => (a as HTMLAnchorElement).href),
        srcs: [...r.querySelectorAll('img')].map((i) => (i as HTMLImageElement).src),
        bodyBg: getComputedStyle(document.body).backgroundColor,
        toastDisplays: [...r.querySelectorAll('.herald-toast')].map((t) => getComputedStyle(t).display),
        boldColor: [...r.querySelectorAll('.herald-text b')].map((b) => getComputedStyle(b).color),
      };
    });
    assert.equal(state.pwned, undefined, 'no payload ran');
    assert.deepEqual(dialogs, []);
    assert.equal(state.scripts, 0, 'no script-bearing element in the toasts');
    assert.deepEqual(state.handlers, [], 'no event handler or style attribute');
    for (const h of [...state.hrefs, ...state.srcs]) assert.match(h, /^https?:\/\//, `link or image to ${h}`);
    assert.notEqual(state.bodyBg, 'rgb(1, 2, 3)', 'an injected <style> does not reach the page');
    assert.ok(state.toastDisplays.every((d) => d !== 'none'), 'nor the toasts');
    assert.ok(state.boldColor.every((c) => c !== 'rgb(1, 2, 3)'), 'a style attribute is dropped');
    for (const url of popups) assert.match(url, /^(about:blank|https?:)/, `a link opened ${url}`);
    assert.equal(await toasts.filter({ hasText: 'string' }).count(), 1, 'the string notification is shown, as text');
    await context.close();
  });
});
