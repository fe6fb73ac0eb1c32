/**
 * What is published while a tab replays is held, then sent after the replay
 * in publish order (connection.ts, #drainHeld), also when the tab rewinds
 * with a RESUME while frames are held.
 */
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

/** Sends `n` notifications to admin `aid` in one batch; returns the stream's EPOCH. */
async function backlog(s: TestServer, aid: number, n: number, extra: Record<string, unknown> = {}, perRequest = 100): Promise<string> {
  let epoch = '';
  for (let i = 0; i < n; i += perRequest) {
    const messages = Array.from({ length: Math.min(perRequest, n - i) }, (_, k) => ({ to: { aid }, message: { TYPE: 'MESSAGE', N: i + k + 1, ...extra } }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    epoch = r.body.results[0].results[0].epoch;
  }
  return epoch;
}

for (const store of ['memory', 'sqlite'] as const) {
  describe(`frames held during a replay, ${store} store`, () => {
    const servers: TestServer[] = [];
    after(async () => {
      for (const s of servers) await s.close();
    });

    test('a RESUME while frames are held rewinds without sending stored ones ahead of the live-only ones published before them', async () => {
      const s = await startHerald({ store, replayBatch: 1, maxPerStream: 5000, heartbeatMs: 60_000, maxBufferedBytes: 1 << 30 });
      servers.push(s);
      const BACKLOG = 100;
      const HELD = 2000;
      const epoch = await backlog(s, 1, BACKLOG);
      // Half-way through the replay, a batch of which every third item is live-only: held, then drained.
      let sent = false;
      s.herald.app.server.once('upgrade', (_req: unknown, socket: Socket) => {
        let written = 0;
        const write = socket.write;
        socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
          if ((typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : '').includes('"TYPE":"MESSAGE"')) written++;
          if (!sent && written >= BACKLOG / 2) {
            sent = true;
            void s.herald.notifier.sendBatch(Array.from({ length: HELD }, (_, k) => ({
              to: { kind: 'admin' as const, id: 1 }, payload: { TYPE: 'MESSAGE', N: `h${k}` }, options: k % 3 === 0 ? { ttlMs: 0 } : {},
            })));
          }
          return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
        } as typeof socket.write;
      });
      const tab = await s.tab('admin', 1, { query: { seq: '0', epoch } });
      // While the held frames drain, the tab rewinds to what it has (a RESUME with its last SEQ).
      const h20 = await tab.next((f) => f.N === 'h20', 20_000);
      tab.send({ TYPE: 'RESUME', SEQ: h20.SEQ, EPOCH: epoch });
      await tab.next((f) => f.N === `h${HELD - 1}`, 20_000);
      const got = tab.notifications().map((f) => f.N as number | string);
      const rewound = got.slice(got.indexOf('h20') + 1);
      // After the rewind: every later item once, in the order sent. The stored ones between h20 and
      // what the drain had sent may come twice (the rewind's point), the live-only ones cannot.
      const firstTimes = rewound.filter((n, i) => rewound.indexOf(n) === i);
      const expected = Array.from({ length: HELD - 21 }, (_, k) => `h${k + 21}`);
      assert.deepEqual(firstTimes, expected.filter((n) => firstTimes.includes(n)), 'in the order sent');
      assert.deepEqual(expected.filter((n) => !firstTimes.includes(n)), [], 'none missing');
    });
  });
}
