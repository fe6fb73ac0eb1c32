/**
 * The two bounds of a tab's replay (src/server/gateway/connection.ts), over
 * real sockets:
 * - bytes per turn: a replay lets the event loop turn every replayBatch
 *   frames or every REPLAY_TURN_BYTES (256 KiB) of frames, whichever comes
 *   first, so a backlog of large notifications is not sent in one turn even
 *   when it is far fewer than replayBatch;
 * - held live frames: live frames for a tab that is replaying are held, at
 *   most MAX_HELD_FRAMES (10,000); the next one closes the tab with 4503
 *   "too far behind, reconnect", and it resumes from what it saw, losing
 *   nothing stored. Up to the bound the tab stays open and gets them all
 *   after its replay, in order.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { CloseCode } from '../src/protocol/close-codes.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';
import { openRawSocket, RawTab } from './helpers/raw-tab.js';

/** REPLAY_TURN_BYTES in connection.ts. */
const TURN_BYTES = 256 * 1024;
/** MAX_HELD_FRAMES in connection.ts. */
const MAX_HELD = 10_000;
/** Stored sends: what the test resumes over must be in the store. */
const TTL_S = 600;

/** `count` notifications to admin `aid`, N from `first`, in requests of `perRequest`; returns the stream's epoch. */
async function sendTo(s: TestServer, aid: number, first: number, count: number, perRequest: number, text?: string): Promise<string> {
  let epoch = '';
  for (let i = 0; i < count; i += perRequest) {
    const n = Math.min(perRequest, count - i);
    const messages = Array.from({ length: n }, (_, k) => ({
      to: { aid }, ttl: TTL_S, message: { TYPE: 'MESSAGE', N: first + i + k, ...(text === undefined ? {} : { TEXT: text }) },
    }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // One result per item, and in it one per person it named.
    epoch = r.body.results[0].results[0].epoch;
    assert.equal(typeof epoch, 'string');
  }
  return epoch;
}

/** first, first+1, …, last. */
function range(first: number, last: number): number[] {
  return Array.from({ length: Math.max(0, last - first + 1) }, (_, i) => first + i);
}

describe('a replay of large notifications', () => {
  const NOTE_BYTES = 16 * 1024;
  const BACKLOG = 240; // about 4 MB: sixteen turns' worth, and far fewer than replayBatch
  const REPLAY_BATCH = 500;
  let s: TestServer;
  before(async () => {
    s = await startHerald({
      store: 'memory', replayBatch: REPLAY_BATCH, heartbeatMs: 60_000,
      // The socket's own pacing (at half of this) would yield too: out of the way, what is tested is the replay's.
      maxBufferedBytes: 1 << 30,
    });
  });
  after(() => s.close());

  test(`is cut into turns of about ${TURN_BYTES / 1024} KiB, not replayBatch frames, and arrives whole and in order`, async () => {
    const epoch = await sendTo(s, 1, 1, BACKLOG, 50, 'x'.repeat(NOTE_BYTES));

    // Turns of the event loop, counted by a chain of setImmediate callbacks
    // (as in replay-yields.test.ts), and the notification bytes the server
    // writes to the tab's socket in each.
    let turn = 0;
    let done = false;
    const tick = (): void => {
      turn++;
      if (!done) setImmediate(tick);
    };
    setImmediate(tick);
    const perTurn = new Map<number, { frames: number; bytes: number }>();
    let largest = 0;
    const marker = Buffer.from('"TYPE":"MESSAGE"');
    s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
      const write = socket.write;
      socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
        const isNote = typeof chunk === 'string' ? chunk.includes(marker.toString('latin1')) : Buffer.isBuffer(chunk) && chunk.includes(marker);
        if (isNote) {
          const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk, 'latin1') : (chunk as Buffer).length;
          const t = perTurn.get(turn) ?? { frames: 0, bytes: 0 };
          t.frames++;
          t.bytes += bytes;
          perTurn.set(turn, t);
          largest = Math.max(largest, bytes);
        }
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof socket.write;
    });

    const tab = await s.tab('admin', 1, { query: { seq: '0', epoch } });
    try {
      await tab.next((f) => f.N === BACKLOG, 30_000);
      done = true;
      assert.deepEqual(tab.notifications().map((f) => f.N), range(1, BACKLOG));
      assert.deepEqual(tab.notifications().map((f) => f.SEQ), range(1, BACKLOG));
      assert.ok(!tab.frames.some((f) => f.TYPE === 'RESET'), 'resumed in the stream it had');
      const turns = [...perTurn.values()];
      assert.equal(turns.reduce((a, t) => a + t.frames, 0), BACKLOG);
      assert.ok(largest > NOTE_BYTES, `each notification went out as one write of ${largest} bytes`);
      const most = Math.max(...turns.map((t) => t.bytes));
      // The replay yields once a turn has reached the bound, before the next frame: one frame past it at most.
      assert.ok(most <= TURN_BYTES + largest, `at most ${TURN_BYTES} bytes and one notification went out in one turn of the event loop, not ${most}`);
      const total = turns.reduce((a, t) => a + t.bytes, 0);
      assert.ok(turns.length >= Math.floor(total / (TURN_BYTES + largest)), `the replay of ${total} bytes went out over ${turns.length} turns`);
    } finally {
      done = true;
      tab.close();
    }
  });
});

