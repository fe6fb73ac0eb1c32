/**
 * What one tab's RESUME frames can make the server do: each asks for a
 * replay of both its streams from the store (up to 2×maxPerStream frames),
 * so a burst of them must not queue a replay each, and a tab that keeps
 * sending them must reach the frame limit long before an ordinary one would.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

/** Stores `n` notifications for admin `aid` in one write; returns the stream's EPOCH. */
async function backlog(s: TestServer, aid: number, n: number): Promise<string> {
  const messages = Array.from({ length: n }, (_, i) => ({ to: { aid }, message: { TYPE: 'R', N: i + 1 } }));
  const r = await s.api('POST', '/api/v1/send/batch', { messages });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return (await s.herald.store.head(`admin:${aid}`)).epoch;
}

describe('RESUME frames from one tab', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60_000, maxPerStream: 1000 });
  });
  after(() => s.close());

  test('a burst of RESUMEs replays at most twice (the running one and the latest waiting), and another tab stays responsive', async () => {
    const n = 300;
    const epoch = await backlog(s, 1, n);
    // Connected at the head: the connect itself replays nothing.
    const tab = await s.tab('admin', 1, { query: { seq: String(n), epoch } });
    const other = await s.tab('admin', 2);
    for (const t of [tab, other]) await t.nextOfType('WELCOME');
    const bursts = 5;
    for (let i = 0; i < bursts; i++) tab.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: epoch });
    // Frames are handled in order: every RESUME has been taken in by this PONG.
    tab.send({ TYPE: 'PING' });
    other.send({ TYPE: 'PING' });
    await Promise.all([tab.nextOfType('PONG'), other.nextOfType('PONG')]);
    // A live notification is held until the last replay ends: when it arrives, every replay is over.
    await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'R', N: n + 1 } });
    await tab.next((f) => f.SEQ === n + 1, 10_000);
    const seqs = tab.notifications().map((f) => f.SEQ as number);
    const replayed = seqs.filter((q) => q <= n).length;
    assert.ok(replayed <= 2 * n, `${bursts} RESUMEs replayed ${replayed} frames (${replayed / n} replays of ${n}); at most 2 replays expected`);
    // The latest cursor was served in full, then live: nothing lost at the seam.
    assert.deepEqual(seqs.slice(-(n + 1)), Array.from({ length: n + 1 }, (_, i) => i + 1));
    assert.equal(tab.frames.filter((f) => f.TYPE === 'close').length, 0);
    tab.close();
    other.close();
  });

  test('a tab that sends RESUMEs faster than one a second is closed with 4429; as many PINGs are not', async () => {
    const epoch = await backlog(s, 3, 10);
    const pinger = await s.tab('admin', 4);
    const resumer = await s.tab('admin', 3, { query: { seq: '10', epoch } });
    for (const t of [pinger, resumer]) await t.nextOfType('WELCOME');
    for (let i = 0; i < 20; i++) {
      pinger.send({ TYPE: 'PING' });
      resumer.send({ TYPE: 'RESUME', SEQ: 10, EPOCH: epoch });
    }
    const closed = await Promise.race([
      resumer.closed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('20 RESUMEs in a moment did not close the tab')), 5000).unref()),
    ]);
    assert.equal(closed.code, 4429);
    assert.ok(resumer.frames.some((f) => f.TYPE === 'close' && f.REASON === 'too many frames'));
    pinger.send({ TYPE: 'PING' });
    await pinger.next((f) => f.TYPE === 'PONG' && pinger.frames.filter((g) => g.TYPE === 'PONG').length === 21);
    pinger.close();
  });
});
