/**
 * One page, both endpoints: the script build's Herald.connect gives the admin
 * client and the user client one dispatcher (AMessageChecker's handlers see
 * both). The built-in handlers and the error report act for the client a
 * notification came through; they acted for the client made last, so an
 * admin's EVENT reached the user client's listeners, a throwing handler was
 * reported to it, and an admin's Cancel went out on the user's socket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, type W } from './helpers/browser.js';

describe('a page connected to both endpoints, in Chromium', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;

  before(async () => {
    [server, browser] = await Promise.all([startHerald(), launchBrowser()]);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('each client hears its own EVENTs and its own handlers\' errors', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.goto(`${server.url}/demo`);
      const [admin, user] = [await server.token('admin', 7), await server.token('user', 8)];
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
          const r = await server.api('POST', '/api/v1/send', { to, message: { TYPE, TEXT: text } });
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