/**
 * A tab on a raw socket that reads only what it is told to: a slow reader
 * (a browser on a slow link), which the server paces its replay to.
 */
class SlowTab extends RawTab {
  #waiters: Array<() => void> = [];

  static async open(s: TestServer, id: number, query: Record<string, string>): Promise<SlowTab> {
    return new SlowTab(await openRawSocket(s, id, query));
  }

  protected override onFrame(): void {
    for (const w of this.#waiters) w();
  }

  notifications(): any[] {
    return this.messages.filter((m) => m.TYPE === 'MESSAGE');
  }

  /** Reads up to `bytes` of what has arrived (the stream below pulls more from the kernel as it is read). */
  read(bytes: number): void {
    const b = this.socket.read(Math.min(bytes, this.socket.readableLength)) as Buffer | null;
    if (b) this.take(b);
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
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.messages.length} messages, last ${JSON.stringify(this.messages.at(-1))}`));
      }, timeoutMs);
      this.#waiters.push(check);
    });
  }

}

describe('live frames held during a replay to a slow reader', () => {
  // A backlog far past what the loopback socket's buffers and half of
  // maxBufferedBytes (the default 4 MiB) take in: the replay is paced to the
  // reader for all of the live sends.
  const BACKLOG = 2000;
  const NOTE = 'y'.repeat(8 * 1024); // 16 MB in all
  const LIVE_PER_REQUEST = 1000;
  /** What the slow tab reads after each request of live sends. */
  const READ_STEP = 16 * 1024;
  let s: TestServer;
  const slowTabs: SlowTab[] = [];
  before(async () => {
    s = await startHerald({
      store: 'memory', heartbeatMs: 60_000, maxPerStream: BACKLOG + MAX_HELD + 100,
      // The slow tabs read their close only once the sends are done: as in harden-slow-consumer.test.ts.
      closeTimeoutMs: 30_000,
    });
  });
  after(async () => {
    for (const t of slowTabs) t.socket.destroy();
    await s.close();
  });

  /**
   * Stores the backlog for admin `aid`, opens a tab that is up to date (it
   * has nothing to replay) and a slow one resuming from 0, and waits until
   * the slow one's replay is paced to it: the server holds unsent bytes for it.
   */
  async function slowReplay(aid: number): Promise<{ epoch: string; healthy: Awaited<ReturnType<TestServer['tab']>>; slow: SlowTab; unsent: () => number }> {
    const epoch = await sendTo(s, aid, 1, BACKLOG, 100, NOTE);
    const healthy = await s.tab('admin', aid, { query: { seq: String(BACKLOG), epoch } });
    const welcome = await healthy.nextOfType('WELCOME');
    assert.equal(welcome.EPOCH, epoch);
    let serverSocket: net.Socket | undefined;
    s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
      serverSocket = socket;
    });
    const slow = await SlowTab.open(s, aid, { seq: '0', epoch });
    slowTabs.push(slow);
    const unsent = (): number => serverSocket?.writableLength ?? 0;
    await until(() => unsent() >= 1 << 20, 10_000, 'the replay to be paced to the slow tab');
    slow.read(READ_STEP);
    assert.equal(slow.messages[0]?.TYPE, 'WELCOME');
    return { epoch, healthy, slow, unsent };
  }

  /** `count` live notifications to admin `aid`, N from BACKLOG + 1, with a slow read after each request. */
  async function liveSends(aid: number, count: number, slow: SlowTab): Promise<void> {
    for (let i = 0; i < count; i += LIVE_PER_REQUEST) {
      await sendTo(s, aid, BACKLOG + 1 + i, Math.min(LIVE_PER_REQUEST, count - i), LIVE_PER_REQUEST);
      slow.read(READ_STEP);
    }
  }

  test(`past ${MAX_HELD} the tab is closed with ${CloseCode.TRY_AGAIN} "too far behind, reconnect"; it resumes from what it saw and loses nothing`, async () => {
    const aid = 1;
    const LIVE = MAX_HELD + 1;
    const { epoch, healthy, slow, unsent } = await slowReplay(aid);
    await liveSends(aid, LIVE, slow);
    // The slow tab left the person's tabs; the up-to-date one stays.
    await until(async () => (await s.api('GET', `/api/v1/online/admin/${aid}`)).body.tabs === 1, 10_000, 'the slow tab to be closed');
    assert.ok(unsent() > 0, 'the replay was still paced to the slow tab when it was closed');

    // The server is well: it answers, and the other tab gets everything, sent before the close and after.
    assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
    const AFTER = 5;
    await sendTo(s, aid, BACKLOG + LIVE + 1, AFTER, AFTER);
    const last = BACKLOG + LIVE + AFTER;
    await healthy.next((f) => f.N === last, 20_000);
    assert.deepEqual(healthy.notifications().map((f) => f.N), range(BACKLOG + 1, last));

    // The slow tab reads on: the replay's frames up to where it was closed, then the close notice and the close frame.
    slow.drain();
    await slow.until(() => slow.close !== undefined, 20_000, 'the close frame');
    assert.deepEqual(slow.close, { code: CloseCode.TRY_AGAIN, reason: 'too far behind, reconnect' });
    assert.deepEqual(slow.messages.at(-1), { TYPE: 'close', REASON: 'too far behind, reconnect' });
    const seen = slow.notifications();
    assert.ok(seen.length > 0 && seen.length < BACKLOG, `closed part-way through its replay, after ${seen.length} of ${BACKLOG}`);
    assert.deepEqual(seen.map((f) => f.N), range(1, seen.length));
    assert.deepEqual(seen.map((f) => f.SEQ), range(1, seen.length));

    // Resuming from the last SEQ it saw, it gets every other one once, in order.
    const lastSeen = seen.at(-1);
    assert.equal(lastSeen.EPOCH, epoch);
    const again = await s.tab('admin', aid, { query: { seq: String(lastSeen.SEQ), epoch } });
    await again.next((f) => f.N === last, 30_000);
    assert.deepEqual(again.notifications().map((f) => f.N), range(seen.length + 1, last));
    assert.deepEqual(again.notifications().map((f) => f.SEQ), range(seen.length + 1, last));
    assert.ok(!again.frames.some((f) => f.TYPE === 'RESET' || f.TYPE === 'close'), 'nothing was skipped and the tab stays open');
    again.close();
    healthy.close();
  });

  test(`up to ${MAX_HELD} the tab stays open and gets them all after its replay, in order`, async () => {
    const aid = 2;
    const LIVE = MAX_HELD;
    const { healthy, slow, unsent } = await slowReplay(aid);
    await liveSends(aid, LIVE, slow);
    const last = BACKLOG + LIVE;
    await healthy.next((f) => f.N === last, 20_000);
    assert.ok(unsent() > 0, 'the replay was still paced to the slow tab when the live sends were done');
    assert.ok(slow.notifications().length < BACKLOG, 'the slow tab had not had its whole replay when the live sends were done');

    slow.drain();
    await slow.until(() => slow.notifications().at(-1)?.N === last || slow.close !== undefined, 30_000, `notification ${last}`);
    assert.equal(slow.close, undefined);
    assert.deepEqual(slow.notifications().map((f) => f.N), range(1, last));
    assert.deepEqual(slow.notifications().map((f) => f.SEQ), range(1, last));
    assert.equal((await s.api('GET', `/api/v1/online/admin/${aid}`)).body.tabs, 2);
    healthy.close();
    slow.socket.destroy();
  });
});
