/**
 * What a toast and a desktop notification show of a sender's text, in a real
 * Chromium and a real Herald: bidi controls that would turn a name around
 * ("\u202Egnp.exe" reading "exe.png") are taken out; a close button quotes a
 * long title by whole graphemes; and TEXT whose markup nests too deep or has
 * too many tags (costly to parse for a toast that a replay pushes out a
 * moment later) shows as its text.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

const HOST = 'text-test';
/** Embedding, override and isolate controls: none may reach the screen. */
const CONTROLS = /[\u202A-\u202E\u2066-\u2069]/u;

/** What the tests keep in the page. */
type Page$ = W & {
  t: InstanceType<W['Herald']['Toaster']>;
  notes: Array<{ title: string; body: string | undefined }>;
  client: InstanceType<W['Herald']['HeraldClient']>;
};

describe('what toasts and desktop notifications show of a sender\'s text', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    context = await sharedContext(browser);
    await context.grantPermissions(['notifications'], { origin: server.url });
    await context.addInitScript(() => {
      const w = window as unknown as Page$;
      w.notes = [];
      const Real = Notification;
      w.Notification = class extends Real {
        constructor(title: string, options?: NotificationOptions) {
          super(title, options);
          w.notes.push({ title, body: options?.body });
        }
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

  /** The demo page (for the library only) with a Toaster of the test's own as `window.t`. */
  async function open(): Promise<Page> {
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${server.url}/demo`);
    await p.evaluate((hostId) => {
      const w = window as unknown as Page$;
      w.t = new w.Herald.Toaster({ hostId, maxToasts: 20, timeoutMs: 0 });
    }, HOST);
    return p;
  }

  it('takes bidi embedding, override and isolate controls out of titles, texts, command output and desktop notifications, and keeps the marks', async () => {
    const p = await open();
    const shown = await p.evaluate(() => {
      const w = window as unknown as Page$;
      const html = w.t.show({ TYPE: 'MESSAGE', TITLE: 'Invoice from \u202Egnp.exe paid', TEXT: 'Subscriber <b>\u202E00.001$</b> paid &#x202E;x \u2066iso\u2069 \u200Fmark' });
      const plain = w.t.show({ TYPE: 'MESSAGE', TITLE: '\u202Bt', TEXT: 'out\u202Eput', FORMAT: 'text' });
      const command = w.t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c1', PROGRAM: '\u202Eping', STATE: 'running', OUTPUT: 'line \u2067one\u2069' }, () => undefined);
      const text = (el: Element, selector: string) => el.querySelector(selector)?.textContent ?? '';
      return {
        title: text(html, '.herald-title'),
        text: text(html, '.herald-text'),
        plainTitle: text(plain, '.herald-title'),
        plainText: text(plain, '.herald-text'),
        program: text(command, '.herald-title span[dir="auto"]'),
        output: text(command, '.herald-output'),
        label: html.querySelector('.herald-close')?.getAttribute('aria-label'),
      };
    });
    assert.deepEqual(shown, {
      title: 'Invoice from gnp.exe paid',
      text: 'Subscriber 00.001$ paid x iso \u200Fmark',
      plainTitle: 't',
      plainText: 'output',
      program: 'ping',
      output: 'line one',
      label: 'Close: Invoice from gnp.exe paid',
    });

    // The desktop: a hidden tab that opted in.
    await p.evaluate(({ token }) => {
      const w = window as unknown as Page$;
      w.rec = { frames: [], messages: [], states: [], events: [] };
      w.client = w.Herald.connect({ kind: 'admin', token, url: location.origin });
      w.client.on('MESSAGE', (m) => {
        w.rec.messages.push(m);
      });
    }, { token: await server.token('admin', 71) });
    await p.waitForFunction(() => (window as unknown as Page$).client.state === 'open', null, { timeout: 10_000 });
    assert.equal(await p.evaluate(() => (window as unknown as Page$).client.desktop.enable()), 'granted');
    await p.evaluate(() => Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => 'hidden' }));
    const res = await server.api('POST', '/api/v1/send', { to: { aid: 71 }, message: { TYPE: 'MESSAGE', TITLE: 'Invoice from \u202Egnp.exe paid', TEXT: '<b>\u202E00.001$</b> &#x2066;x' } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await p.waitForFunction(() => (window as unknown as Page$).notes.length === 1, null, { timeout: 10_000 });
    const [note] = await p.evaluate(() => (window as unknown as Page$).notes);
    assert.deepEqual(note, { title: 'Invoice from gnp.exe paid', body: '00.001$ x' });
    assert.doesNotMatch(JSON.stringify(note), CONTROLS);

    // FORMAT:'text': the body is the TEXT as written, markup and all, but without the controls.
    const plain = await server.api('POST', '/api/v1/send', { to: { aid: 71 }, message: { TYPE: 'MESSAGE', TITLE: 'Plain \u202Et', TEXT: 'Paid \u202E00.001$ <b>\u2066x\u2069</b> \u202Aa\u202C\u202Bb\u202C\u202Dc\u2067d\u2068e\u200F', FORMAT: 'text' } });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    await p.waitForFunction(() => (window as unknown as Page$).notes.length === 2, null, { timeout: 10_000 });
    const [, plainNote] = await p.evaluate(() => (window as unknown as Page$).notes);
    assert.doesNotMatch(plainNote?.body ?? '', CONTROLS, `a FORMAT:'text' desktop body keeps a bidi control: ${JSON.stringify(plainNote)}`);
    assert.deepEqual(plainNote, { title: 'Plain t', body: 'Paid 00.001$ <b>x</b> abcde\u200F' });
  });

  it('quotes a long title in the close button by whole graphemes', async () => {
    const p = await open();
    // 63 graphemes: the label keeps 59 and a …; the 59th is 👩‍💻, three code points joined.
    const label = await p.evaluate(() => {
      const w = window as unknown as Page$;
      return w.t.show({ TYPE: 'MESSAGE', TITLE: `${'a'.repeat(58)}👩‍💻👩‍💻bbb`, TEXT: 'x' }).querySelector('.herald-close')?.getAttribute('aria-label');
    });
    assert.equal(label, `Close: ${'a'.repeat(58)}👩‍💻…`);
  });

  it('shows TEXT nested deeper than 32 elements, or with more than 1000 tags, as its text, and keeps the formatting of the rest', async () => {
    const p = await open();
    const shown = await p.evaluate(() => {
      const w = window as unknown as Page$;
      const render = (TEXT: string) => {
        const text = w.t.show({ TYPE: 'MESSAGE', TITLE: 't', TEXT }).querySelector('.herald-text')!;
        return { elements: [...new Set([...text.querySelectorAll('*')].map((e) => e.localName))], text: text.textContent };
      };
      return {
        deep: render(`${'<b>'.repeat(40)}deep &amp; bold`),
        // An end tag with nothing of its name open closes nothing, as in the parser.
        misclosed: render(`${'<i></b>'.repeat(40)}misclosed`),
        many: render('<i>x</i>'.repeat(600)),
        // A formatting element's end tag leaves the block opened inside it open: 40 levels, not 1.
        adopted: render(`${'<b><ul></b>'.repeat(40)}adopted`),
        // Misnested as people write it, within the limits: kept.
        misnested: render('<b><i>both</b> italic</i> plain'),
        script: render(`${'<b>'.repeat(40)}<script>window.ran = 1</script>after`),
        usual: render('<b>bold</b> and <i>it</i><ul><li>one<li>two</ul><p>para'),
        ran: (window as unknown as { ran?: number }).ran,
      };
    });
    assert.deepEqual(shown, {
      deep: { elements: [], text: 'deep & bold' },
      misclosed: { elements: [], text: 'misclosed' },
      many: { elements: [], text: 'x'.repeat(600) },
      adopted: { elements: [], text: 'adopted' },
      misnested: { elements: ['b', 'i'], text: 'both italic plain' },
      script: { elements: [], text: 'after' },
      usual: { elements: ['b', 'i', 'ul', 'li', 'p'], text: 'bold and itonetwopara' },
      ran: undefined,
    });
  });
});
