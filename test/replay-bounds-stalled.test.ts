/**
 * A tab that stops reading part-way through its replay, over real sockets
 * (src/server/gateway/connection.ts, #replayPage and heartbeat()):
 * - it holds its unsent backlog and nothing more: no page of decoded
 *   notifications waits in the server for it (each was up to replayBatch,
 *   500, of up to 16 KB: 20 such tabs held 200 MB for as long as they
 *   answered heartbeats);
 * - answering heartbeats without reading (a WebSocket pong needs none) does
 *   not keep it open: a replay whose tab neither took any of its backlog nor
 *   acked anything further for a couple of heartbeats is closed as a slow
 *   consumer (4429), and the tab resumes from what it read, losing nothing;
 *   nor does acking what it was written without reading it;
 * - a slow link that takes some of its backlog in every heartbeat is waited
 *   for, and gets the whole replay; so is one that reads steadily, too
 *   slowly for any of its backlog to leave Herald for many heartbeats, and
 *   acks what it reads as the browser library does.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, before, describe, test } from 'node:test';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import type { StoredMessage } from '../src/server/store/message-store.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';
import { openRawSocket, RawTab } from './helpers/raw-tab.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Stored sends: what the tabs resume over must be in the store. */
const TTL_S = 600;
/** 16 KB notifications: what a page of them weighs is what is at stake. */
const TEXT = 'x'.repeat(16 * 1024);

