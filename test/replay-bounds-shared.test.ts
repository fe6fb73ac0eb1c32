/**
 * The replays of many tabs at once share one budget per turn of the event
 * loop (src/server/gateway/connection.ts, ReplayTurns), over real sockets:
 * all of them together send at most replayBatch frames, or 256 KiB and one
 * frame, between two turns, tab after tab and person after person, and each
 * tab still gets its replay whole and in order. Each tab had a budget of its
 * own: a person's hundred tabs resuming at once did a hundred budgets' work
 * in one turn, and everyone else's pings and sends waited behind it.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/** REPLAY_TURN_BYTES in connection.ts. */
const TURN_BYTES = 256 * 1024;

/** `count` notifications to admin `aid`, N from 1, of `text`; returns the stream's EPOCH. */
async function backlog(s: TestServer, aid: number, count: number, text: string): Promise<string> {
  let epoch = '';
  for (let i = 0; i < count; i += 50) {
    const messages = Array.from({ length: Math.min(50, count - i) }, (_, k) => ({ to: { aid }, ttl: 600, message: { TYPE: 'MESSAGE', N: i + k + 1, TEXT: text } }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    epoch = r.body.results[0].results[0].epoch;
  }
  return epoch;
}

/** 1, 2, …, n. */
function upTo(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/**
 * Counts the notifications the server writes to every tab that connects from
 * now on, per turn of the event loop (a chain of setImmediate, as in
 * replay-yields.test.ts), and which tab each went to.
 */
function watchWrites(s: TestServer): { perTurn: Map<number, { frames: number; bytes: number }>; order: number[]; largest: () => number; stop(): void } {
  let turn = 0;
  let counting = true;
  const tick = (): void => {
    turn++;
    if (counting) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, { frames: number; bytes: number }>();
  const order: number[] = [];
  let largest = 0;
  let tabs = 0;
  const marker = Buffer.from('"TYPE":"MESSAGE"');
  s.herald.app.server.on('upgrade', (_req: unknown, socket: net.Socket) => {
    const tab = tabs++;
    const write = socket.write;
    socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
      const isNote = typeof chunk === 'string' ? chunk.includes(marker.toString('latin1')) : Buffer.isBuffer(chunk) && chunk.includes(marker);
      if (isNote && counting) {
        const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk, 'latin1') : (chunk as Buffer).length;
        const t = perTurn.get(turn) ?? { frames: 0, bytes: 0 };
        t.frames++;
        t.bytes += bytes;
        perTurn.set(turn, t);
        order.push(tab);
        largest = Math.max(largest, bytes);
      }
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof socket.write;
  });
  return {
    perTurn, order, largest: () => largest,
    stop() {
      counting = false;
    },
  };
}

for (const size of ['small', 'large'] as const) {
  describe(`replays of ${size} notifications to many tabs at once`, () => {
    // Small: the frames bound a turn. Large: the bytes do (16 of 16 KB).
    const REPLAY_BATCH = 50;
    const TABS = 8;
    const BACKLOG = size === 'small' ? 1000 : 200;
    const TEXT = size === 'small' ? 'x' : 'x'.repeat(16 * 1024);
    let s: TestServer;
    const open: TestTab[] = [];
    before(async () => {
      s = await startHerald({
        store: 'memory', replayBatch: REPLAY_BATCH, maxPerStream: BACKLOG, heartbeatMs: 60_000,
        // The socket's own pacing (at half of this) would hold replays back too: out of the way, what is tested is the turns'.
        maxBufferedBytes: 1 << 30,
      });
    });
    after(async () => {
      for (const t of open) t.close();
      await s.close();
    });

    test(`${TABS} tabs of one person resuming from 0, and another person's: at most one budget in all per turn, in turns, each replay whole and in order`, async () => {
      const epoch = await backlog(s, 1, BACKLOG, TEXT);
      const otherEpoch = await backlog(s, 2, REPLAY_BATCH * 2, TEXT);
      const watch = watchWrites(s);
      // Up to date when they connect: nothing replayed until their RESUMEs.
      const tabs: TestTab[] = [];
      for (let i = 0; i < TABS; i++) tabs.push(await s.tab('admin', 1, { query: { seq: String(BACKLOG), epoch } }));
      const other = await s.tab('admin', 2, { query: { seq: String(REPLAY_BATCH * 2), epoch: otherEpoch } });
      open.push(...tabs, other);
      for (const t of [...tabs, other]) await t.nextOfType('WELCOME');

      // All at once: the server reads them in one turn or a few.
      for (const t of tabs) t.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: epoch });
      other.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: otherEpoch });
      await Promise.all(tabs.map((t) => t.next((f) => f.N === BACKLOG, 60_000)));
      await other.next((f) => f.N === REPLAY_BATCH * 2, 10_000);
      watch.stop();

      for (const t of tabs) assert.deepEqual(t.notifications().map((f) => f.SEQ), upTo(BACKLOG), 'each tab: its replay, once and in order');
      assert.deepEqual(other.notifications().map((f) => f.SEQ), upTo(REPLAY_BATCH * 2));
      const turns = [...watch.perTurn.values()];
      assert.equal(turns.reduce((a, t) => a + t.frames, 0), TABS * BACKLOG + REPLAY_BATCH * 2);
      const most = Math.max(...turns.map((t) => t.frames));
      const mostBytes = Math.max(...turns.map((t) => t.bytes));
      assert.ok(most <= REPLAY_BATCH, `all the replays together sent at most ${REPLAY_BATCH} frames in a turn of the event loop, not ${most}`);
      assert.ok(mostBytes <= TURN_BYTES + watch.largest(), `all the replays together sent at most ${TURN_BYTES} bytes and one frame in a turn, not ${mostBytes}`);
      // Tabs take turns: every one had begun before any had ended.
      const last = Math.min(...tabs.map((_, i) => watch.order.lastIndexOf(i)));
      const first = Math.max(...tabs.map((_, i) => watch.order.indexOf(i)));
      assert.ok(first < last, `every tab's replay began (the last at write ${first}) before any ended (the first at ${last})`);
      // People take turns: the other person's replay, a fraction of the first's, is not served after all of theirs.
      const otherTab = TABS;
      assert.ok(watch.order.lastIndexOf(otherTab) < watch.order.length / 4, `the other person's replay ended at write ${watch.order.lastIndexOf(otherTab)} of ${watch.order.length}`);
    });
  });
}
