/**
 * Slow consumers over real sockets: a tab that never reads, and one that
 * reads a byte a second, while the server sends thousands of notifications.
 * What the server holds for each stays bounded by maxBufferedBytes (plus one
 * frame), each is dropped with 4429 "slow consumer" after the close notice,
 * the person's other tab and the API go on unaffected, and with delivery
 * tracking the dropped tab gets the rest when it reconnects from its cursor.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';
import { openRawSocket, RawTab } from './helpers/raw-tab.js';

const MAX_BUFFERED = 65_536;
const TEXT = 'й'.repeat(1000); // 2 KB a notification
const TOTAL = 6000; // 12 MB: past the loopback socket's own buffers as well
const PER_REQUEST = 300;

/** A tab on a raw socket: does the handshake, then reads only when told to. */
class SlowTab extends RawTab {
  #bytes = 0;
  #trickle: NodeJS.Timeout | undefined;

  static async open(s: TestServer, id: number): Promise<SlowTab> {
    const tab = new SlowTab(await openRawSocket(s, id));
    rawTabs.push(tab);
    return tab;
  }

  /** Bytes read so far. */
  get bytes(): number {
    return this.#bytes;
  }

  protected override take(b: Buffer): void {
    this.#bytes += b.length;
    super.take(b);
  }

  /** Reads one byte a second (the stream below still pulls the kernel's data in chunks, as a browser's network stack does). */
  trickle(): void {
    this.#trickle = setInterval(() => {
      const b = this.socket.read(1) as Buffer | null;
      if (b) this.take(b);
    }, 1000);
    // A test that fails before drain() destroys the socket in after(): the interval must not hold the run open.
    this.socket.once('close', () => clearInterval(this.#trickle));
  }

  /** Reads everything from now on, until the server's close frame; resolves when the socket has closed. */
  async drain(): Promise<void> {
    clearInterval(this.#trickle);
    this.socket.on('data', (b: Buffer) => this.take(b));
    this.socket.resume();
    // The server cuts a peer that has not answered its close after closeTimeoutMs (30 s here).
    await until(() => this.socket.closed, 40_000, 'the socket closed');
    // The Receiver may hand on the last frames in a later turn.
    await until(() => this.close !== undefined, 2000, 'the close frame').catch(() => undefined);
  }
}

let s: TestServer;
const rawTabs: SlowTab[] = [];

before(async () => {
  // maxPerStream above TOTAL: the dropped tab's whole backlog is still there to replay.
  // closeTimeoutMs as long as ws's own: the slow tabs read their close only after all
  // the sends, and a loaded machine may take longer than the default 3 s for those
  // (gateway-close-bound.test.ts checks that a peer that does not read is cut then).
  s = await startHerald({ store: 'memory', maxBufferedBytes: MAX_BUFFERED, maxPerStream: TOTAL + 100, heartbeatMs: 60_000, closeTimeoutMs: 30_000 });
});

after(async () => {
  for (const t of rawTabs) t.socket.destroy();
  await s.close();
});

describe('slow consumers', () => {
  test('a tab that never reads and one that reads a byte a second are dropped with 4429; the other tab and the API are unaffected; nothing is lost on reconnect', { timeout: 90_000 }, async () => {
    // The server's side of every tab, to see what it holds for each.
    const serverSockets: net.Socket[] = [];
    s.herald.app.server.on('upgrade', (_req: unknown, socket: net.Socket) => serverSockets.push(socket));
    const healthy = await s.tab('admin', 1);
    await healthy.nextOfType('WELCOME');
    const deaf = await SlowTab.open(s, 1);
    const trickling = await SlowTab.open(s, 1);
    trickling.trickle();
    await until(async () => (await s.api('GET', '/api/v1/online/admin/1')).body.tabs === 3, 5000, 'three tabs of admin 1');

    let slowestPing = 0;
    let sent = 0;
    let heldPeak = 0;
    for (let i = 0; i < TOTAL; i += PER_REQUEST) {
      const messages = Array.from({ length: PER_REQUEST }, (_, k) => ({ to: { aid: 1 }, message: { TYPE: 'MESSAGE', N: i + k + 1, TEXT } }));
      const r = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' });
      assert.equal(r.status, 200);
      sent += PER_REQUEST;
      const t = performance.now();
      assert.equal((await s.api('GET', '/api/v1/ping')).status, 200);
      slowestPing = Math.max(slowestPing, performance.now() - t);
      for (const socket of serverSockets) heldPeak = Math.max(heldPeak, socket.writableLength);
    }
    assert.equal(sent, TOTAL);
    // Both slow tabs left the Hub (no longer counted online or sent to); the healthy one got everything.
    assert.equal((await s.api('GET', '/api/v1/online/admin/1')).body.tabs, 1);
    await healthy.next((f) => f.N === TOTAL, 20_000);
    assert.deepEqual(healthy.notifications().map((f) => f.N), Array.from({ length: TOTAL }, (_, i) => i + 1));
    assert.ok(slowestPing < 1000, `the API answered a ping within ${Math.round(slowestPing)} ms while the tabs were slow`);
    // What the server held for the two unread sockets: each at most maxBufferedBytes and one
    // frame, where without the limit it would be the whole 12 MB each.
    // What the server held unsent for any one tab: at most maxBufferedBytes, one frame and
    // the close notice, where without the limit it was all 12 MB.
    assert.ok(heldPeak > MAX_BUFFERED / 2 && heldPeak < MAX_BUFFERED + 4096, `the server held up to ${heldPeak} bytes for a tab`);

    // Both read on now (within closeTimeoutMs, after which the server cuts a peer that does not answer its close).
    await Promise.all([deaf.drain(), trickling.drain()]);
    for (const tab of [deaf, trickling]) {
      const notes = tab.messages.filter((m) => m.TYPE === 'MESSAGE');
      assert.ok(notes.length > 0 && notes.length < TOTAL / 2, `${notes.length} notifications reached the slow tab before it was dropped (${tab.bytes} bytes)`);
      // In order, none missing, up to where it was dropped.
      assert.deepEqual(notes.map((n) => n.N), Array.from({ length: notes.length }, (_, i) => i + 1));
      assert.deepEqual(tab.messages.at(-1), { TYPE: 'close', REASON: 'slow consumer' });
      assert.deepEqual(tab.close, { code: 4429, reason: 'slow consumer' });

      // Reconnecting from its last SEQ, it gets the rest, in order, none twice.
      const last = notes.at(-1);
      const again = await s.tab('admin', 1, { query: { seq: String(last.SEQ), epoch: last.EPOCH } });
      await again.next((f) => f.N === TOTAL, 20_000);
      assert.deepEqual(again.notifications().map((f) => f.N), Array.from({ length: TOTAL - last.N }, (_, i) => last.N + i + 1));
      again.close();
    }
    healthy.close();
  });
});
