/**
 * Reconnection and resume in a real Chromium against a real Herald: a
 * server restart on the same port and data dir, a dropped connection with
 * notifications queued meanwhile (replayed in order, none twice), a page
 * reload (cursors from sessionStorage), and a dead link (heartbeats stop)
 * found by the library itself through a TCP proxy that freezes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { CloseCode } from '../src/protocol/close-codes.js';
import { restartablePort } from './helpers/ports.js';
import { FreezableProxy } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, newPage, recorder, waitForMessages, waitForState, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';

type Frame = { TYPE?: string; SEQ?: number; TITLE?: string; STREAM?: string };

/** SEQs of the tracked frames of one stream a page received, in arrival order. */
async function seqsSeen(page: Page, stream: 'own' | 'broadcast' = 'own'): Promise<number[]> {
  const rec = await recorder(page);
  return (rec.frames as Frame[])
    .filter((f) => f.TYPE === 'MESSAGE' && typeof f.SEQ === 'number' && (f.STREAM === '*') === (stream === 'broadcast'))
    .map((f) => f.SEQ!);
}

/** Waits for the server to record an ack (acks are batched, ~200 ms). */
async function waitAcked(server: TestServer, messageId: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await server.api('GET', `/api/v1/messages/${encodeURIComponent(messageId)}`);
    if (res.body.acknowledged === true) return;
    if (Date.now() > deadline) assert.fail(`message ${messageId} was not acknowledged within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('browser reconnect and resume in Chromium', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  // The servers of the last two describes start beside the browser: each is used by one test only.
  // The default heartbeat for resume: a CI machine that stalls the page for 750 ms
  // (2.5 heartbeats of 300 ms) must not drop that tab, whose backoff is a minute.
  let resumeServer: TestServer;
  let deadLinkServer: TestServer;

  before(async () => {
    [browser, resumeServer, deadLinkServer] = await openAll([launchBrowser(), startHerald({}), startHerald({ heartbeatMs: 300 })]);
  });
  after(async () => {
    await Promise.all([browser?.close(), resumeServer?.close(), deadLinkServer?.close()]);
  });

  it('reconnects without a reload after the server restarts (same port, same data dir) and gets the next message once', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-browser-'));
    const fixed = { dataDir, secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url') };
    // Restarted on the same port while the page retries: below the ephemeral range (helpers/ports.ts).
    const port = await restartablePort();
    let server = await startHerald({ port }, fixed);
    try {
      const { page } = await newPage(browser);
      await connectPage(page, server.url, await server.token('admin', 1), { reconnect: { baseMs: 100, capMs: 500 } });
      await server.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 'before', TEXT: 'x' } });
      await waitForMessages(page, 1);

      await server.close();
      await page.waitForFunction(() => (window as W).rec.events.some((e) => e.name === 'reconnecting'), null, { timeout: 10_000 });
      server = await startHerald({ port }, fixed);
      await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'connected').length === 2, null, { timeout: 15_000 });

      await server.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 'after', TEXT: 'x' } });
      await server.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 'after 2', TEXT: 'x' } });
      const messages = await waitForMessages(page, 3);
      // The last one arrived: had a handler been registered twice, or a
      // second socket been left open, "after" would show up twice before it.
      assert.deepEqual(messages.map((m) => m.TITLE), ['before', 'after', 'after 2']);
      assert.equal(await page.locator('.herald-toast[data-type="MESSAGE"]').count(), 3);
      assert.equal((await server.api('GET', '/api/v1/online/admin/1')).body.tabs, 1, 'one socket, not two');
      const rec = await recorder(page);
      const disconnected = rec.events.filter((e) => e.name === 'disconnected').map((e) => e.payload as { code: number; willReconnect: boolean });
      assert.equal(disconnected[0]?.code, 1001, 'shutdown closes with going-away');
      assert.equal(disconnected[0]?.willReconnect, true);
      const resets = rec.events.filter((e) => e.name === 'reset');
      if (server.options.store === 'memory') {
        // The memory store's history died with the process: the library must say it may have missed some.
        assert.equal(resets.length, 1);
        assert.equal((resets[0]!.payload as { stream: string }).stream, 'own');
      } else {
        assert.equal(resets.length, 0, 'a durable store keeps its epoch across a restart');
      }
      await page.context().close();
    } finally {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('resume over one server', () => {
    it('resumes after a dropped connection: what was sent meanwhile is replayed in order, nothing twice; a reload resumes too', async () => {
      const server = resumeServer;
      const { page, context } = await newPage(browser);
      // What the tab says when it connects: its cursors are query parameters of the handshake (docs/delivery.md).
      const handshakes: URLSearchParams[] = [];
      page.on('websocket', (ws) => handshakes.push(new URL(ws.url()).searchParams));
      const cursorsSent = () => {
        const q = handshakes.at(-1)!;
        return { seq: q.get('seq'), epoch: q.get('epoch'), bseq: q.get('bseq'), bepoch: q.get('bepoch') };
      };
      // A long backoff, so the test decides when the tab comes back (the `online` event).
      await connectPage(page, server.url, await server.token('admin', 11), { reconnect: { baseMs: 60_000, capMs: 60_000 } });
      const send = async (title: string) => {
        const res = await server.api('POST', '/api/v1/send', { to: { aid: 11 }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
        assert.equal(res.status, 200);
        return res.body.results[0] as { messageId: string; seq: number; delivered: number };
      };
      const broadcast = async (title: string) => {
        const res = await server.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
        assert.equal(res.status, 200);
        return res.body as { messageId: string; seq: number };
      };
      await send('m1');
      await send('m2');
      const m3 = await send('m3');
      const b1 = await broadcast('b1');
      await waitForMessages(page, 4);
      await Promise.all([waitAcked(server, m3.messageId), waitAcked(server, b1.messageId)]);

      // The server drops the tab with a code that means "try again".
      for (const c of server.herald.gateway.connections) if (c.principal.id === 11) c.close(CloseCode.TRY_AGAIN, 'test drop');
      await waitForState(page, 'waiting');
      const queued = [await send('m4'), await send('m5'), await send('m6')];
      assert.deepEqual(queued.map((r) => r.delivered), [0, 0, 0], 'nobody online: queued');
      const b2 = await broadcast('b2');
      await page.evaluate(() => dispatchEvent(new Event('online')));
      const messages = await waitForMessages(page, 8);
      // The replay came from the tab's cursors, not from the server's record of what was acknowledged.
      const epochOf = (id: string) => id.split('.')[0]!;
      assert.equal(handshakes.length, 2);
      assert.deepEqual(cursorsSent(), { seq: '3', epoch: epochOf(m3.messageId), bseq: String(b1.seq), bepoch: epochOf(b1.messageId) });
      // Replay: the own stream, then the broadcast stream, each in order.
      assert.deepEqual(messages.map((m) => m.TITLE), ['m1', 'm2', 'm3', 'b1', 'm4', 'm5', 'm6', 'b2']);
      assert.deepEqual(await seqsSeen(page), [1, 2, 3, 4, 5, 6], 'the server replayed only what came after the cursor');
      assert.deepEqual(await seqsSeen(page, 'broadcast'), [b1.seq, b2.seq], 'and the broadcast cursor too');
      const cursors = await page.evaluate(() => (window as W).Herald.client!.cursors());
      assert.equal(cursors.own?.SEQ, 6);
      assert.equal(cursors.broadcast?.SEQ, b2.seq);
      await Promise.all([waitAcked(server, queued[2]!.messageId), waitAcked(server, b2.messageId)]);

      // A reload: the cursors come back from sessionStorage.
      await connectPage(page, server.url, await server.token('admin', 11));
      assert.deepEqual(cursorsSent(), { seq: '6', epoch: epochOf(m3.messageId), bseq: String(b2.seq), bepoch: epochOf(b2.messageId) });
      const rec = await recorder(page);
      assert.equal((rec.events.find((e) => e.name === 'connected')?.payload as { resumed: boolean }).resumed, true);
      await send('m7');
      const after = await waitForMessages(page, 1);
      assert.deepEqual(after.map((m) => m.TITLE), ['m7']);
      assert.deepEqual(await seqsSeen(page), [7]);
      assert.deepEqual(await seqsSeen(page, 'broadcast'), [], 'no broadcast replayed after the reload either');
      await context.close();
    });

  });

  describe('dead link over one server', () => {
    it('notices a dead link when heartbeats stop, and reconnects by itself', async () => {
      const server = deadLinkServer;
      const proxy = new FreezableProxy(Number(new URL(server.url).port));
      const base = `http://127.0.0.1:${await proxy.listen()}`;
      const { page, context } = await newPage(browser);
      try {
        await connectPage(page, base, await server.token('admin', 12), { reconnect: { baseMs: 50, capMs: 200 } });
        const welcome = await page.evaluate(() => (window as W).Herald.client!.welcome!.HEARTBEAT);
        assert.equal(welcome, 300);
        assert.ok(proxy.freeze() >= 1);
        // 2.5 heartbeats of silence: the library drops the socket and dials again (through the proxy, which lets new connections through).
        await page.waitForFunction(() => (window as W).rec.events.filter((e) => e.name === 'connected').length === 2, null, { timeout: 10_000 });
        const rec = await recorder(page);
        const disc = rec.events.find((e) => e.name === 'disconnected')?.payload as { code: number; reason: string };
        assert.deepEqual({ code: disc.code, reason: disc.reason }, { code: 4408, reason: 'no heartbeat' });
        await server.api('POST', '/api/v1/send', { to: { aid: 12 }, message: { TYPE: 'MESSAGE', TITLE: 'alive', TEXT: 'x' } });
        const messages = await waitForMessages(page, 1);
        assert.deepEqual(messages.map((m) => m.TITLE), ['alive']);
      } finally {
        await context.close();
        await proxy.close();
      }
    });
  });
});
