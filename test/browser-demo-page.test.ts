/**
 * The demo page under its own Content-Security-Policy, in a real Chromium:
 * it signs in, connects, sends and shows a toast without the policy refusing
 * anything, and no page may frame it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

describe('demo page under its CSP', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('works end to end with nothing refused by its policy', async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.addInitScript(() => {
        const w = window as unknown as { violations: string[] };
        w.violations = [];
        document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.effectiveDirective} ${e.blockedURI}`));
      });
      const res = await page.goto(`${server.url}/demo?aid=3`);
      const csp = res?.headers()['content-security-policy'] ?? '';
      for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"]) {
        assert.ok(csp.split(/;\s*/).includes(directive), `${directive} in ${csp}`);
      }
      await page.locator('#state[data-state="open"]').waitFor({ timeout: 10_000 });
      await page.fill('#title', 'from the demo');
      await page.fill('#text', 'Just<br/>some<br/>text');
      await page.click('#send button[type="submit"]');
      const toast = page.locator('#herald-toasts .herald-toast[data-type="MESSAGE"]');
      await toast.waitFor({ timeout: 10_000 });
      assert.equal(await toast.locator('.herald-title').innerText(), 'from the demo');
      const look = await page.evaluate(() => ({
        violations: (window as unknown as { violations: string[] }).violations,
        stack: getComputedStyle(document.getElementById('herald-toasts')!).position,
        header: getComputedStyle(document.querySelector('header')!).display,
      }));
      assert.deepEqual(look.violations, [], 'the page, its scripts, its style, the fetches and the WebSocket are all allowed');
      assert.equal(look.header, 'flex', 'the inline <style> applies (its hash is in style-src)');
      assert.equal(look.stack, 'fixed', 'the toasts are styled');
    } finally {
      await context.close();
    }
  });

  it('cannot be framed', async () => {
    const { context, page } = await newPage(browser);
    try {
      await page.goto(`${server.url}/healthz`);
      await page.evaluate((src) => {
        const frame = document.createElement('iframe');
        frame.src = src;
        document.body.append(frame);
        return new Promise((resolve) => frame.addEventListener('load', resolve, { once: true }));
      }, `${server.url}/demo`);
      const child = page.frames().find((f) => f !== page.mainFrame());
      assert.ok(child);
      assert.equal(await child.locator('#signin').count(), 0, 'the demo did not render inside the frame');
    } finally {
      await context.close();
    }
  });
});
