/**
 * Acks sent in answer to a graceful shutdown's close notice are recorded.
 *
 * A page's code sees the close notice only after its browser has read what
 * came with it, and Chromium answers a close frame by itself: when the close
 * frame followed the notice at once, the acks the browser library sends from
 * the notice's handler (those it was still batching) went out on a closing
 * socket and were lost, and after the restart a new tab was replayed what
 * the person had already been shown. So a tab that owes acks gets its close
 * frame once it has sent them, or after a short wait; one that never
 * answers is still closed, and close() still ends.
 */
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { HeraldProcess } from './helpers/herald-process.js';
import { restartablePort } from './helpers/ports.js';
import { notify, onCloseNotice } from './helpers/close-notice.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, waitForState, type Recorder, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { TestTab, until } from './helpers/ws-client.js';

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Acks `sent` when the close notice comes: not from within the notice's
 * handler but a turn later, when the client has read whatever came with the
 * notice. A page's handler runs so, and by then a close frame sent with the
 * notice had been answered. `sent` says whether the socket was still open.
 */
function ackOnNotice(tab: TestTab, sent: { SEQ: number; EPOCH: string }): { sent: boolean } {
  const acked = { sent: false };
  onCloseNotice(tab, () => {
    setImmediate(() => {
      if (tab.ws.readyState !== tab.ws.OPEN) return;
      tab.send({ TYPE: 'RESPONSE', SEQ: sent.SEQ, EPOCH: sent.EPOCH });
      acked.sent = true;
    });
  });
  return acked;
}

describe('acks sent on a shutdown\'s close notice, from a ws client', () => {
  test('a shutdown step that fails (the session resolver\'s close throws) does not stop the ones after it: the store still commits the ack, and close() rejects with the failure', async () => {
    const first = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' });
    let again: TestServer | undefined;
    try {
      const tab = await first.tab('admin', 52);
      await tab.nextOfType('WELCOME');
      const sent = await notify(first, tab, 52);
      const acked = ackOnNotice(tab, sent);
      // Fault injection into a real resolver: as a database pool that fails to end would.
      (first.herald.resolver as { close(): Promise<void> }).close = async () => {
        throw new Error('pool end failed');
      };
      await assert.rejects(first.herald.close(), /pool end failed/);
      assert.equal((await tab.closed).code, 1001);
      assert.equal(acked.sent, true);
      again = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' }, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
      const status = await again.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.acknowledged, true, 'the store was closed after the failed step, and committed the ack');
    } finally {
      await again?.close();
      rmSync(first.dataDir, { recursive: true, force: true });
    }
  });

  test('an ack sent after the notice was handled, as a page sends it, is recorded and kept across the restart', async () => {
    const first = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' });
    const tab = await first.tab('admin', 51);
    await tab.nextOfType('WELCOME');
    const sent = await notify(first, tab, 51);
    const acked = ackOnNotice(tab, sent);
    await first.herald.close();
    const closed = await tab.closed;
    assert.equal(closed.code, 1001);
    assert.equal(acked.sent, true, 'the socket was still open when the client answered the notice');
    const again = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' }, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
    try {
      const status = await again.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
      // A new tab of the person is not replayed it.
      const next = await again.tab('admin', 51);
      const welcome = await next.nextOfType('WELCOME');
      assert.equal(welcome.SEQ, sent.SEQ);
      await again.api('POST', '/api/v1/send', { to: { aid: 51 }, message: { TYPE: 'MESSAGE', TEXT: 'after the restart' } });
      const m = await next.nextOfType('MESSAGE');
      assert.equal(m.TEXT, 'after the restart', 'the acknowledged notification was replayed');
    } finally {
      await again.close();
      await first.close();
    }
  });

  test('a kick (POST /api/v1/disconnect) waits for the ack sent on its notice too, and records it', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const tab = await s.tab('admin', 54);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 54);
      const acked = ackOnNotice(tab, sent);
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 54 }, reason: 'password changed' });
      assert.deepEqual(kicked.body, { tabs: 1 });
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'password changed' });
      assert.equal(acked.sent, true, 'the socket was still open when the client answered the notice');
      await until(async () => (await s.api('GET', `/api/v1/messages/${sent.id}`)).body.acknowledged === true, 5000, 'the ack to be recorded');
    } finally {
      await s.close();
    }
  });

  test('a client that ignores the notice (the old browser script) is still closed with the close frame', async () => {
    const s = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' });
    try {
      const tab = await s.tab('admin', 52);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 52);
      await s.herald.close();
      assert.deepEqual(await tab.closed, { code: 1001, reason: 'server shutdown' });
      assert.ok(tab.frames.some((f) => f.TYPE === 'close' && f.REASON === 'server shutdown'), 'the notice came first');
      // Nothing acknowledged it: it stays unacknowledged.
      const again = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' }, { dataDir: s.dataDir, secret: s.secret, apiToken: s.apiToken });
      try {
        const status = await again.api('GET', `/api/v1/messages/${sent.id}`);
        assert.equal(status.body.acknowledged, false, JSON.stringify(status.body));
      } finally {
        await again.close();
      }
    } finally {
      await s.close();
    }
  });

  test('a client that never answers anything (its network died) does not keep close() from ending', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    const proxy = new FreezableProxy(Number(new URL(s.url).port));
    await proxy.listen();
    try {
      const token = await s.token('admin', 53);
      const tab = await TestTab.open(`ws://127.0.0.1:${proxy.port}/ws/admin`, { query: { token } });
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 53);
      // It owes an ack, and will neither send it nor read the notice or the close frame.
      assert.equal(proxy.freeze(), 1);
      // Ends: the tab is ended without its close handshake once the gateway's grace is over.
      await s.herald.close();
      tab.terminate();
    } finally {
      await proxy.close();
      await s.close();
    }
  });
});

