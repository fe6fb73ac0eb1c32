/**
 * A tab placed by WELCOME's ACKED, shown nothing of a stream since, resumes
 * with `?after=` (`bafter`), not `?seq=`, and is not told RESET "too far
 * behind" when the SEQ floor rose meanwhile: pruning raises it whenever it
 * evicts an idle stream, anyone's. As `seq`, most tabs (on the broadcast
 * stream, and on their own until their first notification) were told on
 * every reconnect that they may have missed notifications nobody sent them.
 * The browser library's own DeliveryTracker makes the cursors here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeliveryTracker } from '../src/client/delivery.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

/** Sends user `uid` a notification that expires at once, and waits until pruning evicted its stream (the floor rose past it). */
async function raiseFloor(s: TestServer, uid: number): Promise<number> {
  const sent = await s.api('POST', '/api/v1/send', { to: { uid }, message: { TYPE: 'X', TEXT: `for ${uid}` }, ttl: 0.05 });
  assert.equal(sent.status, 200);
  const seq = sent.body.results?.[0]?.seq ?? sent.body.seq;
  assert.equal(typeof seq, 'number', JSON.stringify(sent.body));
  // A fresh tab of nobody's is placed at the floor once it passed `seq`.
  await until(async () => {
    const probe = await s.tab('user', 9999);
    const w = await probe.nextOfType('WELCOME');
    probe.terminate();
    return w.SEQ >= seq;
  }, 10_000, 'the floor to rise');
  return seq;
}

for (const store of ['memory', 'sqlite'] as const) {
  describe(`a tab shown nothing of a stream, reconnecting after the SEQ floor rose (${store} store)`, () => {
    test('resumes with after and bafter, and is told no RESET', async () => {
      const s = await startHerald({ store, pruneIntervalMs: 50 });
      try {
        const tracker = new DeliveryTracker({ storageKey: undefined, send: () => true });
        const first = await s.tab('user', 1);
        tracker.welcome(await first.nextOfType('WELCOME'));
        const params = tracker.resumeParams();
        assert.deepEqual(Object.keys(params).sort(), ['after', 'bafter', 'bepoch', 'epoch']);
        first.terminate();
        await raiseFloor(s, 2);

        const again = await s.tab('user', 1, { query: params });
        const welcome = await again.nextOfType('WELCOME');
        assert.ok(welcome.SEQ > Number(params.after), 'the floor rose past where the tab was placed');
        again.send({ TYPE: 'PING' });
        await again.nextOfType('PONG');
        assert.deepEqual(again.frames.filter((f) => f?.TYPE === 'RESET'), []);

        // As seq, the same position is a tab that missed what the floor passed.
        const asSeq = await s.tab('user', 1, { query: { seq: params.after!, epoch: params.epoch! } });
        const reset = await asSeq.nextOfType('RESET');
        assert.equal(reset.REASON, 'too far behind');
      } finally {
        await s.close();
      }
    });

    test('a notification sent while it was away, above the risen floor, is replayed with no RESET; after it, the tab resumes with seq', async () => {
      const s = await startHerald({ store, pruneIntervalMs: 50 });
      try {
        const tracker = new DeliveryTracker({ storageKey: undefined, send: () => true });
        const first = await s.tab('user', 1);
        tracker.welcome(await first.nextOfType('WELCOME'));
        first.terminate();
        await raiseFloor(s, 2);
        const sent = await s.api('POST', '/api/v1/send', { to: { uid: 1 }, message: { TYPE: 'X', TEXT: 'while away' } });
        assert.equal(sent.status, 200);

        const again = await s.tab('user', 1, { query: tracker.resumeParams() });
        tracker.welcome(await again.nextOfType('WELCOME'));
        const got = await again.next((f) => f?.TEXT === 'while away');
        assert.deepEqual(again.frames.filter((f) => f?.TYPE === 'RESET'), []);
        assert.equal(tracker.accept(got).kind, 'new');
        const params = tracker.resumeParams();
        assert.equal(params.seq, String(got.SEQ));
        assert.equal(params.after, undefined);
        assert.ok(params.bafter !== undefined, 'still nothing shown of the broadcast stream');
      } finally {
        await s.close();
      }
    });
  });
}
