/**
 * Long waits and clock steps in a real Chromium against a real Herald. A
 * browser timer cannot wait past 2147483647 ms (its timeout is a WebIDL
 * `long`): a longer one fires at once. So a connect timeout of 30 days or
 * Infinity gave up every attempt, a 30-day heartbeat dropped the socket
 * before WELCOME, a 30-day backoff cap retried in a tight loop, and a
 * MESSAGE whose TIMEOUT is 30 days vanished at once. And a wall clock
 * stepped forward, then an `online` event, dropped a healthy link as
 * "no heartbeat": only an unanswered link check may drop it. And one
 * stepped back kept the backoff from starting over after a connection
 * that had stayed up (STABLE_MS, measured on performance.now()).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

const TIMER_MAX_MS = 2_147_483_647;
const THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000;

/** A port nothing listens on (bound, then freed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The page's `Date` runs `window.clockStep` ms ahead of the real clock (timers and performance.now() do not). */
const STEPPABLE_DATE = `(() => { const Real = Date, now = Real.now.bind(Real); window.clockStep = 0;
  class Stepped extends Real { constructor(...a) { if (a.length === 0) super(now() + window.clockStep); else super(...a); } static now() { return now() + window.clockStep; } }
  window.Date = Stepped; })();`;

/** Titles of the MESSAGE toasts on screen. */
function toastTitles(page: Page): Promise<string[]> {
  return page.locator('.herald-toast[data-type="MESSAGE"] .herald-title').allTextContents();
}

