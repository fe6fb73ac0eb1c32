/**
 * The connection events as an application sees them during an outage, in a
 * real Chromium against a real Herald. A page that shows "offline" on
 * `disconnected` and "online" on `connected` must see one `disconnected`
 * per outage — not one per failed attempt, whether the attempts fail fast
 * (nothing listens: 1006) or hang until `connectTimeoutMs` — then
 * `reconnecting` per attempt, then `connected`. A page stops retrying
 * during an outage by calling close() from a `reconnecting` listener.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, launchBrowser, newPage, waitForState, type Recorder, type W } from './helpers/browser.js';

type Seen = Window & { seen: Array<{ name: string; payload: unknown; state: string }> };

/** Connects a client that records its connection events, with the client's state as each listener saw it. */
async function openTab(page: Page, base: string, token: string, connectTimeoutMs = 20_000): Promise<void> {
  await page.goto(`${base}/demo`);
  await page.evaluate(({ token, connectTimeoutMs }) => {
    const w = window as unknown as W & Seen;
    w.seen = [];
    w.rec = { frames: [], messages: [], states: [], events: [] } satisfies Recorder;
    const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, connectTimeoutMs, reconnect: { baseMs: 30, capMs: 60 }, toasts: false });
    c.events.on('state', (s) => w.rec.states.push(s));
    for (const name of ['connected', 'disconnected', 'reconnecting', 'rejected'] as const) {
      c.events.on(name, (payload: unknown) => w.seen.push({ name, payload: JSON.parse(JSON.stringify(payload)) as unknown, state: c.state }));
    }
  }, { token, connectTimeoutMs });
  await waitForState(page, 'open');
}

function seen(page: Page): Promise<Seen['seen']> {
  return page.evaluate(() => (window as unknown as Seen).seen);
}

async function waitReconnecting(page: Page, n: number): Promise<void> {
  await page.waitForFunction((k) => (window as unknown as Seen).seen.filter((e) => e.name === 'reconnecting').length >= k, n, { timeout: 15_000 });
}

/** Names of the events, runs of `reconnecting` folded into one. */
function shape(events: Seen['seen']): string[] {
  const out: string[] = [];
  for (const e of events) if (!(e.name === 'reconnecting' && out.at(-1) === 'reconnecting…')) out.push(e.name === 'reconnecting' ? 'reconnecting…' : e.name);
  return out;
}

