/**
 * The browser library over a page's life, in a real Chromium against a real
 * Herald: the script tag loaded twice, Herald.connect run again while
 * notifications arrive, toasts pushed out of the stack, the back/forward
 * cache, and an async handler that rejects.
 *
 * The browser is launched with Chromium's back/forward cache on (Playwright
 * turns it off by default), as a real browser has it.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';
import { browserSkipReason, launchBrowser, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';


/** What the tests keep in the page, beside the library's globals. */
type Page$ = W & Record<string, any>;

describe('browser library over a page\'s life', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser({ backForwardCache: true })]);
    context = await sharedContext(browser);
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A tab on Herald's demo page, which loads /herald.js once (the host page). */
  async function hostPage(): Promise<Page> {
    const page = await newTab(context);
    pages.push(page);
    await page.goto(`${server.url}/demo`);
    await page.waitForFunction(() => (window as W).Herald !== undefined);
    return page;
  }

  async function send(aid: number, message: Record<string, unknown>): Promise<{ delivered: number }> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as { delivered: number };
  }

  async function online(aid: number): Promise<boolean> {
    return ((await server.api('GET', `/api/v1/online/admin/${aid}`)).body as { online: boolean }).online;
  }

  it('a second copy of the script keeps the first copy\'s globals: its handlers run, one client, each toast once', async () => {
    const p = await hostPage();
    const token = await server.token('admin', 31);
    await p.evaluate((token) => {
      const w = window as Page$;
      w.firstHerald = w.Herald;
      w.firstChecker = w.AMessageChecker;
      w.got = [];
      w.AMessageChecker.extend({ TYPE: 'TICKET_ASSIGNED', CALLBACK: (m) => w.got.push(m.TICKET_ID) });
      w.a = w.Herald.connect({ kind: 'admin', token, url: location.origin });
    }, token);
    await waitForState(p, 'open');
    // The snippet included again (a widget's template): a second copy of the library runs.
    await p.evaluate(() => new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/herald.js';
      s.onload = resolve;
      s.onerror = reject;
      document.head.append(s);
    }));
    const same = await p.evaluate((token) => {
      const w = window as Page$;
      const same = { herald: w.Herald === w.firstHerald, checker: w.AMessageChecker === w.firstChecker };
      w.b = w.Herald.connect({ kind: 'admin', token, url: location.origin });
      return same;
    }, token);
    assert.deepEqual(same, { herald: true, checker: true }, 'the first copy\'s globals stay');
    await p.waitForFunction(() => {
      const w = window as Page$;
      return w.b.state === 'open' && w.a.state === 'closed';
    }, null, { timeout: 10_000 });
    assert.equal((await server.api('GET', '/api/v1/online/admin/31')).body.tabs, 1, 'one socket for the tab');

    await send(31, { TYPE: 'TICKET_ASSIGNED', TICKET_ID: 42 });
    await send(31, { TYPE: 'MESSAGE', TITLE: 'once', TEXT: 'x', TIMEOUT: 0 });
    await p.locator('.herald-toast', { hasText: 'once' }).first().waitFor({ timeout: 10_000 });
    assert.deepEqual(await p.evaluate(() => (window as Page$).got), [42], 'the handler added through the first copy ran, once');
    const toasts = await p.evaluate(() => [...document.querySelectorAll('#herald-toasts')].reduce((n, h) => n + h.shadowRoot!.querySelectorAll('.herald-toast').length, 0));
    assert.equal(toasts, 1, 'one toast stack, one toast');
  });

  it('Herald.connect run again while the old socket still receives: each notification handed on once, the old cursor left as it was', async () => {
    const p = await hostPage();
    const token = await server.token('admin', 32);
    await p.evaluate((token) => {
      const w = window as Page$;
      // The old client's socket stays open after close(), as it does while its
      // CLOSE_REQUEST is on the way (a busy server, a slow link): this one
      // keeps it back, and its close, so the window lasts as long as the test.
      class HeldWebSocket extends WebSocket {
        override send(data: string): void {
          if (!data.includes('CLOSE_REQUEST')) super.send(data);
        }
        override close(): void {}
      }
      w.seen = [];
      w.AMessageChecker.on('MESSAGE', (m) => w.seen.push(m.TITLE));
      w.a = w.Herald.connect({ kind: 'admin', token, url: location.origin, WebSocket: HeldWebSocket, toasts: false });
      w.oldFrames = [];
      w.a.events.on('frame', (f: { TITLE?: string }) => w.oldFrames.push(f.TITLE));
    }, token);
    await waitForState(p, 'open');
    await send(32, { TYPE: 'MESSAGE', TITLE: 'before', TEXT: 'x' });
    await p.waitForFunction(() => (window as Page$).seen.includes('before'));
    const before = await p.evaluate(() => (window as Page$).a.cursors().own);

    await p.evaluate((token) => {
      const w = window as Page$;
      w.b = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: false });
    }, token);
    await p.waitForFunction(() => {
      const w = window as Page$;
      return w.a.state === 'closing' && w.b.state === 'open';
    }, null, { timeout: 10_000 });
    const sent = await send(32, { TYPE: 'MESSAGE', TITLE: 'during', TEXT: 'x' });
    assert.equal(sent.delivered, 2, 'both sockets are open on the server');
    // Both clients got it: the new one handed it on, the old one had its chance.
    await p.waitForFunction(() => {
      const w = window as Page$;
      return w.oldFrames.includes('during') && w.seen.includes('during');
    }, null, { timeout: 10_000 });
    const after = await p.evaluate(() => {
      const w = window as Page$;
      return { seen: w.seen, old: w.a.cursors().own, state: w.a.state };
    });
    assert.deepEqual(after.seen, ['before', 'during'], 'nothing twice');
    assert.deepEqual(after.old, before, 'the closing client did not advance the cursor');
    assert.equal(after.state, 'closing');
  });

  it('the snippet run twice with toast options: one stack, and a command toast of the first client cancels through the second and ends in place', async () => {
    const p = await hostPage();
    const token = await server.token('admin', 33);
    const snippet = (token: string) => {
      const w = window as Page$;
      const name = w.a ? 'b' : 'a';
      const frames: unknown[] = (w[`${name}Frames`] = []);
      w[name] = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: { maxToasts: 5, timeoutMs: 0 } });
      w[name].events.on('frame', (f: unknown) => frames.push(f));
    };
    await p.evaluate(snippet, token);
    await waitForState(p, 'open');
    await send(33, { TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c1', PROGRAM: 'backup', STATE: 'running', OUTPUT: 'step 1\n' });
    const live = p.locator('.herald-toast[data-command-id="c1"]');
    await live.waitFor({ timeout: 10_000 });
    // The page includes the snippet again: the first client is closed.
    await p.evaluate(snippet, token);
    await p.waitForFunction(() => {
      const w = window as Page$;
      return w.b.state === 'open' && w.a.state === 'closed';
    }, null, { timeout: 10_000 });
    assert.equal(await p.evaluate(() => document.querySelectorAll('#herald-toasts').length), 1, 'one toast stack on the page');
    // No frame of the command came through the second client yet: Cancel still goes out, through it.
    await live.locator('.herald-cancel').click();
    // Commands are not enabled on this server: its ERROR answer proves the COMMAND_CANCEL arrived.
    await p.waitForFunction(() => (window as Page$).bFrames.some((f: { TYPE?: string }) => f.TYPE === 'ERROR'), null, { timeout: 10_000 });
    await send(33, { TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c1', PROGRAM: 'backup', STATE: 'succeeded', OUTPUT: 'done\n' });
    await send(33, { TYPE: 'MESSAGE', TITLE: 'after', TEXT: 'x' });
    await p.locator('.herald-toast', { hasText: 'after' }).waitFor({ timeout: 10_000 });
    const stacks = await p.evaluate(() => [...document.querySelectorAll('#herald-toasts')].map((h) => [...h.shadowRoot!.querySelectorAll<HTMLElement>('.herald-toast')]
      .map((t) => `${t.dataset.state ?? ''}${t.querySelector('.herald-spinner') ? ' spinning' : ''}: ${t.querySelector('.herald-title')!.textContent}`)));
    assert.deepEqual(stacks, [['succeeded: backup — done', ': after']], 'the command toast ended in place, in the one stack');
  });

  it('a toast pushed out of the stack, closed or cleared stops its timer', async () => {
    const p = await hostPage();
    const counts = await p.evaluate(() => {
      const w = window as Page$;
      // The timers of a distinctive length still pending: only the toasts' own.
      const LONG = 600_000;
      const pending = new Set<number>();
      const set = w.setTimeout.bind(w);
      const clear = w.clearTimeout.bind(w);
      w.setTimeout = ((fn: () => void, ms?: number) => {
        const id = set(() => {
          pending.delete(id);
          fn();
        }, ms);
        if (ms === LONG) pending.add(id);
        return id;
      }) as typeof setTimeout;
      w.clearTimeout = ((id: number) => {
        pending.delete(id);
        clear(id);
      }) as typeof clearTimeout;
      const toaster = new w.Herald.Toaster({ hostId: 'evict-test', maxToasts: 3 });
      for (let i = 0; i < 20; i++) toaster.show({ TYPE: 'MESSAGE', TITLE: `n${i}`, TEXT: 'x', TIMEOUT: LONG });
      const counts = { onScreen: toaster.size, afterPushOut: pending.size, afterClose: 0, afterClear: 0 };
      toaster.root.querySelector<HTMLButtonElement>('.herald-close')!.click();
      counts.afterClose = pending.size;
      toaster.clear();
      counts.afterClear = pending.size;
      return counts;
    });
    assert.deepEqual(counts, { onScreen: 3, afterPushOut: 3, afterClose: 2, afterClear: 0 });
  });

  it('a page in the back/forward cache closes its socket (not online, nothing delivered to it) and resumes when it comes back', async () => {
    const p = await hostPage();
    const token = await server.token('admin', 33);
    await p.evaluate((token) => {
      const w = window as Page$;
      w.shown = [];
      w.restored = [];
      addEventListener('pageshow', (e) => w.restored.push(e.persisted));
      const c = w.Herald.connect({ kind: 'admin', token, url: location.origin });
      c.on('MESSAGE', (m) => w.shown.push(m.TITLE));
    }, token);
    await waitForState(p, 'open');
    assert.equal(await online(33), true);

    // Leave the page for another of the same origin: it goes into the cache.
    await p.goto(`${server.url}/herald.js?elsewhere`);
    await until(async () => !(await online(33)), 10_000, 'the cached page to go offline');
    assert.equal((await send(33, { TYPE: 'MESSAGE', TITLE: 'while cached', TEXT: 'x' })).delivered, 0);

    // A page restored from the cache fires no load event: wait for the navigation only.
    await p.goBack({ waitUntil: 'commit' });
    await p.waitForFunction(() => (window as Page$).shown.includes('while cached'), null, { timeout: 10_000 });
    const r = await p.evaluate(() => ({ restored: (window as Page$).restored, shown: (window as Page$).shown, state: (window as Page$).Herald.client!.state }));
    assert.deepEqual(r.restored, [true], 'the page came back from the back/forward cache');
    assert.deepEqual(r.shown, ['while cached'], 'replayed once after the cache');
    assert.equal(r.state, 'open');
    assert.equal(await online(33), true);
  });

  it('an async handler that rejects is reported (error event and console.error), like one that throws', async () => {
    const p = await hostPage();
    const token = await server.token('admin', 34);
    await p.evaluate((token) => {
      const w = window as Page$;
      w.errors = [];
      w.unhandled = [];
      w.after = [];
      addEventListener('unhandledrejection', (e) => w.unhandled.push(String(e.reason)));
      const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: false });
      c.events.on('error', (e) => w.errors.push({ error: String((e.error as Error).message), type: e.type, title: e.message?.TITLE }));
      c.on('MESSAGE', async () => {
        await Promise.resolve();
        throw new Error('async boom');
      });
      c.on('MESSAGE', (m) => w.after.push(m.TITLE));
    }, token);
    await waitForState(p, 'open');
    const logged = p.waitForEvent('console', { predicate: (m) => m.type() === 'error' && m.text().includes('a handler of MESSAGE threw'), timeout: 10_000 });
    await send(34, { TYPE: 'MESSAGE', TITLE: 'rejects', TEXT: 'x' });
    await p.waitForFunction(() => (window as Page$).errors.length > 0, null, { timeout: 10_000 });
    await logged;
    const r = await p.evaluate(() => ({ errors: (window as Page$).errors, after: (window as Page$).after, unhandled: (window as Page$).unhandled }));
    assert.deepEqual(r.errors, [{ error: 'async boom', type: 'MESSAGE', title: 'rejects' }]);
    assert.deepEqual(r.after, ['rejects'], 'the next handler ran');
    assert.deepEqual(r.unhandled, [], 'handled, not an unhandled rejection');
  });
});
