/**
 * kill -9 of `herald start` while batches of sends flow through
 * POST /api/v1/send/batch, then a start on the same data dir: every
 * notification the API answered as stored reaches its person's tab, which
 * resumes with its cursor, once and in order, with no RESET
 * (docs/delivery.md, Durability: a killed process loses nothing, under
 * either sqliteSynchronous). The batches cut off by the kill are sent again
 * with the same idempotency keys, as a careful backend does: stored once.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FaultServer, type SendItem, type SendResult, type Tab } from './helpers/fault-server.js';

const ADMINS = [1, 2, 3];

describe('kill -9 while sends flow', () => {
  const servers: FaultServer[] = [];
  after(async () => {
    for (const s of servers) await s.dispose();
  });

  for (const synchronous of ['normal', 'full'] as const) {
    test(`sqliteSynchronous=${synchronous}: nothing the API accepted is lost or delivered twice`, async (t) => {
      const s = await FaultServer.create({ sqliteSynchronous: synchronous, maxPerStream: 100_000, logLevel: 'warn' });
      servers.push(s);
      await s.start();
      /** What the API answered as stored, per admin: text by SEQ. */
      const accepted = new Map<number, Map<number, string>>(ADMINS.map((a) => [a, new Map()]));
      /** Batches whose answer the kill cut off: stored or not, nobody knows. */
      const unknown: SendItem[][] = [];
      const record = (items: readonly SendItem[], results: readonly SendResult[]): void => {
        items.forEach((m, i) => {
          const seq = results[i]!.results[0]!.seq!;
          const text = m.message.TEXT as string;
          const had = accepted.get(m.to.aid)!.get(seq);
          assert.ok(had === undefined || had === text, `SEQ ${seq} of admin ${m.to.aid} given to ${had} and ${text}`);
          accepted.get(m.to.aid)!.set(seq, text);
        });
      };

      const tabs = new Map<number, Tab>();
      for (const aid of ADMINS) tabs.set(aid, await s.tab(aid));
      let n = 0;
      let killed = false;
      const sender = async (): Promise<void> => {
        while (!killed) {
          const items: SendItem[] = Array.from({ length: 20 }, () => {
            const k = n++;
            return { to: { aid: ADMINS[k % ADMINS.length]! }, message: { TYPE: 'MESSAGE', TEXT: `m${k}` }, ttl: 3600, idempotencyKey: `k${k}` };
          });
          try {
            const r = await s.sendBatch(items);
            assert.equal(r.status, 200, JSON.stringify(r.body));
            record(items, r.body.results!);
          } catch (e) {
            if (!killed) throw e;
            unknown.push(items);
          }
        }
      };
      const senders = [sender(), sender()];
      // Until a few hundred are stored, and the tabs are getting them live.
      const tab1 = tabs.get(1)!;
      await tab1.until(() => tab1.messages.length >= 300, 15_000, '300 notifications live');
      killed = true;
      await s.kill();
      await Promise.all(senders);
      const cursors = new Map([...tabs].map(([aid, t]) => {
        const last = t.messages.at(-1);
        t.close();
        return [aid, { seen: t.messages, cursor: last ? { seq: last.SEQ as number, epoch: last.EPOCH as string } : undefined }];
      }));

      await s.start();
      t.diagnostic(`${n} sent, ${[...accepted.values()].reduce((a, m) => a + m.size, 0)} answered as stored before the kill, ${unknown.length} batches cut off`);
      for (const items of unknown) {
        const r = await s.sendBatch(items);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        record(items, r.body.results!);
      }
      for (const aid of ADMINS) {
        const want = [...accepted.get(aid)!].sort((a, b) => a[0] - b[0]);
        const before = cursors.get(aid)!;
        const tab = await s.tab(aid, before.cursor);
        await tab.until(() => before.seen.length + tab.frames.length >= want.length, 10_000, `admin ${aid}'s ${want.length} notifications`);
        tab.close();
        assert.deepEqual(tab.frames.filter((f) => f.TYPE === 'RESET'), [], 'no RESET: nothing was lost');
        const got = [...before.seen, ...tab.messages].map((m) => [m.SEQ, m.TEXT]);
        assert.deepEqual(got, want, `admin ${aid}: every accepted notification once, in order`);
      }
      assert.ok(n >= 300, `${n} sent`);
    });
  }
});