describe('connection events in Chromium', { skip: browserSkipReason() }, () => {
  // One browser and one context for the whole file, a page per test: a launch costs more than
  // most tests here, and a context about as much again as its page. Each test's server has a
  // port (an origin, and so a localStorage) of its own, or a person of its own.
  let browser: Browser;
  let context: BrowserContext;
  before(async () => {
    browser = await launchBrowser();
    const first = await newPage(browser);
    context = first.context;
    await first.page.close();
  });
  after(async () => {
    await browser?.close();
  });

  describe('connection events during an outage, in Chromium', () => {
    let dataDir: string;
    const fixed = { secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url') };
    before(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'herald-events-'));
    });
    after(() => {
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('server down for several attempts, then back: connected, one disconnected, reconnecting per attempt, connected', async () => {
      const port = await restartablePort();
      let server: TestServer = await startHerald({ port }, { ...fixed, dataDir });
      const page = await context.newPage();
      try {
        await openTab(page, server.url, await server.token('admin', 51));
        await server.close();
        await waitReconnecting(page, 5);
        server = await startHerald({ port }, { ...fixed, dataDir });
        await page.waitForFunction(() => (window as unknown as Seen).seen.filter((e) => e.name === 'connected').length === 2, undefined, { timeout: 15_000 });
        const events = await seen(page);
        assert.deepEqual(shape(events), ['connected', 'disconnected', 'reconnecting…', 'connected'], JSON.stringify(events));
        const disconnected = events.find((e) => e.name === 'disconnected')!;
        assert.deepEqual(disconnected.payload, { code: 1001, reason: 'server shutdown', willReconnect: true });
        assert.equal(disconnected.state, 'waiting', 'a disconnected listener sees the client waiting, not open');
      } finally {
        await page.close();
        await server.close();
      }
    });

    it('attempts that hang until connectTimeoutMs: still one disconnected, then reconnecting per attempt', async () => {
      const port = await restartablePort();
      const server = await startHerald({ port }, { ...fixed, dataDir });
      // After Herald: something on its port that accepts connections and never answers.
      const held = new Set<Socket>();
      const hang = createServer((s) => { held.add(s); s.on('error', () => {}); });
      const page = await context.newPage();
      try {
        await openTab(page, server.url, await server.token('admin', 52), 300);
        await server.close();
        await new Promise<void>((resolve) => hang.listen(port, '127.0.0.1', resolve));
        // The first attempts may come while Herald is still closing, and fail fast; wait for one
        // that reaches the hanging server, then for two more attempts after it.
        const deadline = Date.now() + 15_000;
        while (held.size === 0) {
          assert.ok(Date.now() < deadline, 'no attempt reached the hanging server');
          await new Promise((r) => setTimeout(r, 20));
        }
        const attemptsThen = (await seen(page)).filter((e) => e.name === 'reconnecting').length;
        await waitReconnecting(page, attemptsThen + 2);
        // Chromium keeps one handshake per host pending at a time (RFC 6455 §4.1), so the later
        // attempts queue behind the first held connection: they hang too, and time out.
        // From the first connect on: with a 300 ms connectTimeoutMs, a loaded machine can time out
        // the page's very first attempt too (reconnecting, then connected), which is not the outage.
        const all = await seen(page);
        const events = all.slice(all.findIndex((e) => e.name === 'connected'));
        assert.deepEqual(shape(events), ['connected', 'disconnected', 'reconnecting…'], JSON.stringify(all));
      } finally {
        await page.close();
        for (const s of held) s.destroy();
        await new Promise((r) => hang.close(r));
      }
    });

    it('a reconnecting listener that calls close() stops retrying during an outage, and close() says disconnected once', async () => {
      const port = await restartablePort();
      const server = await startHerald({ port }, { ...fixed, dataDir });
      const page = await context.newPage();
      try {
        await openTab(page, server.url, await server.token('admin', 53));
        await page.evaluate(() => {
          const c = (window as unknown as W).Herald.client!;
          const off = c.events.on('reconnecting', ({ attempt }) => {
            if (attempt < 2) return;
            off();
            void c.close();
          });
        });
        await server.close();
        await waitForState(page, 'closed');
        const connectingAtClose = await page.evaluate(() => (window as unknown as W).rec.states.filter((s) => s === 'connecting').length);
        // A retry would come within 60 ms; give it ten times that.
        await page.evaluate(() => new Promise((r) => setTimeout(r, 600)));
        const states = await page.evaluate(() => (window as unknown as W).rec.states);
        assert.equal(states.filter((s) => s === 'connecting').length, connectingAtClose, `no attempt after close(): ${states.join(',')}`);
        assert.equal(states.at(-1), 'closed');
        const events = await seen(page);
        assert.deepEqual(shape(events), ['connected', 'disconnected', 'reconnecting…', 'disconnected'], JSON.stringify(events));
        assert.deepEqual(events.filter((e) => e.name === 'disconnected').map((e) => (e.payload as { willReconnect: boolean }).willReconnect), [true, false]);
      } finally {
        await page.close();
      }
    });
  });

  describe('connected and reset when the tab signs in as somebody else, in Chromium', () => {
    let server: TestServer;
    before(async () => {
      server = await startHerald({});
    });
    after(async () => {
      await server?.close();
    });

    it("the previous person's cursors: connected says not resumed, and no reset (nothing was missed)", async () => {
      const page = await context.newPage();
      try {
        await openTab(page, server.url, await server.token('admin', 54));
        await server.api('POST', '/api/v1/send', { to: { aid: 54 }, message: { TYPE: 'MESSAGE', TITLE: 'for 54', TEXT: 'x' } });
        await page.waitForFunction(() => (window as unknown as W).Herald.client?.cursors().own !== undefined, undefined, { timeout: 10_000 });
        // Admin 55 has one waiting (unacknowledged) before signing in here.
        await server.api('POST', '/api/v1/send', { to: { aid: 55 }, message: { TYPE: 'MESSAGE', TITLE: 'for 55', TEXT: 'x' } });
        await page.evaluate(() => (window as unknown as W).Herald.client!.close());
        // The same tab (its sessionStorage holds admin 54's cursors) signs in as admin 55.
        const token55 = await server.token('admin', 55);
        await page.evaluate((token) => {
          const w = window as unknown as W & Seen;
          w.seen = [];
          w.rec.messages = [];
          const c = w.Herald.connect({ kind: 'admin', token, url: location.origin, toasts: false });
          for (const name of ['connected', 'reset'] as const) c.events.on(name, (payload: unknown) => w.seen.push({ name, payload: JSON.parse(JSON.stringify(payload)) as unknown, state: c.state }));
          c.on('MESSAGE', (m) => { w.rec.messages.push(m); });
        }, token55);
        await page.waitForFunction(() => (window as unknown as W).rec.messages.length >= 1, undefined, { timeout: 10_000 });
        await server.api('GET', '/api/v1/ping');
        const events = await seen(page);
        assert.deepEqual(events.map((e) => e.name), ['connected'], JSON.stringify(events));
        assert.equal((events[0]!.payload as { resumed: boolean }).resumed, false);
        assert.deepEqual(await page.evaluate(() => (window as unknown as W).rec.messages.map((m) => m.TITLE)), ['for 55']);
      } finally {
        await page.close();
      }
    });
  });
});
