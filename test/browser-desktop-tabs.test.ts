/**
 * Desktop notifications across the tabs of one person in one browser
 * profile, in a real Chromium and a real Herald: every tab gets every
 * notification, and the desktop must hear of each once, and not at all while
 * the person is looking at one of the tabs. Also a page without toasts
 * (`toasts: false`) that opted in to desktop notifications.
 *
 * Hidden is pretended: headless Chromium shows every tab. Each page's
 * Document.prototype.visibilityState says what the test wants, and a
 * visibilitychange event tells the library, as the browser would.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

interface Note {
  title: string;
  body: string | undefined;
  tag: string | undefined;
}

/** What the tests keep in a page. */
type Page$ = W & {
  notes: Note[];
  setHidden(hidden: boolean): void;
  client: InstanceType<W['Herald']['HeraldClient']>;
};

describe('desktop notifications across the tabs of one person', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  /** One context: its tabs share localStorage, as the tabs of a browser profile do. */
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    context = await sharedContext(browser);
    await context.grantPermissions(['notifications'], { origin: server.url });
    await context.addInitScript(() => {
      const w = window as unknown as Page$;
      // Every Notification the library creates is recorded (the real one still runs).
      w.notes = [];
      const Real = Notification;
      w.Notification = class extends Real {
        constructor(title: string, options?: NotificationOptions) {
          super(title, options);
          w.notes.push({ title, body: options?.body, tag: options?.tag });
        }
      };
      w.setHidden = (hidden) => {
        Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
        document.dispatchEvent(new Event('visibilitychange'));
      };
    });
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** A tab of admin `aid` (the demo page hosts the library), connected and recording its MESSAGEs; hidden first if asked. */
  async function tab(aid: number, options: { hidden?: boolean; toasts?: false } = {}): Promise<Page> {
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${server.url}/demo`);
    await p.evaluate(
      ({ token, hidden, toasts }) => {
        const w = window as unknown as Page$;
        if (hidden) w.setHidden(true);
        w.rec = { frames: [], messages: [], states: [], events: [] };
        w.client = w.Herald.connect({ kind: 'admin', token, url: location.origin, ...(toasts === false ? { toasts } : {}) });
        w.client.on('MESSAGE', (m) => {
          w.rec.messages.push(m);
        });
      },
      { token: await server.token('admin', aid), hidden: options.hidden ?? false, toasts: options.toasts },
    );
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });
    return p;
  }

  async function send(aid: number, message: unknown, extra: Record<string, unknown> = {}): Promise<void> {
    const res = await server.api('POST', '/api/v1/send', { to: { aid }, message, ...extra });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  /** Waits until every tab handled `n` MESSAGEs (the built-in, and so the desktop's turn, comes right after the page's handler). */
  async function handled(tabs: Page[], n: number): Promise<void> {
    for (const p of tabs) await p.waitForFunction((k) => (window as unknown as Page$).rec.messages.length >= k, n, { timeout: 10_000 });
  }

  const notes = (p: Page) => p.evaluate(() => (window as unknown as Page$).notes);
  const enable = (p: Page) => p.evaluate(() => (window as unknown as Page$).client.desktop.enable());

  it('shows desktop notifications on a page without toasts (toasts: false)', async () => {
    const p = await tab(61, { toasts: false });
    assert.equal(await enable(p), 'granted');
    await p.evaluate(() => (window as unknown as Page$).setHidden(true));
    await send(61, { TYPE: 'MESSAGE', TITLE: 'Ticket 9', TEXT: 'from <b>a subscriber</b>', ID: 'ticket-9' });
    await handled([p], 1);
    assert.deepEqual(await notes(p), [{ title: 'Ticket 9', body: 'from a subscriber', tag: 'herald:ticket-9' }]);
    assert.equal(await p.evaluate(() => document.getElementById('herald-toasts')), null, 'and no toast');
  });

  it('brings a TEXT\'s blank lines to the desktop as one, whatever spaces and tabs they hold, and lines without trailing ones', async () => {
    const p = await tab(66, { toasts: false });
    assert.equal(await enable(p), 'granted');
    await p.evaluate(() => (window as unknown as Page$).setHidden(true));
    const spaces = ' '.repeat(3000);
    await send(66, { TYPE: 'MESSAGE', TITLE: 'Lines', TEXT: `one \t<br> \t <br><br>  two<br>three${spaces}<br>${spaces}x<p>four</p>` });
    await handled([p], 1);
    // A paragraph ends a line where it starts too, as its box does on the toast.
    assert.deepEqual((await notes(p)).map((n) => n.body), [`one\n\n  two\nthree\n${spaces}x\nfour`]);
  });

  it('names what has no title, and sums up the rest, in the page\'s own words (untitledText, moreText)', async () => {
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${server.url}/demo`);
    await p.evaluate((token) => {
      const w = window as unknown as Page$;
      w.setHidden(true);
      w.rec = { frames: [], messages: [], states: [], events: [] };
      w.client = w.Herald.connect({
        kind: 'admin', token, url: location.origin, toasts: false,
        desktop: { burst: 1, untitledText: 'Уведомление', moreText: (n: number) => `Ещё ${n}` },
      });
      w.client.on('MESSAGE', (m) => {
        w.rec.messages.push(m);
      });
    }, await server.token('admin', 65));
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });
    assert.equal(await enable(p), 'granted');
    await send(65, 'Плановые работы в 02:00');
    await send(65, { TYPE: 'MESSAGE', TEXT: 'без заголовка' });
    await handled([p], 2);
    assert.deepEqual((await notes(p)).map(({ title, body }) => ({ title, body })), [
      { title: 'Уведомление', body: 'Плановые работы в 02:00' },
      { title: 'Ещё 1', body: 'Уведомление' },
    ]);
  });

  it('shows the same words twice in one hidden tab: two live-only notifications, not one taken for the other', async () => {
    const p = await tab(64);
    assert.equal(await enable(p), 'granted');
    await p.evaluate(() => (window as unknown as Page$).setHidden(true));
    await send(64, { TYPE: 'MESSAGE', TITLE: 'New chat message', TEXT: 'open the chat' }, { ttl: 0 });
    await handled([p], 1);
    await send(64, { TYPE: 'MESSAGE', TITLE: 'New chat message', TEXT: 'open the chat' }, { ttl: 0 });
    await handled([p], 2);
    assert.deepEqual((await notes(p)).map((n) => n.title), ['New chat message', 'New chat message']);
  });

  it('brings a later notification with the same ID to the desktop, where it replaces the earlier (its tag), stored and live-only alike', async () => {
    for (const [aid, extra] of [[67, {}], [68, { ttl: 0 }]] as const) {
      const tabs = [await tab(aid, { hidden: true }), await tab(aid, { hidden: true })];
      assert.equal(await enable(tabs[0]!), 'granted');
      await send(aid, { TYPE: 'MESSAGE', ID: 42, TITLE: 'Ticket 42: new', TEXT: 'x' }, extra);
      await handled(tabs, 1);
      await send(aid, { TYPE: 'MESSAGE', ID: 42, TITLE: 'Ticket 42: closed', TEXT: 'x' }, extra);
      await handled(tabs, 2);
      // Two tabs may decide at the same instant (see below); under one tag, the desktop shows one.
      const shown = (await Promise.all(tabs.map(notes))).flat();
      assert.deepEqual([...new Set(shown.map((n) => `${n.title} (${n.tag})`))].sort(), ['Ticket 42: closed (herald:42)', 'Ticket 42: new (herald:42)'], `${JSON.stringify(extra)}: ${JSON.stringify(shown)}`);
      await Promise.all(pages.splice(0).map((p) => p.close()));
    }
  });

  it('shows nothing on the desktop while a tab of the person is visible, then each notification once, live-only and plain-string ones too', async () => {
    const tabs = [await tab(62), await tab(62), await tab(62)];
    assert.equal(await enable(tabs[0]!), 'granted');
    // The person looks at the first tab; the other two are behind it.
    for (const p of tabs.slice(1)) await p.evaluate(() => (window as unknown as Page$).setHidden(true));
    await send(62, { TYPE: 'MESSAGE', TITLE: 'stored', TEXT: 'has a SEQ' });
    await send(62, { TYPE: 'MESSAGE', TITLE: 'live', TEXT: 'ttl 0: no SEQ' }, { ttl: 0 });
    await send(62, 'a plain string, as the old daemon allowed');
    await handled(tabs, 3);
    assert.deepEqual(await Promise.all(tabs.map(notes)), [[], [], []], 'the visible tab shows the toasts; the hidden ones stay quiet');

    // The person leaves the first tab too: now the desktop hears of what comes.
    await tabs[0]!.evaluate(() => (window as unknown as Page$).setHidden(true));
    // Wait for the other tabs to see the first one's word withdrawn (localStorage reaches other tabs a moment later).
    // Two tabs that rewrite the word at the same moment (a beat of one, the withdrawal of another) may leave an
    // entry that nobody withdraws; the library then believes it for VISIBLE_FRESH_MS (10 s) from when it was
    // written, no longer. Under the suite's load that happened once: the word is also gone when all it holds is stale.
    for (const p of tabs) {
      await p.waitForFunction(() => Object.entries(localStorage)
        .filter(([key]) => key.startsWith('herald:desktop-visible:'))
        .every(([, word]) => Object.values(JSON.parse(word) as Record<string, number>).every((at) => Date.now() - at >= 10_000)), null, { timeout: 20_000 });
    }
    await send(62, { TYPE: 'MESSAGE', TITLE: 'stored 2', TEXT: 'has a SEQ' });
    await send(62, { TYPE: 'MESSAGE', TITLE: 'live 2', TEXT: 'ttl 0: no SEQ' }, { ttl: 0 });
    await send(62, 'another plain string');
    await handled(tabs, 6);
    // Each may reach the Notification API from more than one tab (two tabs may decide at the same instant),
    // but always under one tag, so the desktop shows it once: a second with the same tag replaces the first.
    const byTitle = new Map<string, Set<string | undefined>>();
    for (const note of (await Promise.all(tabs.map(notes))).flat()) byTitle.set(`${note.title}|${note.body}`, (byTitle.get(`${note.title}|${note.body}`) ?? new Set()).add(note.tag));
    assert.deepEqual([...byTitle.keys()].sort(), ['Notification|another plain string', 'live 2|ttl 0: no SEQ', 'stored 2|has a SEQ']);
    for (const [what, tags] of byTitle) {
      assert.equal(tags.size, 1, `${what}: one tag, ${[...tags].join(', ')}`);
      assert.notEqual([...tags][0], undefined, `${what} has a tag`);
    }
  });

  it('keeps one burst window for the tabs: what one hidden tab summed up, another does not show on its own', async () => {
    const first = await tab(63, { hidden: true });
    assert.equal(await enable(first), 'granted');
    for (const title of ['m1', 'm2', 'm3']) await send(63, { TYPE: 'MESSAGE', TITLE: title, TEXT: title });
    await handled([first], 3);
    // A second tab of the person, opened behind (a link opened in the background) once the first showed its three.
    const second = await tab(63, { hidden: true });
    await send(63, { TYPE: 'MESSAGE', TITLE: 'm4', TEXT: 'm4' });
    await handled([first], 4);
    await second.waitForFunction(() => (window as unknown as Page$).rec.messages.some((m) => m.TITLE === 'm4'), null, { timeout: 10_000 });
    const [a, b] = [await notes(first), await notes(second)];
    assert.deepEqual(a.map((n) => n.title), ['m1', 'm2', 'm3', '1 more notification']);
    assert.deepEqual(a[3], { title: '1 more notification', body: 'm4', tag: 'herald:more' });
    // The second tab's window is the first one's: m4 is the fourth of it, summed up, never a popup of its own.
    assert.deepEqual(b.filter((n) => n.tag !== 'herald:more'), [], JSON.stringify(b));
  });

  /** Closes a tab's client, as an outage would (its cursors stay), to connect it again later: the server replays what it missed. */
  const away = (p: Page) => p.evaluate(() => (window as unknown as Page$).client.close());
  const back = (p: Page) => p.evaluate(() => (window as unknown as Page$).client.connect());

  it('does not show again what another tab showed, when a tab is replayed it after the burst window (back from an outage)', async () => {
    const [first, second] = [await tab(69, { hidden: true }), await tab(69, { hidden: true })];
    assert.equal(await enable(first), 'granted');
    await away(second);
    await send(69, { TYPE: 'MESSAGE', TITLE: 'Ticket 7', TEXT: 'assigned to you' });
    await handled([first], 1);
    // The second tab comes back 11 s later, past the burst window (10 s): its backoff's jitter spreads
    // reconnects over up to 30 s. Its clock is moved on rather than waited for.
    await second.evaluate(() => {
      const now = Date.now;
      Date.now = () => now() + 11_000;
    });
    await back(second);
    await handled([second], 1);
    assert.deepEqual((await notes(first)).map((n) => n.title), ['Ticket 7']);
    assert.deepEqual(await notes(second), [], 'the person saw (and maybe dismissed) it already');
  });

  it('sums up each notification of a burst once, however many tabs of the person are replayed it', async () => {
    const [first, second] = [await tab(70, { hidden: true }), await tab(70, { hidden: true })];
    assert.equal(await enable(first), 'granted');
    await away(second);
    // More than a burst window remembered of its notifications before (100).
    for (let i = 1; i <= 150; i++) await send(70, { TYPE: 'MESSAGE', TITLE: `n${i}`, TEXT: 'x' });
    await handled([first], 150);
    const shown = await notes(first);
    assert.deepEqual(shown.slice(0, 3).map((n) => n.title), ['n1', 'n2', 'n3']);
    assert.deepEqual(shown.at(-1), { title: '147 more notifications', body: 'n150', tag: 'herald:more' });
    await back(second);
    await handled([second], 150);
    assert.deepEqual(await notes(second), [], 'the second tab counted the burst again');
  });
});
