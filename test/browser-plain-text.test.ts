/**
 * TEXT shown as plain text, in Chromium: the fallback of sanitizeHtml for
 * markup too intricate to parse (past 1000 tags; sanitize.ts asPlainText),
 * a desktop notification's body (plainText), and a FORMAT "text" TEXT cut at
 * maxTextChars (clipText). Nothing of the text is lost, and line breaks,
 * paragraphs, lists and list items each end a line however they are written.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

/** Empty formatting tags enough to take TEXT past 1000 tags, and so to the plain-text fallback. */
const PAST_TAG_LIMIT = '<i></i>'.repeat(501);

describe('TEXT as plain text', { skip: browserSkipReason() }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    [server, browser] = await openAll([startHerald(), launchBrowser()]);
    ({ page } = await newPage(browser));
    await page.goto(`${server.url}/demo`);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  /** The lines sanitizeHtml gives the page for `html`: its text, split at its `<br>` elements. */
  const fallbackLines = (html: string) =>
    page.evaluate((h) => {
      const lines: string[] = [];
      let line = '';
      for (const node of (window as W).Herald.sanitizeHtml(h).childNodes) {
        if (node.nodeName === 'BR') {
          lines.push(line);
          line = '';
        } else {
          line += node.textContent ?? '';
        }
      }
      return [...lines, line];
    }, html);

  /** The bodies of the desktop notifications shown for `messages`, in a hidden tab that opted in. */
  const desktopBodies = (messages: Array<Record<string, unknown>>) =>
    page.evaluate((messages) => {
      const w = window as W;
      const bodies: string[] = [];
      (w as unknown as { Notification: unknown }).Notification = Object.assign(
        function (_title: string, options: NotificationOptions) {
          bodies.push(options.body ?? '');
        },
        { permission: 'granted' },
      );
      localStorage.setItem('herald:desktop', '1');
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      const desktop = new w.Herald.DesktopNotifier({ burst: messages.length });
      messages.forEach((m, i) => desktop.maybeShow({ TYPE: 'MESSAGE', TITLE: `n${i}`, SEQ: i + 1, EPOCH: `plain-${Math.random()}`, ...m }));
      return bodies;
    }, messages);

  for (const opener of ['<?php', '</0', '</ ', '<!x', 'a < b']) {
    it(`the fallback keeps the text after ${JSON.stringify(opener)}, which the parser would read as a comment running to the end`, async () => {
      const html = `Deploy log: ${opener} header not found<ul>${Array.from({ length: 501 }, (_, i) => `<li>host-${i} ok</li>`).join('')}</ul>Last line: 3 hosts failed`;
      const lines = await fallbackLines(html);
      assert.equal(lines[0], `Deploy log: ${opener} header not found`);
      assert.equal(lines[501], 'host-500 ok');
      assert.equal(lines.at(-1), 'Last line: 3 hosts failed');
    });
  }

  it('the fallback decodes the character references the sender wrote, and keeps a `<` as text', async () => {
    const lines = await fallbackLines(`if a &lt; b &amp;&amp; c <= d: <b>go</b> &gt;${PAST_TAG_LIMIT}`);
    assert.deepEqual(lines, ['if a < b && c <= d: go >']);
  });

  it('the fallback ends a line at a <br> with attributes, and at each paragraph, list and list item, end tag or none', async () => {
    const lines = await fallbackLines(`<p class="lead">one<p>two<ul><li>a<li data-x="1">b</ul>end<br class="x">next<br data-mce-bogus="1">last<br/ >${PAST_TAG_LIMIT}`);
    assert.deepEqual(lines, ['one', 'two', 'a', 'b', 'end', 'next', 'last']);
  });

  it('a desktop notification ends a line at a <br> with attributes, and at paragraphs and list items without end tags', async () => {
    const bodies = await desktopBodies([
      { TEXT: 'Server: db1<br class="x">Status: down' },
      { TEXT: 'Server: db1<br data-mce-bogus="1">Status: down' },
      { TEXT: 'Server: db1<br/ >Status: down' },
      { TEXT: 'Hosts:<ul><li>db1<li>db2</ul>Checked' },
      { TEXT: '<ul>\n  <li>db1</li>\n  <li>db2</li>\n</ul>' },
      { TEXT: 'Intro<p>Paragraph<p>Another' },
      { TEXT: `Hosts:<ul><li>db1<li>db2</ul><br class="x">Checked${PAST_TAG_LIMIT}` },
    ]);
    assert.deepEqual(bodies, [
      'Server: db1\nStatus: down',
      'Server: db1\nStatus: down',
      'Server: db1\nStatus: down',
      'Hosts:\ndb1\ndb2\nChecked',
      'db1\ndb2',
      'Intro\nParagraph\nAnother',
      'Hosts:\ndb1\ndb2\nChecked',
    ]);
  });

  it('a FORMAT "text" TEXT longer than maxTextChars keeps the lines next to the cut, a `->` in them too, on the toast and the desktop', async () => {
    const marker = 'line 5001: ok\nline 5002: a -> b\n';
    const TEXT = 'x'.repeat(6000) + marker + 'y'.repeat(4998 - marker.length);
    const toast = await page.evaluate((TEXT) => {
      const t = new (window as W).Herald.Toaster({ hostId: 'plain-cut' });
      return t.show({ TYPE: 'MESSAGE', TITLE: 'ls -l', TEXT, FORMAT: 'text' }).querySelector('.herald-text')!.textContent!;
    }, TEXT);
    const [desktop] = await desktopBodies([{ TEXT, FORMAT: 'text' }]);
    for (const shown of [toast, desktop!]) {
      assert.ok(shown.includes(`\n…\n${marker}`), `the lines after the cut: ${JSON.stringify(shown.slice(4990, 5040))}`);
      assert.ok(shown.length <= 10_000);
    }
  });
});
