/**
 * The page comes back online or visible while a connection attempt is still
 * in progress, in a real Chromium against a real Herald. An attempt made
 * while the network was dead (its SYN or handshake lost) would hang until
 * connectTimeoutMs (20 s by default) although the network is back: the
 * library replaces an attempt older than a short grace at once, keeping its
 * cursors (what was sent meanwhile is replayed, once), and leaves a young
 * attempt (a slow handshake on a working network) alone.
 *
 * The dead network is a TCP proxy on 127.0.0.1 that, while "dead", accepts
 * connections and never answers them (as a lost handshake looks to the page);
 * once "back", new connections are forwarded to Herald.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { pipeTo } from './helpers/freezable-proxy.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { browserSkipReason, connectPage, launchBrowser, recorder, waitForMessages, waitForState, type Recorder, type W } from './helpers/browser.js';
import { openAll } from './helpers/open-all.js';
import { newTab, sharedContext } from './helpers/browser-context.js';

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Longer than the library's grace (2.5 s) for an attempt in progress at wake-up. */
const PAST_GRACE_MS = 3000;

/** One connection the page made, with the start of what it sent (enough to tell a WebSocket handshake from a favicon). */
interface Conn {
  socket: Socket;
  chunks: Buffer[];
  closed: boolean;
  /** Accepted while the network was dead (held unanswered), or forwarded to Herald. */
  held: boolean;
}

const isHandshake = (c: Conn): boolean => Buffer.concat(c.chunks).toString('latin1').includes('/ws/admin');
/** The request line without its query (which carries the token). */
const firstLine = (c: Conn): string => Buffer.concat(c.chunks).toString('latin1').split('\r\n', 1)[0]!.replace(/\?\S*/, '') || '(nothing sent yet)';

/**
 * A proxy whose network can die (connections held, unanswered) and come back (new connections forwarded).
 * Attempts are counted as WebSocket handshakes, not as connections: Chromium
 * may open others (a favicon retried after its socket was cut by the death)
 * at any moment.
 */
class SwitchProxy {
  readonly #server: Server;
  readonly #all = new Set<Socket>();
  #dead = false;
  /** Every connection accepted, in order. */
  readonly conns: Conn[] = [];
  port = 0;

  constructor(readonly targetPort: number) {
    this.#server = createServer((client: Socket) => {
      this.#track(client);
      client.on('error', () => {});
      const entry: Conn = { socket: client, chunks: [], closed: false, held: this.#dead };
      this.conns.push(entry);
      client.on('close', () => (entry.closed = true));
      const record = (c: Buffer) => {
        entry.chunks.push(c);
        if (!entry.held && Buffer.concat(entry.chunks).length >= 2048) client.off('data', record);
      };
      client.on('data', record);
      if (!this.#dead) this.#pipe(client, []);
    });
  }

  #track(s: Socket): void {
    this.#all.add(s);
    s.on('close', () => this.#all.delete(s));
  }

