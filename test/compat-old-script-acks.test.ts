/**
 * The old panel's browser script (websocket_client.js), kept during a
 * migration (README, step 4), acknowledges every frame it reads but `PING`,
 * `PONG` and `close` with `{"TYPE":"RESPONCE","RESPONCE":"RECEIVED"}`: no
 * SEQ, one ack per frame, in order. Herald takes each such ack for the
 * oldest frame it wrote that the script acks, so a page of the old panel is
 * not replayed, at its next load, what it already showed. Checked through a
 * real Herald with a real `ws` client that answers as the script does, and a
 * second tab without a cursor (a new page) that sees what is replayed.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import WebSocket from 'ws';
import { startHerald, type TestServer } from './helpers/server.js';
import { restartablePort } from './helpers/ports.js';
import { TestTab, until } from './helpers/ws-client.js';

const msg = (title: string) => ({ TYPE: 'MESSAGE', TITLE: title, TEXT: title });
const OLD_ACK = '{"TYPE":"RESPONCE","RESPONCE":"RECEIVED"}';

/**
 * A page of the old panel: the on_message of its script (ABillS,
 * cgi-bin/styles/default_adm/js/websocket_client.js). It acks the first
 * `acks` frames it would ack (WELCOME among them), then no more: the page
 * was left while the rest were still unread.
 */
class OldScriptTab {
  readonly frames: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly #ws: WebSocket;
  #acks: number;
  readonly #waiters = new Set<(f: any) => void>();