/** `count` notifications of `text` (TEXT) to admin `aid`, N from 1; returns the stream's EPOCH. */
async function backlog(s: TestServer, aid: number, count: number, text = TEXT): Promise<string> {
  let epoch = '';
  const per = Math.floor((800 * 1024) / text.length);
  for (let i = 0; i < count; i += per) {
    const messages = Array.from({ length: Math.min(per, count - i) }, (_, k) => ({ to: { aid }, ttl: TTL_S, message: { TYPE: 'MESSAGE', N: i + k + 1, TEXT: text } }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    epoch = r.body.results[0].results[0].epoch;
  }
  return epoch;
}

/** first, first+1, …, last. */
function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

/**
 * A raw tab that reads nothing until told to, and answers heartbeats all the
 * same: an unsolicited WebSocket pong (masked, empty) every `pongMs`, as the
 * reviewer's client did.
 */
class StalledTab extends RawTab {
  #pongs: NodeJS.Timeout | undefined;
  #reading: NodeJS.Timeout | undefined;
  #waiters: Array<() => void> = [];

  static async open(s: TestServer, aid: number, query: Record<string, string>, pongMs?: number): Promise<StalledTab> {
    const tab = new StalledTab(await openRawSocket(s, aid, query));
    if (pongMs !== undefined) tab.#pongs = setInterval(() => tab.socket.write(Buffer.from([0x8a, 0x80, 0, 0, 0, 0])), pongMs);
    return tab;
  }

  /** Every `everyMs`, sends the frame `frame()` gives, if any, until stop(). */
  every(everyMs: number, frame: () => object | undefined): void {
    const timer = setInterval(() => {
      const f = frame();
      if (f !== undefined && !this.socket.destroyed) this.sendText(JSON.stringify(f));
    }, everyMs);
    this.#timers.push(timer);
  }

  #timers: NodeJS.Timeout[] = [];

  protected override onFrame(): void {
    for (const w of this.#waiters) w();
  }

  notifications(): any[] {
    return this.messages.filter((m) => m.TYPE === 'MESSAGE');
  }

  /** From now on reads at most `bytes` every `everyMs`: a slow link. */
  readAtMost(bytes: number, everyMs: number): void {
    let left = bytes;
    this.socket.on('data', (b: Buffer) => {
      this.take(b);
      if ((left -= b.length) <= 0) this.socket.pause();
    });
    this.#reading = setInterval(() => {
      left = bytes;
      this.socket.resume();
    }, everyMs);
    this.socket.resume();
  }

  /** Reads everything from now on. */
  drain(): void {
    this.socket.on('data', (b: Buffer) => this.take(b));
    this.socket.resume();
  }

  /** Resolves once `done()` holds, checked on every message; fails after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.messages.length} messages, last TYPE ${this.messages.at(-1)?.TYPE}`));
      }, timeoutMs);
      this.#waiters.push(check);
    });
  }

  stop(): void {
    clearInterval(this.#pongs);
    clearInterval(this.#reading);
    for (const t of this.#timers) clearInterval(t);
    this.socket.destroy();
  }
}

/**
 * A raw tab on a link that reads `bytesPerS` a second, steadily: its socket
 * reads into a buffer of READ_BYTES (no read takes more), a tenth of a
 * second's worth each tenth of a second, until told to read everything.
 */
class SlowLinkTab extends StalledTab {
  static readonly READ_BYTES = 256;
  #allowed = 0;
  #fast = false;
  #ticks: NodeJS.Timeout | undefined;

  static async connect(s: TestServer, aid: number, query: Record<string, string>, bytesPerS: number): Promise<SlowLinkTab> {
    let tab: SlowLinkTab | undefined;
    const buffer = Buffer.alloc(SlowLinkTab.READ_BYTES);
    const socket = net.connect({
      port: Number(new URL(s.url).port), host: '127.0.0.1',
      onread: {
        buffer,
        // Copied: the buffer is read into again, and ws's Receiver keeps what a frame has so far.
        callback: (n: number) => tab!.#read(Buffer.from(buffer.subarray(0, n))),
      },
    });
    tab = new SlowLinkTab(socket);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const q = new URLSearchParams({ token: await s.token('admin', aid), ...query });
    socket.write(`GET /ws/admin?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    tab.#ticks = setInterval(() => {
      // What a read took past its allowance is owed from the next: the rate holds on average.
      tab!.#allowed = Math.min(tab!.#allowed + bytesPerS / 10, bytesPerS / 10);
      if (tab!.#allowed > 0) socket.resume();
    }, 100);
    return tab;
  }

  /** false pauses the socket (onread). */
  #read(b: Buffer): boolean {
    this.take(b);
    if (this.#fast) return true;
    this.#allowed -= b.length;
    return this.#allowed > 0;
  }

  /** From now on reads everything, as fast as it comes. */
  readAll(): void {
    this.#fast = true;
    this.socket.resume();
  }

  override stop(): void {
    clearInterval(this.#ticks);
    super.stop();
  }
}

/** The server's side of each tab that connects from now on, in order. */
function serverSockets(s: TestServer): net.Socket[] {
  const sockets: net.Socket[] = [];
  s.herald.app.server.on('upgrade', (_req: unknown, socket: net.Socket) => sockets.push(socket));
  return sockets;
}

describe('tabs that stop reading during their replay', () => {
  const TABS = 10;
  const BACKLOG = 1000; // 16 MB: far past the loopback socket's buffers and half of maxBufferedBytes
  let s: TestServer;
  const tabs: StalledTab[] = [];
  before(async () => {
    s = await startHerald({ store: 'memory', heartbeatMs: 60_000, maxPerStream: BACKLOG });
  });
  after(async () => {
    for (const t of tabs) t.stop();
    await s.close();
  });

  test('hold their unsent backlog and no page of decoded notifications', async () => {
    const epoch = await backlog(s, 1, BACKLOG);
    // Every notification the store hands a replay, followed until the collector takes it.
    const read: Array<WeakRef<StoredMessage>> = [];
    const store = s.herald.store;
    const readAfter = store.readAfter.bind(store);
    store.readAfter = async (...args) => {
      const page = await readAfter(...args);
      for (const m of page.messages) read.push(new WeakRef(m));
      return page;
    };
    const sockets = serverSockets(s);
    for (let i = 0; i < TABS; i++) tabs.push(await StalledTab.open(s, 1, { seq: '0', epoch }));
    const half = s.options.maxBufferedBytes / 2;
    await until(() => sockets.length === TABS && sockets.every((k) => k.writableLength >= half), 20_000, 'every replay to wait for its tab');
    // Waiting for the link, a replay reads nothing more: the count settles.
    let reads = -1;
    await until(() => {
      const settled = reads === read.length;
      reads = read.length;
      return settled;
    }, 10_000, 'the replays to stop reading');
    gc();
    await new Promise((r) => setImmediate(r));
    gc();
    const held = read.filter((r) => r.deref() !== undefined).length;
    assert.ok(read.length > 0, 'the replays read the store');
    // Before, each tab's replay held the page it was sending when its tab stopped reading: 500 notifications, 8 MB.
    assert.ok(held <= 16, `${TABS} stalled replays hold ${held} decoded notifications of the ${read.length} they read (at most one turn's worth, 16, expected)`);
    const unsent = Math.max(...sockets.map((k) => k.writableLength));
    assert.ok(unsent <= half + 64 * 1024, `each tab's unsent backlog stays near half of maxBufferedBytes (${unsent} bytes at most)`);
    store.readAfter = readAfter;
  });
});

describe('a tab that answers heartbeats but reads nothing of its replay', () => {
  const HEARTBEAT_MS = 200;
  const BACKLOG = 1000;
  let s: TestServer;
  const tabs: StalledTab[] = [];
  before(async () => {
    s = await startHerald({
      store: 'memory', heartbeatMs: HEARTBEAT_MS, maxPerStream: BACKLOG,
      // The stalled tab reads its close only once the test lets it: as in harden-slow-consumer.test.ts.
      closeTimeoutMs: 30_000,
    });
  });
  after(async () => {
    for (const t of tabs) t.stop();
    await s.close();
  });

  test(`is closed as a slow consumer (${CloseCode.TOO_MANY}) once it took none of its backlog for a heartbeat, and resumes losing nothing`, async () => {
    const epoch = await backlog(s, 1, BACKLOG);
    const sockets = serverSockets(s);
    const stalled = await StalledTab.open(s, 1, { seq: '0', epoch }, HEARTBEAT_MS / 4);
    tabs.push(stalled);
    await until(() => sockets.length === 1 && sockets[0]!.writableLength >= s.options.maxBufferedBytes / 2, 20_000, 'the replay to wait for the tab');
    assert.equal((await s.api('GET', '/api/v1/online/admin/1')).body.tabs, 1);
    // It leaves the person's tabs when its close begins; pongs alone kept it there for good.
    await until(async () => (await s.api('GET', '/api/v1/online/admin/1')).body.tabs === 0, 20_000, 'the stalled tab to be closed');

    stalled.drain();
    await stalled.until(() => stalled.close !== undefined, 20_000, 'the close frame');
    assert.deepEqual(stalled.close, { code: CloseCode.TOO_MANY, reason: CloseReason.SLOW_CONSUMER });
    assert.deepEqual(stalled.messages.at(-1), { TYPE: 'close', REASON: CloseReason.SLOW_CONSUMER });
    const seen = stalled.notifications();
    assert.ok(seen.length > 0 && seen.length < BACKLOG, `closed part-way through its replay, after ${seen.length} of ${BACKLOG}`);
    assert.deepEqual(seen.map((f) => f.SEQ), range(1, seen.length), 'what it was sent, once and in order');

    const again = await s.tab('admin', 1, { query: { seq: String(seen.length), epoch } });
    try {
      await again.next((f) => f.N === BACKLOG, 20_000);
      assert.deepEqual(again.notifications().map((f) => f.SEQ), range(seen.length + 1, BACKLOG), 'the rest, once and in order');
    } finally {
      again.close();
    }
  });
});

describe('a tab on a slow link', () => {
  const HEARTBEAT_MS = 1000;
  const BACKLOG = 1000;
  let s: TestServer;
  let slow: StalledTab | undefined;
  before(async () => {
    s = await startHerald({ store: 'memory', heartbeatMs: HEARTBEAT_MS, maxPerStream: BACKLOG });
  });
  after(async () => {
    slow?.stop();
    await s.close();
  });

  test('that takes some of its backlog in every heartbeat is waited for, and gets its whole replay', async () => {
    const epoch = await backlog(s, 1, BACKLOG);
    const sockets = serverSockets(s);
    // Its reads lag far behind the heartbeats written among its backlog: it answers them as the stalled tab does.
    slow = await StalledTab.open(s, 1, { seq: '0', epoch }, HEARTBEAT_MS / 4);
    await until(() => sockets.length === 1 && sockets[0]!.writableLength >= s.options.maxBufferedBytes / 2, 20_000, 'the replay to wait for the link');
    // 2.5 MB a second, a heartbeat's worth more than the sockets' buffers hold back from the
    // server (Linux wakes a writer once a third of its send buffer, at most 4 MB, is free).
    const tab = slow;
    tab.readAtMost(256 * 1024, HEARTBEAT_MS / 10);
    await tab.until(() => tab.notifications().at(-1)?.N === BACKLOG || tab.close !== undefined, 60_000, `notification ${BACKLOG}`);
    assert.equal(tab.close, undefined);
    assert.deepEqual(tab.notifications().map((f) => f.SEQ), range(1, BACKLOG));
  });
});

describe('a tab on a slow link that acks what it reads', () => {
  const HEARTBEAT_MS = 200;
  // 2 KB notifications, 8 MB: past the loopback sockets' buffers (about 3.3 MB) and half of maxBufferedBytes.
  const TEXT_2K = 'x'.repeat(2048);
  const BACKLOG = 4000;
  // 8 KiB a second: Linux lets Herald write more only once a third of the socket's send buffer
  // (up to 4 MB) is free, so none of the backlog Herald holds leaves it for minutes.
  const BYTES_PER_S = 8 * 1024;
  let s: TestServer;
  let slow: SlowLinkTab | undefined;
  before(async () => {
    s = await startHerald({ store: 'memory', heartbeatMs: HEARTBEAT_MS, maxPerStream: BACKLOG });
  });
  after(async () => {
    slow?.stop();
    await s.close();
  });

  test('is waited for while its backlog does not move for many heartbeats, and gets its whole replay', async () => {
    const epoch = await backlog(s, 1, BACKLOG, TEXT_2K);
    const sockets = serverSockets(s);
    const tab = slow = await SlowLinkTab.connect(s, 1, { seq: '0', epoch }, BYTES_PER_S);
    // As the browser library: an ack of what it read (its own wait shortened to the heartbeat's
    // scale); before it read any, it keeps the tab alive with a pong.
    tab.every(HEARTBEAT_MS / 2, () => {
      const seq = tab.notifications().at(-1)?.SEQ as number | undefined;
      return seq === undefined ? { TYPE: 'PONG' } : { TYPE: 'RESPONSE', SEQ: seq, EPOCH: epoch };
    });
    await until(() => sockets.length === 1 && sockets[0]!.writableLength >= s.options.maxBufferedBytes / 2, 20_000, 'the replay to wait for the link');
    // Reading on at that rate for longer than a tab may go without showing that it reads (a
    // heartbeat, two of its ack waits of 2 s, and a notification at 4 KiB/s), all of it by its acks.
    const unsent = sockets[0]!.writableLength;
    const seen = tab.notifications().length;
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS + 2 * 2000 + 1000 + 1000));
    // Closed, it would not know yet: the close waits behind its backlog. Herald would have let it go.
    assert.equal((await s.api('GET', '/api/v1/online/admin/1')).body.tabs, 1, 'still open after reading slowly');
    assert.ok(sockets[0]!.writableLength >= unsent, `none of the backlog Herald held left it meanwhile (${sockets[0]!.writableLength} bytes of ${unsent})`);
    assert.ok(tab.notifications().length > seen, 'it read notifications meanwhile');
    tab.readAll();
    await tab.until(() => tab.notifications().at(-1)?.N === BACKLOG || tab.close !== undefined, 60_000, `notification ${BACKLOG}`);
    assert.equal(tab.close, undefined);
    assert.deepEqual(tab.notifications().map((f) => f.SEQ), range(1, BACKLOG));
  });
});