describe('browser timers past 2^31-1 ms, and a wall clock that steps, in Chromium', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  let server: TestServer;
  /**
   * One tab per person. Its heartbeat is the default: the test that holds a
   * healthy link for 5.5 s must not lose it to a page or server stalled on a
   * loaded machine, and with a heartbeat of 1 s (a frozen link found in
   * 2.5 s) a CI run lost it to "no heartbeat"; that test ends its link by
   * cutting it instead.
   */
  let strictServer: TestServer;

  before(async () => {
    [browser, server, strictServer] = await openAll([launchBrowser(), startHerald({}), startHerald({ maxTabsPerPerson: 1 })]);
  });
  after(async () => {
    await Promise.all([browser?.close(), server?.close(), strictServer?.close()]);
  });

  it('connectTimeoutMs: Infinity means no connect timeout (the attempt connects); past 2147483647 it is refused', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.goto(`${server.url}/demo`);
      const token = await server.token('admin', 1);
      const out = await page.evaluate(async ({ token, thirtyDays }) => {
        const { HeraldClient } = (window as W).Herald;
        const base = { token, url: location.origin, toasts: false as const, defaultHandlers: false, persistCursors: false };
        const refused: string[] = [];
        for (const connectTimeoutMs of [thirtyDays, 2_147_483_648]) {
          try {
            new HeraldClient({ ...base, connectTimeoutMs, autoConnect: false });
          } catch (e) {
            refused.push(`${(e as Error).name}: ${(e as Error).message}`);
          }
        }
        const c = new HeraldClient({ ...base, connectTimeoutMs: Infinity });
        const first = await new Promise<string>((resolve) => {
          c.events.on('connected', () => resolve('connected'));
          c.events.on('reconnecting', () => resolve('reconnecting'));
        });
        await c.close();
        return { refused, first };
      }, { token, thirtyDays: THIRTY_DAYS_MS });
      assert.equal(out.first, 'connected', 'the attempt was not given up at once');
      assert.equal(out.refused.length, 2, `both refused: ${JSON.stringify(out.refused)}`);
      for (const r of out.refused) assert.match(r, /^TypeError: connectTimeoutMs must be .*2147483647.*Infinity/);
    } finally {
      await context.close();
    }
  });

  it('heartbeatMs past what 2.5 heartbeats on a timer allow is refused; the largest allowed connects', async () => {
    const { page, context } = await newPage(browser);
    try {
      await page.goto(`${server.url}/demo`);
      const token = await server.token('admin', 2);
      const out = await page.evaluate(async ({ token, thirtyDays }) => {
        const { HeraldClient } = (window as W).Herald;
        const base = { token, url: location.origin, toasts: false as const, defaultHandlers: false, persistCursors: false };
        let refused = '';
        try {
          new HeraldClient({ ...base, heartbeatMs: thirtyDays, autoConnect: false });
        } catch (e) {
          refused = `${(e as Error).name}: ${(e as Error).message}`;
        }
        const c = new HeraldClient({ ...base, heartbeatMs: 858_993_458 });
        const first = await new Promise<string>((resolve) => {
          c.events.on('connected', () => resolve('connected'));
          c.events.on('reconnecting', () => resolve('reconnecting'));
        });
        await c.close();
        return { refused, first };
      }, { token, thirtyDays: THIRTY_DAYS_MS });
      assert.match(out.refused, /^TypeError: heartbeatMs must be .*858993458/);
      assert.equal(out.first, 'connected');
    } finally {
      await context.close();
    }
  });

  it('a reconnect cap past 2147483647 counts as that: the next retry waits instead of firing at once', async () => {
    // Another port than the page's: its CSP (connect-src 'self') is bypassed.
    const { page, context } = await newPage(browser, { bypassCSP: true });
    try {
      await page.goto(`${server.url}/demo`);
      const port = await closedPort();
      const out = await page.evaluate(async ({ port, thirtyDays }) => {
        const { HeraldClient } = (window as W).Herald;
        let attempts = 0;
        const c = new HeraldClient({
          endpoint: `ws://127.0.0.1:${port}/ws/admin`,
          toasts: false,
          defaultHandlers: false,
          persistCursors: false,
          reconnect: { baseMs: 2_200_000_000, capMs: thirtyDays, random: () => 0.999 },
        });
        c.events.on('connecting', () => attempts++);
        const { delayMs } = await new Promise<{ delayMs: number }>((resolve) => c.events.on('reconnecting', resolve));
        // A retry timer that fires at once fires before this one.
        await new Promise((resolve) => setTimeout(resolve, 300));
        const seen = attempts;
        await c.close();
        return { delayMs, attempts: seen };
      }, { port, thirtyDays: THIRTY_DAYS_MS });
      assert.ok(out.delayMs <= TIMER_MAX_MS && out.delayMs > 2_000_000_000, `delay ${out.delayMs}`);
      // The first attempt's `connecting` came before the listener: none since.
      assert.equal(out.attempts, 0, 'no retry within 300 ms of a 24-day delay');
    } finally {
      await context.close();
    }
  });

  it('a MESSAGE whose TIMEOUT is 2^31 ms or more stays until closed, and so does a toast of a toaster whose timeoutMs is', async () => {
    const { page, context } = await newPage(browser);
    try {
      await connectPage(page, server.url, await server.token('admin', 3));
      const send = (title: string, timeout: unknown) =>
        server.api('POST', '/api/v1/send', { to: { aid: 3 }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: 'x', TIMEOUT: timeout } });
      await send('2^31 ms', 2_147_483_648);
      await send('30 days', THIRTY_DAYS_MS);
      await send('Infinity', 'Infinity');
      await send('largest timer', TIMER_MAX_MS);
      // Its timer fires after any that fired at once: once it is gone, they would be too.
      await send('marker', 300);
      await waitForMessages(page, 5);
      await page.waitForFunction(() => ![...(document.getElementById('herald-toasts')?.shadowRoot?.querySelectorAll('.herald-title') ?? [])].some((t) => t.textContent === 'marker'), null, { timeout: 10_000 });
      assert.deepEqual(await toastTitles(page), ['2^31 ms', '30 days', 'Infinity', 'largest timer']);

      const own = await page.evaluate(async (thirtyDays) => {
        const t = new (window as W).Herald.Toaster({ hostId: 'long-toasts', timeoutMs: thirtyDays });
        const kept = t.show({ TYPE: 'MESSAGE', TITLE: 'no TIMEOUT', TEXT: 'x' });
        const marker = t.show({ TYPE: 'MESSAGE', TITLE: 'marker', TEXT: 'x', TIMEOUT: 300 });
        await new Promise<void>((resolve) => new MutationObserver((_, o) => marker.isConnected || (o.disconnect(), resolve())).observe(t.root, { childList: true, subtree: true }));
        return kept.isConnected;
      }, THIRTY_DAYS_MS);
      assert.equal(own, true, 'a timeoutMs of 30 days keeps the toast');
    } finally {
      await context.close();
    }
  });

  it('a wall clock stepped forward, then `online`: the link is checked with a PING and kept', async () => {
    const { page, context } = await newPage(browser);
    try {
      await context.addInitScript(STEPPABLE_DATE);
      await connectPage(page, server.url, await server.token('admin', 4));
      const droppedAtOnce = await page.evaluate(() => {
        const w = window as W & { clockStep: number };
        w.rec.frames.length = 0;
        w.clockStep = 10 * 60_000;
        dispatchEvent(new Event('online'));
        return w.rec.events.filter((e) => e.name === 'disconnected').map((e) => e.payload);
      });
      assert.deepEqual(droppedAtOnce, [], 'not dropped on the wall clock alone');
      // The server answers the link check at once.
      await page.waitForFunction(() => (window as W).rec.frames.some((f) => (f as { TYPE?: string }).TYPE === 'PONG'), null, { timeout: 5000 });
      const rec = await recorder(page);
      assert.deepEqual(rec.events.map((e) => e.name), ['connected']);
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.state), 'open');
      assert.equal((await server.api('GET', '/api/v1/online/admin/4')).body.tabs, 1);
    } finally {
      await context.close();
    }
  });

  it('after a long sleep on a dead link (clock far ahead, nothing answers), `online` drops it once the check goes unanswered', async () => {
    const proxy = new FreezableProxy(Number(new URL(server.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { page, context } = await newPage(browser);
    try {
      await context.addInitScript(STEPPABLE_DATE);
      await connectPage(page, base, await server.token('admin', 5), { reconnect: { baseMs: 50, capMs: 200 } });
      assert.ok(proxy.freeze() >= 1);
      await page.evaluate(() => {
        (window as W & { clockStep: number }).clockStep = 3600_000;
        dispatchEvent(new Event('online'));
      });
      // LINK_CHECK_MS (5 s) without an answer, then a new connection through the proxy.
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'connected').length === 2, null, { timeout: 15_000 });
      const rec = await recorder(page);
      const disc = rec.events.find((e) => e.name === 'disconnected')?.payload as { code: number; reason: string };
      assert.deepEqual({ code: disc.code, reason: disc.reason }, { code: 4408, reason: 'no answer after the network came back' });
    } finally {
      await context.close();
      await proxy.close();
    }
  });

  it('a wall clock stepped back: a connection that stayed up 5 s still starts the backoff over', async () => {
    const other = await strictServer.tab('admin', 6);
    const proxy = new FreezableProxy(Number(new URL(strictServer.url).port));
    const base = `http://127.0.0.1:${await proxy.listen()}`;
    const { page, context } = await newPage(browser);
    try {
      await context.addInitScript(STEPPABLE_DATE);
      // Refused while the other tab holds the only place: the backoff grows.
      await connectPage(page, base, await strictServer.token('admin', 6), { reconnect: { baseMs: 50, capMs: 200 }, waitOpen: false });
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'reconnecting').length >= 3, undefined, { timeout: 15_000 });
      other.terminate();
      await waitForState(page, 'open', 10_000);
      await page.evaluate(() => {
        (window as W & { clockStep: number }).clockStep = -3600_000;
        (window as W).rec.events.length = 0;
      });
      // STABLE_MS (5 s) of a healthy connection: a duration, not an event.
      await new Promise((resolve) => setTimeout(resolve, 5500));
      assert.deepEqual((await recorder(page)).events, [], 'still connected');
      // The link cut (not frozen: that is found only after 2.5 heartbeats); what follows is the backoff's.
      proxy.cut();
      await page.waitForFunction(() => (window as W).rec.events.some((e) => e.name === 'reconnecting'), undefined, { timeout: 10_000 });
      const rec = await recorder(page);
      const retry = rec.events.find((e) => e.name === 'reconnecting')?.payload as { attempt: number };
      assert.equal(retry.attempt, 1, 'the backoff started over');
    } finally {
      await context.close();
      await proxy.close();
    }
  });
});