  private constructor(ws: WebSocket, acks: number) {
    this.#ws = ws;
    this.#acks = acks;
    // Listening from the start: the 101 answer and WELCOME come in one write.
    ws.on('message', (data) => {
      let message: any;
      try {
        message = JSON.parse(data.toString());
      } catch {
        return;
      }
      this.frames.push(message);
      switch (message.TYPE) {
        case 'close':
          ws.close(1000);
          break;
        case 'PING':
          ws.send('{"TYPE" : "PONG"}');
          break;
        case 'PONG':
          break;
        default:
          // AMessageChecker.processData(message), then the ack.
          if (this.#acks-- > 0) ws.send(OLD_ACK);
      }
      for (const w of [...this.#waiters]) w(message);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Opens admin `aid`'s page on the old daemon's admin port (adminPort), where the old script connects, without a cursor. */
  static async open(s: TestServer, aid: number, acks = Infinity): Promise<OldScriptTab> {
    const ws = new WebSocket(`ws://127.0.0.1:${s.options.adminPort}/admin/?token=${await s.token('admin', aid)}`);
    const tab = new OldScriptTab(ws, acks);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return tab;
  }

  /** Resolves once a frame matching `pred` has arrived (before or after this call); fails after 10 s. */
  next(pred: (f: any) => boolean): Promise<void> {
    if (this.frames.some(pred)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = (f: any): void => {
        if (!pred(f)) return;
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`timed out; last frames: ${JSON.stringify(this.frames.slice(-3))}`));
      }, 10_000);
      this.#waiters.add(waiter);
    });
  }

  /** Waits until Herald has handled every ack this page sent so far: they came before the PING it answers. */
  async settle(): Promise<void> {
    const seen = this.frames.length;
    this.#ws.send('{"TYPE":"PING"}');
    const closed = this.closed.then(({ code, reason }) => assert.fail(`the page was closed: ${code} ${reason}`));
    await Promise.race([this.next((f) => f.TYPE === 'PONG' && this.frames.indexOf(f) >= seen), closed]);
  }

  /** The notifications it was sent, by TITLE. */
  titles(): string[] {
    return this.frames.filter((f) => f.TYPE === 'MESSAGE').map((f) => f.TITLE);
  }

  /** Sends the script's ack once more, as for a frame read late. */
  ack(): void {
    this.#ws.send(OLD_ACK);
  }

  /** Leaves the page: the script's socket closes with it. */
  async leave(): Promise<void> {
    this.#ws.close(1000);
    await this.closed;
  }
}

/**
 * What a new page of admin `aid` is replayed: a tab without a cursor that
 * acks nothing, read up to a live-only marker sent once it is open (live
 * frames are held until the replay ends, then sent behind it).
 */
async function replayedTo(s: TestServer, aid: number): Promise<string[]> {
  const tab: TestTab = await s.tab('admin', aid);
  try {
    await tab.nextOfType('WELCOME');
    const marker = await s.api('POST', '/api/v1/send', { to: { aid }, message: msg('marker'), ttl: 0 });
    assert.equal(marker.status, 200, JSON.stringify(marker.body));
    await tab.next((f) => f?.TITLE === 'marker', 10_000);
    return tab.notifications().filter((f) => f.TITLE !== 'marker').map((f) => f.TITLE);
  } finally {
    tab.close();
  }
}

async function store(s: TestServer, items: Array<{ to: unknown; title: string }>): Promise<void> {
  const r = await s.api('POST', '/api/v1/send/batch', { messages: items.map(({ to, title }) => ({ to, message: msg(title) })), answer: 'summary' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function send(s: TestServer, to: unknown, message: unknown, ttl?: number): Promise<void> {
  const r = await s.api('POST', '/api/v1/send', ttl === undefined ? { to, message } : { to, message, ttl });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

const titles = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

describe("the old browser script's acks, which carry no SEQ", () => {
  let s: TestServer;
  beforeEach(async () => {
    s = await startHerald({ adminPort: await restartablePort() });
  });
  afterEach(() => s.close());

  test('a page that acked all it was replayed is replayed nothing at the next load, even 1,000 of them', async () => {
    // maxPerStream's default: a full day's stream. With WELCOME that is 1,001 acks in
    // a moment, past the 1,000 frames a tab may send in 10 s: they do not count.
    const n = 1000;
    await store(s, titles('n', 1, n).map((title) => ({ to: { aid: 1 }, title })));
    const page = await OldScriptTab.open(s, 1);
    await page.next((f) => f.TITLE === `n${n}`);
    await page.settle();
    assert.deepEqual(page.titles(), titles('n', 1, n));
    assert.deepEqual(page.frames.filter((f) => f.TYPE === 'close'), [], 'the page was not closed for its acks');
    await page.leave();
    assert.deepEqual(await replayedTo(s, 1), []);
  });

  test('a page left after acking some is replayed exactly the rest', async () => {
    await store(s, titles('n', 1, 10).map((title) => ({ to: { aid: 2 }, title })));
    // WELCOME, n1, n2, n3.
    const page = await OldScriptTab.open(s, 2, 4);
    await page.next((f) => f.TITLE === 'n10');
    await page.settle();
    await page.leave();
    assert.deepEqual(await replayedTo(s, 2), titles('n', 4, 10));
    // The next page acks all of them: the one after it gets nothing.
    const next = await OldScriptTab.open(s, 2);
    await next.next((f) => f.TITLE === 'n10');
    await next.settle();
    assert.deepEqual(next.titles(), titles('n', 4, 10));
    await next.leave();
    assert.deepEqual(await replayedTo(s, 2), []);
  });

  test('broadcasts among its own notifications, replayed and live, are acked each in its stream', async () => {
    await store(s, [
      { to: { aid: 3 }, title: 'o1' }, { to: { all: 'admins' }, title: 'b1' }, { to: { aid: 3 }, title: 'o2' },
      { to: { all: 'admins' }, title: 'b2' }, { to: { aid: 3 }, title: 'o3' },
    ]);
    // Replayed: WELCOME, o1, o2, o3, b1, b2; then live: o4, b3, o5, b4, o6. It acks up to b3.
    const page = await OldScriptTab.open(s, 3, 8);
    await page.next((f) => f.TITLE === 'b2');
    for (const [to, title] of [[{ aid: 3 }, 'o4'], [{ all: 'admins' }, 'b3'], [{ aid: 3 }, 'o5'], [{ all: 'admins' }, 'b4'], [{ aid: 3 }, 'o6']] as const) {
      await send(s, to, msg(title));
    }
    await page.next((f) => f.TITLE === 'o6');
    await page.settle();
    assert.deepEqual(page.titles(), ['o1', 'o2', 'o3', 'b1', 'b2', 'o4', 'b3', 'o5', 'b4', 'o6']);
    assert.deepEqual(page.frames.filter((f) => f.TYPE === 'MESSAGE').map((f) => f.STREAM ?? 'own'), ['own', 'own', 'own', '*', '*', 'own', '*', 'own', '*', 'own']);
    await page.leave();
    // A new page replays its own stream, then the broadcast stream.
    assert.deepEqual(await replayedTo(s, 3), ['o5', 'o6', 'b4']);
  });

  test('frames it does not ack (a PING notification) are not counted; those it acks without a SEQ are', async () => {
    const page = await OldScriptTab.open(s, 4);
    await page.next((f) => f.TYPE === 'WELCOME');
    await send(s, { aid: 4 }, msg('o1'));
    // The panel's is_admin_connected probe: the script answers it with a PONG, not an ack.
    // (A field of its own tells it from a heartbeat's PING.)
    await send(s, { aid: 4 }, { TYPE: 'PING', PROBE: 1 }, 0);
    // Live-only and plain-string notifications it acks, though they have no SEQ.
    await send(s, { aid: 4 }, msg('live'), 0);
    await send(s, { aid: 4 }, 'a plain string');
    await send(s, { aid: 4 }, msg('o2'));
    await send(s, { aid: 4 }, msg('o3'));
    await page.next((f) => f.TITLE === 'o3');
    await page.settle();
    assert.equal(page.frames.filter((f) => f.TYPE === 'PING' && f.PROBE === 1).length, 1, 'the probe reached the page');
    await page.leave();
    assert.deepEqual(await replayedTo(s, 4), []);
  });

  test('a replay with gaps (expired notifications between) is acked frame by frame', async () => {
    // SEQs 2, 4, 6, ... are left: each frame is a run of its own in the order kept.
    const r = await s.api('POST', '/api/v1/send/batch', {
      messages: titles('n', 1, 300).map((title, i) => ({ to: { aid: 6 }, message: msg(title), ttl: i % 2 === 0 ? 0.2 : 600 })),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const last = encodeURIComponent(r.body.results[298].results[0].messageId);
    await until(async () => (await s.api('GET', `/api/v1/messages/${last}`)).body.expired === true, 10_000, 'expiry');
    const even = titles('n', 1, 300).filter((_, i) => i % 2 === 1);
    // WELCOME and 120 of the 150.
    const page = await OldScriptTab.open(s, 6, 121);
    await page.next((f) => f.TITLE === 'n300');
    await page.settle();
    assert.deepEqual(page.titles(), even);
    await page.leave();
    assert.deepEqual(await replayedTo(s, 6), even.slice(120));
  });

  test('past 1,024 runs unacknowledged the order is no longer kept, and acks without a SEQ are ignored again', async () => {
    await s.close();
    s = await startHerald({ maxPerStream: 5000, adminPort: await restartablePort() });
    const r = await s.api('POST', '/api/v1/send/batch', {
      messages: titles('n', 1, 2100).map((title, i) => ({ to: { aid: 7 }, message: msg(title), ttl: i % 2 === 0 ? 0.2 : 600 })),
      answer: 'full',
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const last = encodeURIComponent(r.body.results[2098].results[0].messageId);
    await until(async () => (await s.api('GET', `/api/v1/messages/${last}`)).body.expired === true, 10_000, 'expiry');
    // 1,050 frames, each a run, all written before the page acks any: a tab that never acks holds no more.
    const page = await OldScriptTab.open(s, 7, 0);
    await page.next((f) => f.TITLE === 'n2100');
    for (let i = 0; i < 10; i++) page.ack();
    await page.settle();
    await page.leave();
    assert.equal((await replayedTo(s, 7)).length, 1050);
  });

  test('a tab that acks with a SEQ is followed by its SEQs alone, as before', async () => {
    await store(s, titles('n', 1, 6).map((title) => ({ to: { aid: 5 }, title })));
    const tab = await TestTab.open(`ws://127.0.0.1:${s.options.adminPort}/admin/`, { query: { token: await s.token('admin', 5) } });
    await tab.nextOfType('WELCOME');
    const first = await tab.next((f) => f?.TITLE === 'n1');
    await tab.next((f) => f?.TITLE === 'n6');
    tab.send({ TYPE: 'RESPONSE', SEQ: first.SEQ, EPOCH: first.EPOCH });
    // Taken in order for what it was written, these would ack up to n5.
    for (let i = 0; i < 6; i++) tab.send(OLD_ACK);
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    tab.close();
    await tab.closed;
    assert.deepEqual(await replayedTo(s, 5), titles('n', 2, 6));
  });
});