describe('a tab that acks what it has not read', () => {
  const HEARTBEAT_MS = 200;
  const BACKLOG = 1000;
  // Small, so that what the slowest link waited for (4 KiB/s) takes a short test to send.
  const MAX_BUFFERED_BYTES = 65536;
  let s: TestServer;
  let tab: StalledTab | undefined;
  before(async () => {
    s = await startHerald({ store: 'memory', heartbeatMs: HEARTBEAT_MS, maxPerStream: BACKLOG, maxBufferedBytes: MAX_BUFFERED_BYTES, closeTimeoutMs: 30_000 });
  });
  after(async () => {
    tab?.stop();
    await s.close();
  });

  test(`is closed as a slow consumer (${CloseCode.TOO_MANY}) all the same, once its backlog has not moved for as long as the slowest link takes to send it`, async () => {
    const epoch = await backlog(s, 1, BACKLOG);
    const sockets = serverSockets(s);
    const stalled = tab = await StalledTab.open(s, 1, { seq: '0', epoch }, HEARTBEAT_MS / 4);
    // It reads nothing, and acks one notification more every half heartbeat: 1, 2, 3, …
    let acked = 0;
    let closing = false;
    stalled.every(HEARTBEAT_MS / 2, () => (closing ? undefined : { TYPE: 'RESPONSE', SEQ: ++acked, EPOCH: epoch }));
    await until(() => sockets.length === 1 && sockets[0]!.writableLength >= MAX_BUFFERED_BYTES / 2, 20_000, 'the replay to wait for the tab');
    await until(async () => (await s.api('GET', '/api/v1/online/admin/1')).body.tabs === 0, 30_000, 'the tab to be closed');
    closing = true;
    const ackedThen = acked;

    stalled.drain();
    await stalled.until(() => stalled.close !== undefined, 20_000, 'the close frame');
    assert.deepEqual(stalled.close, { code: CloseCode.TOO_MANY, reason: CloseReason.SLOW_CONSUMER });
    const seen = stalled.notifications();
    assert.deepEqual(seen.map((f) => f.SEQ), range(1, seen.length), 'what it was sent, once and in order');
    // Its acks still went further than before at every heartbeat: they had not run out.
    assert.ok(ackedThen < seen.length, `closed while it acked notification ${ackedThen} of the ${seen.length} it was written`);
  });
});
