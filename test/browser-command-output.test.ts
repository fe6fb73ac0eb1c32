/**
 * A command's output in the admin's toast, in a real Chromium, from a real
 * command run by a real Herald: the default final notification's TEXT is the
 * output as printed, marked `FORMAT: "text"`, and the toast shows it as
 * written. It was shown as HTML: `<incomplete>` (arp's word for an
 * unresolved neighbour) vanished, lines ran together, and an `<a href>` in
 * the output of a probe a subscriber can influence (an SNMP string, a DNS
 * name) became a live link in the admin's toast.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

const OUTPUT = [
  '? (127.0.0.2) at <incomplete> on lo',
  '<a href="https://phish.example/login">your session expired, sign in again</a>',
  '<img src=x onerror="document.title=\'owned\'">',
  '  indented',
].join('\n');

describe('a command\'s output in the toast', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald({ commandsAllow: ['printf'] }), launchBrowser()]);
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.context().close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('is shown as the program printed it: text, lines kept, no link, no markup', async () => {
    const { page } = await newPage(browser);
    pages.push(page);
    await connectPage(page, server.url, await server.token('admin', 4));
    const res = await server.api('POST', '/api/v1/commands', { aid: 4, program: 'printf', args: ['%s', OUTPUT] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const toast = page.locator(`.herald-toast[data-type="MESSAGE"]`).filter({ has: page.locator('.herald-title', { hasText: 'printf' }) });
    await toast.waitFor({ timeout: 10_000 });
    const text = toast.locator('.herald-text');
    assert.equal(await text.evaluate((el) => el.tagName), 'PRE');
    assert.equal(await text.evaluate((el) => el.textContent), OUTPUT);
    assert.equal(await toast.locator('.herald-text a, .herald-text img').count(), 0, 'nothing in the output became an element');
    assert.notEqual(await page.title(), 'owned');
    // The same text without FORMAT is a notification's own HTML, sanitised as before.
    const html = await server.api('POST', '/api/v1/send', { to: { aid: 4 }, message: { TYPE: 'MESSAGE', TITLE: 'html', TEXT: 'a<br/><b>b</b>' } });
    assert.equal(html.status, 200);
    const htmlToast = page.locator('.herald-toast[data-type="MESSAGE"]').filter({ has: page.locator('.herald-title', { hasText: 'html' }) });
    await htmlToast.waitFor({ timeout: 10_000 });
    assert.equal(await htmlToast.locator('.herald-text b').count(), 1);
    assert.equal(await htmlToast.locator('.herald-text').evaluate((el) => el.tagName), 'DIV');
  });
});
