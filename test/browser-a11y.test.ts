/**
 * Accessibility of the toasts and the demo page, in a real Chromium: contrast
 * of the close button in the dark scheme, what the live region is told while
 * a command runs, where the keyboard focus goes when a toast leaves, Escape,
 * which toast maxToasts pushes out, right-to-left pages and text, and the
 * demo page's connection badge. Checked through computed styles, attributes,
 * the focused element and mutation counts, never through screenshots.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

const HOST = 'a11y-test';

/** What the tests keep in the page, beside the library's globals. */
type Page$ = W & {
  t: InstanceType<W['Herald']['Toaster']>;
  contrast(el: Element): number;
  stateWrites: number;
};

describe('accessibility of the toasts and the demo page', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  const pages: Page[] = [];

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    context = await sharedContext(browser);
  });
  afterEach(async () => {
    await Promise.all(pages.splice(0).map((p) => p.close()));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /**
   * The demo page (for the library only, not signed in) with a Toaster of the
   * test's own as `window.t`, and `window.contrast(el)`: the WCAG contrast
   * ratio of el's text against what is behind it (translucent backgrounds
   * blended over the first opaque one).
   */
  async function open(options: Record<string, unknown> = {}): Promise<Page> {
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${server.url}/demo`);
    await p.evaluate(
      ({ hostId, options }) => {
        const w = window as unknown as Page$;
        w.t = new w.Herald.Toaster({ hostId, ...options });
        const rgba = (c: string) => {
          const n = (c.match(/[\d.]+/g) ?? []).map(Number);
          return [n[0] ?? 0, n[1] ?? 0, n[2] ?? 0, n[3] ?? 1] as const;
        };
        const lum = (c: readonly number[]) => {
          const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
          return 0.2126 * f(c[0]!) + 0.7152 * f(c[1]!) + 0.0722 * f(c[2]!);
        };
        w.contrast = (el) => {
          const layers: Array<readonly number[]> = [];
          for (let e: Element | null = el; e; e = e.parentElement ?? ((e.getRootNode() as ShadowRoot).host ?? null)) {
            const bg = rgba(getComputedStyle(e).backgroundColor);
            if (bg[3] > 0) layers.unshift(bg);
            if (bg[3] >= 1) break;
          }
          let bg = [255, 255, 255];
          for (const l of layers) bg = bg.map((v, i) => l[i]! * l[3]! + v * (1 - l[3]!));
          const [a, b] = [lum(rgba(getComputedStyle(el).color)), lum(bg)].sort((x, y) => y - x);
          return (a! + 0.05) / (b! + 0.05);
        };
      },
      { hostId: HOST, options },
    );
    return p;
  }

  /** Shows MESSAGEs that stay until closed. */
  async function show(p: Page, ...titles: string[]): Promise<void> {
    await p.evaluate((titles) => {
      for (const TITLE of titles) (window as unknown as Page$).t.show({ TYPE: 'MESSAGE', TITLE, TEXT: 'x', TIMEOUT: 0 });
    }, titles);
  }

  async function progress(p: Page, STATE: string, OUTPUT = '', PROGRAM = 'ping'): Promise<void> {
    await p.evaluate(([STATE, OUTPUT, PROGRAM]) => {
      const w = window as unknown as Page$ & { cancelled?: string[] };
      w.t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c1', PROGRAM, STATE, OUTPUT } as never, (id) => (w.cancelled ??= []).push(id));
    }, [STATE, OUTPUT, PROGRAM] as const);
  }

  /** The focused element, looking into the stack's shadow root: "#id", "close: <aria-label>", "cancel", or the tag name. */
  async function focused(p: Page): Promise<string> {
    return p.evaluate(() => {
      const a = document.activeElement;
      const inner = a?.shadowRoot?.activeElement;
      if (inner) return inner.classList.contains('herald-close') ? `close: ${inner.getAttribute('aria-label')}` : inner.className;
      return a?.id ? `#${a.id}` : (a?.tagName ?? 'none');
    });
  }

  async function titles(p: Page): Promise<string[]> {
    return p.locator(`#${HOST} .herald-toast .herald-title`).allInnerTexts();
  }

  it('the close button keeps its contrast on hover and keyboard focus in the dark scheme', async () => {
    const p = await open();
    for (const colorScheme of ['dark', 'light'] as const) {
      await p.emulateMedia({ colorScheme });
      await show(p, `contrast ${colorScheme}`);
      const close = p.locator(`#${HOST} .herald-toast`, { hasText: `contrast ${colorScheme}` }).locator('.herald-close');
      await close.hover();
      const hovered = await close.evaluate((el) => (window as unknown as Page$).contrast(el));
      await p.mouse.move(1, 690);
      const focus = await close.evaluate((el) => {
        (el as HTMLElement).focus();
        return { visible: el.matches(':focus-visible'), ratio: (window as unknown as Page$).contrast(el) };
      });
      assert.ok(hovered >= 4.5, `${colorScheme}: hovered × at ${hovered.toFixed(2)}:1`);
      assert.equal(focus.visible, true);
      assert.ok(focus.ratio >= 4.5, `${colorScheme}: focused × at ${focus.ratio.toFixed(2)}:1`);
    }
  });

  it('a running command does not re-announce its output or its unchanged state', async () => {
    const p = await open();
    await progress(p, 'running', 'PING 127.0.0.1\n');
    const live = p.locator(`#${HOST} [data-command-id="c1"]`);
    // A live region nested in the polite stack, switched off: a screen reader leaves it alone.
    assert.equal(await live.locator('.herald-output').getAttribute('aria-live'), 'off');
    await live.locator('.herald-state').evaluate((state) => {
      const w = window as unknown as Page$;
      w.stateWrites = 0;
      new MutationObserver((records) => (w.stateWrites += records.length)).observe(state, { childList: true, characterData: true, subtree: true });
    });
    for (let i = 1; i <= 3; i++) await progress(p, 'running', `64 bytes from 127.0.0.1: icmp_seq=${i}\n`);
    // Mutation records are delivered in a microtask: one more evaluate round trip has them.
    assert.equal(await p.evaluate(() => (window as unknown as Page$).stateWrites), 0, 'the same state is not written again');
    await progress(p, 'succeeded');
    assert.ok((await p.evaluate(() => (window as unknown as Page$).stateWrites)) > 0, 'a new state is written');
    assert.equal(await live.locator('.herald-state').innerText(), '— done');
  });

  it('closing a toast (button, Enter, Escape) moves the focus to its neighbour, then back to where it came from', async () => {
    const p = await open();
    await p.evaluate(() => {
      const b = Object.assign(document.createElement('button'), { id: 'origin', type: 'button', textContent: 'origin' });
      document.querySelector('header')!.append(b);
    });
    await show(p, 'A', 'B', 'C');
    await p.locator('#origin').focus();
    // Into the stack from a control on the page.
    await p.locator(`#${HOST} .herald-toast`, { hasText: 'A' }).locator('.herald-close').focus();
    assert.equal(await focused(p), 'close: Close: A');
    await p.keyboard.press('Enter');
    assert.deepEqual(await titles(p), ['B', 'C']);
    assert.equal(await focused(p), 'close: Close: B', 'the next toast');
    await p.keyboard.press('Tab');
    assert.equal(await focused(p), 'close: Close: C');
    await p.keyboard.press('Enter');
    assert.equal(await focused(p), 'close: Close: B', 'the previous toast when there is no next');
    // Escape closes the toast that has the focus.
    await p.keyboard.press('Escape');
    assert.deepEqual(await titles(p), []);
    assert.equal(await focused(p), '#origin', 'back where the focus was before it entered the stack');
  });

  it('Cancel keeps the keyboard focus, and hands it to the close button when the command ends', async () => {
    const p = await open();
    await progress(p, 'running', 'PING 127.0.0.1\n');
    const live = p.locator(`#${HOST} [data-command-id="c1"]`);
    await live.locator('.herald-cancel').focus();
    await p.keyboard.press('Enter');
    await p.keyboard.press('Enter');
    assert.deepEqual(await p.evaluate(() => (window as unknown as { cancelled?: string[] }).cancelled), ['c1'], 'cancelled once');
    assert.equal(await live.locator('.herald-cancel').getAttribute('aria-disabled'), 'true');
    assert.equal(await focused(p), 'herald-cancel', 'still on Cancel, not on <body>');
    await progress(p, 'cancelled');
    assert.equal(await live.locator('.herald-cancel').count(), 0);
    assert.equal(await focused(p), 'close: Close: ping');
  });

  it('maxToasts pushes out the oldest toast nobody is reading, and the oldest when everyone is', async () => {
    const p = await open({ maxToasts: 3 });
    await show(p, 'focused', 'second', 'third');
    await p.locator(`#${HOST} .herald-toast`, { hasText: 'focused' }).locator('.herald-close').focus();
    await show(p, 'fourth');
    assert.deepEqual(await titles(p), ['focused', 'third', 'fourth']);
    await p.locator(`#${HOST} .herald-toast`, { hasText: 'third' }).hover();
    await show(p, 'fifth');
    assert.deepEqual(await titles(p), ['focused', 'third', 'fifth'], 'hovered and focused both stay');
    await show(p, 'sixth');
    assert.deepEqual(await titles(p), ['focused', 'third', 'sixth']);
    // Everything older is held: the cap wins, the oldest goes and its focus moves on.
    await p.evaluate((hostId) => {
      const w = window as unknown as Page$;
      w.t.clear();
      w.t = new w.Herald.Toaster({ hostId, maxToasts: 1 });
    }, HOST);
    await show(p, 'held');
    await p.locator(`#${HOST} .herald-close`).focus();
    await show(p, 'newest');
    assert.deepEqual(await titles(p), ['newest']);
    assert.equal(await focused(p), 'close: Close: newest');
  });

  it('on a right-to-left page the accent bar and spinner follow the page, and command output stays left to right', async () => {
    const p = await open();
    await p.evaluate(() => document.documentElement.setAttribute('dir', 'rtl'));
    // The title follows the page, spinner first, though the program's name is in Latin letters.
    await progress(p, 'running', '64 bytes from 127.0.0.1: icmp_seq=1 ttl=64\n');
    const live = p.locator(`#${HOST} [data-command-id="c1"]`);
    const got = await live.evaluate((toast) => {
      const cs = getComputedStyle(toast);
      const out = getComputedStyle(toast.querySelector('.herald-output')!);
      const spin = getComputedStyle(toast.querySelector('.herald-spinner')!);
      return {
        toast: [cs.direction, cs.borderRightWidth, cs.borderLeftWidth, cs.paddingRight, cs.paddingLeft],
        output: [out.direction, out.unicodeBidi, out.textAlign],
        spinner: [spin.marginLeft, spin.marginRight],
      };
    });
    assert.deepEqual(got, {
      toast: ['rtl', '4px', '0px', '14px', '12px'],
      output: ['ltr', 'plaintext', 'left'],
      spinner: ['6px', '0px'],
    });
  });

  it('titles, texts and program names find their own direction; toasts and close buttons are named', async () => {
    const p = await open();
    await p.evaluate(() => (window as unknown as Page$).t.show({ TYPE: 'MESSAGE', TITLE: 'تنبيه جديد', TEXT: 'مرحبا <b>بالعالم</b>', TIMEOUT: 0 }));
    await progress(p, 'running');
    const got = await p.evaluate((id) => {
      const root = document.getElementById(id)!.shadowRoot!;
      const [message, command] = root.querySelectorAll<HTMLElement>('.herald-toast');
      const name = (toast: HTMLElement) => root.getElementById(toast.getAttribute('aria-labelledby')!)?.textContent;
      return {
        dirs: [
          message!.querySelector('.herald-title')!.getAttribute('dir'),
          message!.querySelector('.herald-text')!.getAttribute('dir'),
          command!.querySelector('.herald-title span:not(.herald-spinner):not(.herald-state)')!.getAttribute('dir'),
        ],
        titleDirection: getComputedStyle(message!.querySelector('.herald-title')!).direction,
        roles: [message!.getAttribute('role'), command!.getAttribute('role')],
        names: [name(message!), name(command!)],
        closes: [...root.querySelectorAll('.herald-close')].map((c) => c.getAttribute('aria-label')),
      };
    }, HOST);
    assert.deepEqual(got, {
      dirs: ['auto', 'auto', 'auto'],
      titleDirection: 'rtl',
      roles: ['group', 'group'],
      names: ['تنبيه جديد', 'ping — running'],
      closes: ['Close: تنبيه جديد', 'Close: ping'],
    });
    // A long TITLE is cut in the button's name.
    await p.evaluate(() => (window as unknown as Page$).t.show({ TYPE: 'MESSAGE', TITLE: `${'x'.repeat(200)}\nline two`, TEXT: '', TIMEOUT: 0 }));
    const long = await p.locator(`#${HOST} .herald-close`).last().getAttribute('aria-label');
    assert.equal(long, `Close: ${'x'.repeat(59)}…`);
  });

  it('says everything it shows or announces in the page\'s words when given them, and in English when not', async () => {
    const STATES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'paused'];
    const p = await open({
      maxToasts: 10, regionLabel: 'Уведомления', closeLabel: 'Закрыть', cancelLabel: 'Отменить', linkLabel: 'Открыть',
      stateLabels: { queued: 'в очереди', running: 'выполняется', succeeded: 'готово', failed: 'ошибка', timed_out: 'время вышло', cancelled: 'отменено' },
    });
    const shown = (hostId: string) => p.evaluate(({ hostId, STATES }) => {
      const w = window as unknown as Page$;
      const t = hostId === 'other' ? new w.Herald.Toaster({
        hostId, maxToasts: 10,
        // Not strings, or not the Toaster's own states: the defaults stay.
        stateLabels: JSON.parse('{"__proto__": {"running": "hijacked"}, "failed": 7, "paused": "на паузе"}'),
      }) : w.t;
      t.show({ TYPE: 'MESSAGE', TITLE: 'Платёж', TEXT: 'получен', EXTRA: 'https://example.net/p', TIMEOUT: 0 });
      STATES.forEach((STATE, i) => t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: `c${i}`, PROGRAM: 'ping', STATE, OUTPUT: '' } as never, () => undefined));
      const host = document.getElementById(hostId)!;
      const root = host.shadowRoot!;
      return {
        region: host.getAttribute('aria-label'),
        states: [...root.querySelectorAll<HTMLElement>('[data-command-id]')]
          .map((e) => `${e.dataset.commandId} ${e.querySelector('.herald-state')!.textContent}`).sort(),
        cancel: root.querySelector('.herald-cancel')!.textContent,
        link: root.querySelector('.herald-link')!.textContent,
        close: root.querySelector('.herald-close')!.getAttribute('aria-label'),
      };
    }, { hostId, STATES });
    assert.deepEqual(await shown(HOST), {
      region: 'Уведомления',
      states: ['c0 — в очереди', 'c1 — выполняется', 'c2 — готово', 'c3 — ошибка', 'c4 — время вышло', 'c5 — отменено', 'c6 — paused'],
      cancel: 'Отменить',
      link: 'Открыть',
      close: 'Закрыть: Платёж',
    });
    assert.deepEqual(await shown('other'), {
      region: 'Notifications',
      states: ['c0 — queued', 'c1 — running', 'c2 — done', 'c3 — failed', 'c4 — timed out', 'c5 — cancelled', 'c6 — paused'],
      cancel: 'Cancel',
      link: 'Open',
      close: 'Close: Платёж',
    });
  });

  it('on a narrow or short screen the stack takes at most half the height, and the last shadow is not clipped', async () => {
    const p = await open();
    await show(p, 'one');
    const host = p.locator(`#${HOST}`);
    // Chromium applies the clip margin only when both axes clip.
    assert.deepEqual(await host.evaluate((h) => [getComputedStyle(h).overflowX, getComputedStyle(h).overflowY, getComputedStyle(h).overflowClipMargin]), ['clip', 'clip', '24px']);
    await p.setViewportSize({ width: 400, height: 700 });
    assert.equal(await host.evaluate((h) => getComputedStyle(h).maxHeight), '350px');
    await p.setViewportSize({ width: 1100, height: 400 });
    assert.equal(await host.evaluate((h) => getComputedStyle(h).maxHeight), '200px');
  });

  it('on a short screen the newest toast fits in its half whole: a long TEXT\'s or a command output\'s close button is in view and takes a click', async () => {
    const p = await open();
    // No entry animation: its 6 px slide would move the button under the test.
    await p.emulateMedia({ reducedMotion: 'reduce' });
    const cut: string[] = [];
    for (const [width, height] of [[667, 375], [640, 320]] as const) {
      await p.setViewportSize({ width, height });
      for (const kind of ['message', 'command'] as const) {
        const at = await p.evaluate((kind) => {
          const w = window as unknown as Page$;
          document.getElementById('a11y-fit')?.remove();
          const t = new w.Herald.Toaster({ hostId: 'a11y-fit' });
          if (kind === 'message') {
            const text = Array.from({ length: 30 }, (_, i) => `<p>line ${i} of a long notification text</p>`).join('');
            t.show({ TYPE: 'MESSAGE', TITLE: 'Important title', TEXT: text, EXTRA: 'https://example.net/x', TIMEOUT: 0 });
          } else {
            const output = Array.from({ length: 40 }, (_, i) => `64 bytes from 127.0.0.1: icmp_seq=${i}`).join('\n');
            t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'fit', PROGRAM: 'ping', STATE: 'running', OUTPUT: output }, () => {});
          }
          const root = document.getElementById('a11y-fit')!.shadowRoot!;
          const close = [...root.querySelectorAll('.herald-close')].at(-1) as HTMLElement;
          const r = close.getBoundingClientRect();
          const x = r.left + r.width / 2;
          const y = r.top + r.height / 2;
          return { top: r.top, bottom: r.bottom, hit: root.elementFromPoint(x, y) === close, viewport: innerHeight };
        }, kind);
        if (!(at.top >= 0 && at.bottom <= at.viewport && at.hit)) cut.push(`${width}x${height} ${kind}: ${JSON.stringify(at)}`);
      }
    }
    assert.deepEqual(cut, []);
  });

  it('the live region is on the page once the client starts connecting, before the first toast', async () => {
    const p = await newTab(context);
    pages.push(p);
    await p.goto(`${server.url}/demo`);
    const token = await server.token('admin', 71);
    const before = await p.evaluate(
      ({ token }) => {
        const w = window as unknown as W;
        const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: { hostId: 'a11y-live' } });
        (w as unknown as { c: typeof c }).c = c;
        const list = document.getElementById('a11y-live')?.shadowRoot?.querySelector('.herald-list');
        return { live: list?.getAttribute('aria-live') ?? null, toasts: list?.children.length ?? null, state: c.state };
      },
      { token },
    );
    assert.deepEqual(before, { live: 'polite', toasts: 0, state: 'connecting' });
    // Without the built-in handlers the client shows no toasts and puts no region on the page.
    const bare = await p.evaluate(
      ({ token }) => {
        const w = window as unknown as W;
        const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: { hostId: 'a11y-bare' }, defaultHandlers: false });
        const there = document.getElementById('a11y-bare') !== null;
        c.close();
        return there;
      },
      { token },
    );
    assert.equal(bare, false);
  });

  it('the demo page: the connection badge is legible in every state and scheme, and announces itself', async () => {
    const p = await open();
    assert.equal(await p.locator('#state').getAttribute('role'), 'status');
    assert.equal(await p.locator('#send-result').getAttribute('role'), 'status');
    const low: string[] = [];
    for (const colorScheme of ['light', 'dark'] as const) {
      await p.emulateMedia({ colorScheme });
      for (const state of ['idle', 'connecting', 'open', 'waiting', 'closing', 'closed', 'rejected']) {
        const ratio = await p.locator('#state').evaluate((el, state) => {
          el.dataset.state = state;
          return (window as unknown as Page$).contrast(el);
        }, state);
        if (ratio < 4.5) low.push(`${colorScheme} ${state} ${ratio.toFixed(2)}:1`);
      }
    }
    assert.deepEqual(low, []);
  });
});
