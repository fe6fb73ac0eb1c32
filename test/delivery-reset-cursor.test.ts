/**
 * A cursor placed by a RESET goes as `after` (`bafter`) until a notification
 * moves it (docs/delivery.md, Streams, SEQ and EPOCH). A tab shown its
 * stream's last notification, which then expired and was evicted, is told
 * RESET "too far behind" once (what it was shown expired: the server cannot
 * tell); as `seq`, its RESET-placed cursor was told so again at every
 * reconnect after anyone's idle stream was evicted, with nothing sent past
 * it. The browser library's own DeliveryTracker, against a real Herald, on
 * both stores and both streams.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeliveryTracker } from '../src/client/delivery.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

/** Sends short-lived notifications to other people until pruning's evictions raised the SEQ floor past `past`. */
let nextUid = 100;
async function raiseFloorPast(s: TestServer, past: number): Promise<void> {
  const floor = async () => {
    const probe = await s.tab('user', 9999);
    const w = await probe.nextOfType('WELCOME');
    probe.terminate();
    return w.SEQ as number;
  };
  await until(async () => {
    const sent = await s.api('POST', '/api/v1/send', { to: { uid: nextUid++ }, message: { TYPE: 'X', TEXT: 'other' }, ttl: 0.05 });
    assert.equal(sent.status, 200);
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      if (await floor() > past) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }, 20_000, 'the floor to rise');
}

for (const store of ['memory', 'sqlite'] as const) for (const stream of ['own', 'broadcast'] as const) {
  describe(`a tab shown its ${stream} stream's last notification, the stream evicted (${store})`, () => {
    test('is told "too far behind" once, and not again at the next reconnect: nothing followed the RESET', async () => {
      const s = await startHerald({ store, pruneIntervalMs: 50 });
      try {
        const tracker = new DeliveryTracker({ storageKey: undefined, send: () => true });
        const kind = stream === 'own' ? 'user' : 'admin';
        const first = await s.tab(kind, 1);
        tracker.welcome(await first.nextOfType('WELCOME'));
        // Its own stream's one notification, shown, short-lived.
        const sent = await s.api('POST', '/api/v1/send', { to: stream === 'own' ? { uid: 1 } : { all: 'admins' }, message: { TYPE: 'X', TEXT: 'shown' }, ttl: 0.05 });
        assert.equal(sent.status, 200);
        const got = await first.next((f) => f?.TEXT === 'shown');
        assert.equal(tracker.accept(got).kind, 'new');
        first.terminate();
        const params = tracker.resumeParams();
        assert.equal(params[stream === 'own' ? 'seq' : 'bseq'], String(got.SEQ), 'resumes with seq/bseq: it was shown something');
        // user 1's stream expires and is evicted; another person's eviction raises the floor past it.
        await raiseFloorPast(s, got.SEQ);

        const again = await s.tab(kind, 1, { query: params });
        const welcome = await again.nextOfType('WELCOME');
        again.send({ TYPE: 'PING' });
        await again.nextOfType('PONG');
        const resets = again.frames.filter((f) => f?.TYPE === 'RESET');
        // What it was shown expired: it is told so once. It takes the RESET (as HeraldClient
        // does), is shown nothing more, and reconnects after another idle stream's eviction.
        assert.deepEqual(resets.map((r) => r.REASON), ['too far behind']);
        for (const r of resets) tracker.reset(r);
        tracker.welcome(welcome);
        again.terminate();
        const params2 = tracker.resumeParams();
        await raiseFloorPast(s, Math.max(welcome.SEQ, welcome.BROADCAST.SEQ));
        const third = await s.tab(kind, 1, { query: params2 });
        const w3 = await third.nextOfType('WELCOME');
        third.send({ TYPE: 'PING' });
        await third.nextOfType('PONG');
        assert.equal(params2[stream === 'own' ? 'after' : 'bafter'], String(resets[0].SEQ), 'the RESET-placed cursor goes as after/bafter');
        const resets2 = third.frames.filter((f) => f?.TYPE === 'RESET');
        assert.ok(w3.SEQ >= 0);
        assert.deepEqual(resets2, [], 'placed by a RESET and shown nothing since, it is not told again it may have missed notifications');
      } finally {
        await s.close();
      }
    });
  });
}
