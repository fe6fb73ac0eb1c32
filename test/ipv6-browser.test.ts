/**
 * The demo page in a real Chromium at http://[::1]:PORT/demo, Herald on
 * `host: '::1'` with the default origins: the page loads, its Host ([::1]:PORT)
 * passes the demo's loopback check, its WebSocket at ws://[::1]:PORT/ws/admin
 * (Origin http://[::1]:PORT) opens, and a notification it sends comes back as a toast.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { noIPv6 } from './helpers/ipv6.js';

describe('the demo page on [::1] in Chromium', { skip: noIPv6 || browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    [server, browser] = await openAll([startHerald({ host: '::1', legacyEnabled: false, demo: 'auto' }), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('connects over ws://[::1] and shows the toast it sent', async () => {
    assert.match(server.url, /^http:\/\/\[::1\]:\d+$/);
    const { context, page } = await newPage(browser);
    try {
      const res = await page.goto(`${server.url}/demo?aid=5`);
      assert.equal(res?.status(), 200);
      await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 });
      await page.fill('#title', 'over [::1]');
      await page.fill('#text', 'x');
      await page.click('#send button[type="submit"]');
      const toast = page.locator('#herald-toasts .herald-toast[data-type="MESSAGE"]');
      await toast.waitFor({ timeout: 10_000 });
      assert.equal(await toast.locator('.herald-title').innerText(), 'over [::1]');
    } finally {
      await context.close();
    }
  });
});
