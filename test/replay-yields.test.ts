/**
 * A long replay lets the event loop turn: a tab resuming over a backlog of
 * 20,000 (maxPerStream raised for it) is sent at most replayBatch replayed
 * frames per turn, so other tabs, HTTP requests and heartbeats are served
 * between its batches, and it still gets every notification once and in
 * order, with live ones that arrive meanwhile after the replay. Both stores
 * answer a page at once, so before, the whole replay went out in one turn.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

const BACKLOG = 20_000;
const LIVE = 3;
const REPLAY_BATCH = 500;

for (const store of ['memory', 'sqlite'] as const) {
  describe(`a long replay from the ${store} store`, () => {
    let s: TestServer;
    before(async () => {
      s = await startHerald({
        store, maxPerStream: BACKLOG + 100, replayBatch: REPLAY_BATCH, heartbeatMs: 60_000,
        // The socket's own pacing (at half of this) would yield too: out of the way, what is tested is the replay's.
        maxBufferedBytes: 1 << 30,
      });
    });
    after(() => s.close());

    test(`a tab resuming from 0 over ${BACKLOG} gets them all in order, at most replayBatch per turn of the event loop, then the live ones sent meanwhile`, async () => {
      let epoch = '';
      for (let i = 0; i < BACKLOG; i += 1000) {
        const messages = Array.from({ length: 1000 }, (_, k) => ({ to: { aid: 1 }, message: { TYPE: 'MESSAGE', N: i + k + 1 } }));
        const r = await s.api('POST', '/api/v1/send/batch', { messages });
        assert.equal(r.status, 200);
        // A send to a person answers per recipient: the stream's EPOCH is one level down.
        epoch = r.body.results[0].results[0].epoch;
      }

      // Turns of the event loop, counted by a chain of setImmediate callbacks,
      // and the notifications the server writes to the tab's socket in each.
      let turn = 0;
      let done = false;
      const perTurn = new Map<number, number>();
      let written = 0;
      let liveSentAt: number | undefined;
      const tick = (): void => {
        turn++;
        // Live sends to the same person part-way through the replay: held, and sent after it.
        if (liveSentAt === undefined && written >= BACKLOG / 4) {
          liveSentAt = written;
          for (let k = 1; k <= LIVE; k++) void s.herald.notifier.send({ kind: 'admin', id: 1 }, { TYPE: 'MESSAGE', N: BACKLOG + k });
        }
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const marker = Buffer.from('"TYPE":"MESSAGE"');
      s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
        const write = socket.write;
        socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
          if (typeof chunk === 'string' ? chunk.includes(marker.toString('latin1')) : Buffer.isBuffer(chunk) && chunk.includes(marker)) {
            written++;
            perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
          }
          return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
        } as typeof socket.write;
      });

      assert.ok(typeof epoch === 'string' && epoch.length > 0, `the sends named their stream's EPOCH (${epoch})`);
      const tab = await s.tab('admin', 1, { query: { seq: '0', epoch } });
      try {
        await tab.next((f) => f.N === BACKLOG + LIVE, 60_000);
        done = true;
        // Every one, once, in order: the replay's, then the live ones held while it ran.
        assert.deepEqual(tab.notifications().map((f) => f.N), Array.from({ length: BACKLOG + LIVE }, (_, i) => i + 1));
        assert.deepEqual(tab.notifications().map((f) => f.SEQ), Array.from({ length: BACKLOG + LIVE }, (_, i) => i + 1));
        assert.equal(written, BACKLOG + LIVE);
        // A resume within the same EPOCH: no RESET (a wrong EPOCH got one, and the replay passed all the same).
        assert.deepEqual(tab.frames.filter((f) => f?.TYPE === 'RESET'), []);
        assert.ok(liveSentAt !== undefined && liveSentAt < BACKLOG, `the live notifications were sent part-way through the replay (after ${liveSentAt} of ${BACKLOG})`);
        const most = Math.max(...perTurn.values());
        assert.ok(most <= REPLAY_BATCH, `at most ${REPLAY_BATCH} notifications went out in one turn of the event loop, not ${most}`);
        assert.ok(perTurn.size >= BACKLOG / REPLAY_BATCH, `the replay went out over ${perTurn.size} turns`);
      } finally {
        done = true;
        tab.close();
      }
    });

    test('a batch sent during the replay, a live-only item then a stored one, reaches the resuming tab in that order', async () => {
      const backlog = 3 * REPLAY_BATCH;
      let epoch = '';
      const r = await s.api('POST', '/api/v1/send/batch', { messages: Array.from({ length: backlog }, (_, k) => ({ to: { aid: 2 }, message: { TYPE: 'MESSAGE', N: k + 1 } })) });
      assert.equal(r.status, 200);
      epoch = r.body.results[0].results[0].epoch;
      // Sent once the replay is under way: its stored item is committed after the heads
      // were read, and was read by the replay, ahead of the live item held until its end.
      let written = 0;
      let sent: Promise<unknown> | undefined;
      const marker = '"TYPE":"MESSAGE"';
      s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
        const write = socket.write;
        socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
          if ((typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : '').includes(marker)) written++;
          if (sent === undefined && written >= REPLAY_BATCH / 2) {
            sent = s.herald.notifier.sendBatch([
              { to: { kind: 'admin', id: 2 }, payload: { TYPE: 'MESSAGE', N: 'live' }, options: { ttlMs: 0 } },
              { to: { kind: 'admin', id: 2 }, payload: { TYPE: 'MESSAGE', N: 'stored' } },
            ]);
          }
          return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
        } as typeof socket.write;
      });
      const tab = await s.tab('admin', 2, { query: { seq: '0', epoch } });
      try {
        await tab.next((f) => f.N === 'stored', 30_000);
        await sent;
        const got = tab.notifications().map((f) => f.N);
        assert.deepEqual(got.slice(0, backlog), Array.from({ length: backlog }, (_, i) => i + 1), 'the backlog, once, in order');
        assert.deepEqual(got.slice(backlog), ['live', 'stored'], 'then the batch, in the order it was sent');
      } finally {
        tab.close();
      }
    });
  });
}
