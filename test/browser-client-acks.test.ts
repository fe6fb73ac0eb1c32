/**
 * Acks that a closing tab could not send, in a real Chromium against a real
 * `herald start` child (SQLite). Acks are batched (here: held for a minute,
 * so that they are certainly still pending), so a tab that showed
 * notifications may go while its ack waits:
 *
 * - the server is killed (SIGKILL: no close frame), the tab is closed while
 *   the server is down, the server comes back, a new tab of the same
 *   browser opens: it must not show again what the closed tab showed, must
 *   show what came meanwhile, and the server must learn that the old ones
 *   were read (the new tab acknowledges them).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { restartablePort } from './helpers/ports.js';
import { HeraldProcess } from './helpers/herald-process.js';
import { browserSkipReason, launchBrowser, newPage, waitForState, type Recorder, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens /demo and connects a client with the given ack delay, recording MESSAGEs and toasts. */
async function openTab(page: Page, base: string, token: string, ackDelayMs: number): Promise<void> {
  await page.goto(`${base}/demo`);
  await page.evaluate(({ token, ackDelayMs }) => {
    const w = window as W;
    const rec: Recorder = { frames: [], messages: [], states: [], events: [] };
    w.rec = rec;
    const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, ackDelayMs, reconnect: { baseMs: 100, capMs: 300 }, toasts: { maxToasts: 100, timeoutMs: 0 } });
    c.events.on('state', (s) => rec.states.push(s));
    c.on('MESSAGE', (m) => { rec.messages.push(m); });
  }, { token, ackDelayMs });
  await waitForState(page, 'open');
}

async function titles(page: Page): Promise<{ handled: string[]; toasts: string[] }> {
  return page.evaluate(() => {
    const root = document.getElementById('herald-toasts')?.shadowRoot;
    return {
      handled: (window as W).rec.messages.map((m) => String(m.TITLE)),
      toasts: [...(root?.querySelectorAll('.herald-toast[data-type="MESSAGE"] .herald-title') ?? [])].map((t) => t.textContent ?? ''),
    };
  });
}

async function waitTitles(page: Page, n: number): Promise<void> {
  await page.waitForFunction((k) => (window as W).rec.messages.length >= k, n, { timeout: 10_000 });
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await delay(50);
  }
}

describe('acks of a tab closed while the server is away, in Chromium', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  let herald: HeraldProcess;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-acks-'));
    herald = new HeraldProcess(await restartablePort(), dataDir);
    [browser] = await openAll([launchBrowser(), herald.start()]);
  });
  after(async () => {
    await browser?.close();
    await herald?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('server killed, tab closed meanwhile, server back, a new tab: nothing shown twice, nothing lost, the old ones acknowledged', async () => {
    const { context, page } = await newPage(browser);
    try {
      const token = await herald.token(41);
      // A minute: the acks of what this tab shows are still pending when it closes.
      await openTab(page, herald.url, token, 60_000);
      const ids = [await herald.send(41, 'm1'), await herald.send(41, 'm2')];
      await waitTitles(page, 2);

      await herald.stop('SIGKILL');
      await page.waitForFunction(() => (window as W).Herald.client?.state !== 'open', undefined, { timeout: 10_000 });
      // pagehide tries to send the acks, but there is no socket to send them on.
      await page.close({ runBeforeUnload: true });

      await herald.start();
      assert.deepEqual([await herald.acknowledged(ids[0]!), await herald.acknowledged(ids[1]!)], [false, false], 'the closed tab could not ack');
      await herald.send(41, 'm3');

      const next = await context.newPage();
      await openTab(next, herald.url, token, 50);
      await herald.send(41, 'm4');
      await waitTitles(next, 2);
      // Anything replayed arrives before m4; a round trip more for good measure.
      await herald.api('GET', '/api/v1/ping');
      await delay(200);
      assert.deepEqual(await titles(next), { handled: ['m3', 'm4'], toasts: ['m3', 'm4'] }, 'm1 and m2 were shown by the closed tab');
      await until(async () => (await herald.acknowledged(ids[1]!)), 5000, 'the new tab acknowledges what the closed one showed');
    } finally {
      await context.close();
    }
  });
});