/** Opens /demo and connects a client with the given ack delay, recording the MESSAGEs it handles. */
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

const handled = (page: Page): Promise<string[]> => page.evaluate(() => (window as W).rec.messages.map((m) => String(m.TITLE)));

async function waitHandled(page: Page, n: number): Promise<void> {
  await page.waitForFunction((k) => (window as W).rec.messages.length >= k, n, { timeout: 10_000 });
}

describe('acks a Chromium tab sends on a shutdown\'s close notice', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  let herald: HeraldProcess;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-shutdown-acks-'));
    herald = new HeraldProcess(await restartablePort(), dataDir);
    [browser] = await openAll([launchBrowser(), herald.start()]);
  });
  after(async () => {
    await browser?.close();
    await herald?.stop('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('SIGTERM while its acks are batched, restart: a new tab elsewhere is not replayed what it showed', async () => {
    const { context, page } = await newPage(browser);
    const elsewhere = await newPage(browser);
    try {
      const token = await herald.token(61);
      // A minute: the acks of what this tab shows are still batched at the shutdown.
      await openTab(page, herald.url, token, 60_000);
      const ids = [await herald.send(61, 'm1'), await herald.send(61, 'm2')];
      await waitHandled(page, 2);
      assert.deepEqual([await herald.acknowledged(ids[0]!), await herald.acknowledged(ids[1]!)], [false, false], 'the acks are still batched');

      await herald.stop('SIGTERM');
      assert.equal(herald.child?.exitCode, 0, herald.stderr);
      // Closed before the server is back: its reconnect would send the acks anyway.
      await page.close();

      await herald.start();
      assert.deepEqual([await herald.acknowledged(ids[0]!), await herald.acknowledged(ids[1]!)], [true, true], 'the acks sent on the close notice were recorded');
      // Another browser (no note of what the first one showed): what the server replays is all it gets.
      await openTab(elsewhere.page, herald.url, token, 50);
      await herald.send(61, 'm3');
      await waitHandled(elsewhere.page, 1);
      // Anything replayed arrives before m3; a round trip more for good measure.
      await herald.api('GET', '/api/v1/ping');
      await delay(200);
      assert.deepEqual(await handled(elsewhere.page), ['m3'], 'm1 and m2 were replayed');
    } finally {
      await context.close();
      await elsewhere.context.close();
    }
  });
});