  #pipe(client: Socket, buffered: Buffer[]): void {
    this.#track(pipeTo(client, this.targetPort, buffered));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return `http://127.0.0.1:${this.port}`;
  }

  /** The network dies: every open connection is cut, new ones are held unanswered. */
  die(): void {
    this.#dead = true;
    for (const s of this.#all) s.destroy();
  }

  /** The network is back for new connections; held ones stay as they are (lost). */
  revive(): void {
    this.#dead = false;
  }

  /** The held connections that carry a WebSocket handshake. */
  heldHandshakes(): Conn[] {
    return this.conns.filter((c) => c.held && isHandshake(c));
  }

  /** Every WebSocket handshake the page has made through this proxy, held or forwarded. */
  handshakes(): number {
    return this.conns.filter(isHandshake).length;
  }

  /** What each connection asked for first, for a failure's message. */
  describe(): string {
    return this.conns.map((c) => `${c.held ? 'held' : 'forwarded'}: ${firstLine(c)}`).join('; ');
  }

  /** Lets a held connection through after all (a slow handshake, not a lost one): what it sent so far goes first. */
  release(entry: Conn): void {
    entry.held = false;
    entry.socket.removeAllListeners('data');
    this.#pipe(entry.socket, entry.chunks);
  }

  async close(): Promise<void> {
    for (const s of this.#all) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await delay(20);
  }
}

function connectedEvents(rec: Recorder): Array<{ resumed: boolean }> {
  return rec.events.filter((e) => e.name === 'connected').map((e) => e.payload as { resumed: boolean });
}

describe('browser wake-up while an attempt is in progress', { skip: browserSkipReason() }, () => {
  let browser: Browser;
  let server: TestServer;
  /** Shared by the tests, each on an origin of its own (a proxy on a port of its own). */
  let context: BrowserContext;

  before(async () => {
    [browser, server] = await openAll([launchBrowser(), startHerald()]);
    context = await sharedContext(browser);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('back online: an attempt made on the dead network is replaced at once, and what was sent meanwhile arrives once', async () => {
    const proxy = new SwitchProxy(Number(new URL(server.url).port));
    const base = await proxy.listen();
    const page = await newTab(context);
    try {
      // Default connectTimeoutMs (20 s): what a real page has.
      await connectPage(page, base, await server.token('admin', 51), { reconnect: { baseMs: 100, capMs: 100 } });
      await server.api('POST', '/api/v1/send', { to: { aid: 51 }, message: { TYPE: 'MESSAGE', TITLE: 'before', TEXT: 'x' } });
      await waitForMessages(page, 1);

      proxy.die();
      // The library notices the drop and dials again, into the dead network.
      await waitFor('an attempt held by the dead network', () => proxy.heldHandshakes().length === 1);
      await waitForState(page, 'connecting');
      await server.api('POST', '/api/v1/send', { to: { aid: 51 }, message: { TYPE: 'MESSAGE', TITLE: 'while away', TEXT: 'x' } });
      await delay(PAST_GRACE_MS);

      proxy.revive();
      const t0 = Date.now();
      await page.evaluate(() => dispatchEvent(new Event('online')));
      // Without the replacement, the tab stays 'connecting' until the 20 s connect timeout.
      await waitForState(page, 'open', 5000);
      const tookMs = Date.now() - t0;
      assert.ok(tookMs < 4000, `open ${tookMs} ms after the network came back`);

      const messages = await waitForMessages(page, 2);
      await delay(200);
      assert.deepEqual((await recorder(page)).messages.map((m) => m.TITLE), ['before', 'while away'], 'replayed from the cursor, nothing twice');
      assert.deepEqual(messages.length, 2);
      assert.deepEqual(connectedEvents(await recorder(page)).map((e) => e.resumed), [false, true]);
      // The abandoned attempt's connection is closed by the page, not left beside the new one.
      await waitFor('the abandoned connection closing', () => proxy.heldHandshakes()[0]!.closed, 5000);
      assert.equal((await server.api('GET', '/api/v1/online/admin/51')).body.tabs, 1);
    } finally {
      await page.close();
      await proxy.close();
    }
  });

  it('visible again: a first attempt started while offline is replaced at once', async () => {
    const proxy = new SwitchProxy(Number(new URL(server.url).port));
    const base = await proxy.listen();
    const page = await newTab(context);
    try {
      await page.goto(`${base}/demo`);
      proxy.die();
      const token = await server.token('admin', 52);
      await page.evaluate((t) => {
        const w = window as W;
        w.rec = { frames: [], messages: [], states: [], events: [] };
        const c = w.Herald.connect({ kind: 'admin', token: t, url: location.origin, autoConnect: false });
        c.events.on('connected', (p) => w.rec.events.push({ name: 'connected', payload: { resumed: p.resumed } }));
        c.connect();
      }, token);
      await waitFor('the first attempt held by the dead network', () => proxy.heldHandshakes().length === 1);
      await delay(PAST_GRACE_MS);
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.state), 'connecting');

      proxy.revive();
      const t0 = Date.now();
      // Headless pages are always visible: the event is what a tab brought back to the front sees.
      await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
      await waitForState(page, 'open', 5000);
      assert.ok(Date.now() - t0 < 4000);
      assert.equal(await page.evaluate(() => (window as W).Herald.client!.welcome?.ID), 52);
      assert.equal(proxy.handshakes(), 2, `one new attempt beside the held one (connections: ${proxy.describe()})`);
      await waitFor('the abandoned connection closing', () => proxy.heldHandshakes()[0]!.closed, 5000);
    } finally {
      await page.close();
      await proxy.close();
    }
  });

  it('a young attempt (a slow handshake on a working network) is not cut by a wake-up', async () => {
    const proxy = new SwitchProxy(Number(new URL(server.url).port));
    const base = await proxy.listen();
    const page = await newTab(context);
    try {
      await page.goto(`${base}/demo`);
      proxy.die();
      const token = await server.token('admin', 53);
      await page.evaluate((t) => {
        const w = window as W;
        (w as W & { connectedAt: number }).connectedAt = Date.now();
        w.Herald.connect({ kind: 'admin', token: t, url: location.origin });
      }, token);
      await waitFor('the attempt held', () => proxy.heldHandshakes().length === 1);
      const slow = proxy.heldHandshakes()[0]!;
      proxy.revive();
      const ageAtWake = await page.evaluate(() => {
        dispatchEvent(new Event('online'));
        document.dispatchEvent(new Event('visibilitychange'));
        return Date.now() - (window as W & { connectedAt: number }).connectedAt;
      });
      // The library's grace for an attempt in progress is 2.5 s: an older one is rightly replaced.
      assert.ok(ageAtWake < 2000, `the wake-up came ${ageAtWake} ms after connect(): too late to find a young attempt`);
      await delay(500);
      // The slow handshake completes.
      proxy.release(slow);
      await waitForState(page, 'open', 5000);
      assert.equal(proxy.handshakes(), 1, `no second attempt beside the slow one (connections: ${proxy.describe()})`);
      assert.equal(slow.closed, false);
    } finally {
      await page.close();
      await proxy.close();
    }
  });
});
