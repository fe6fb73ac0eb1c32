import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';

const msg = (n: number) => ({ TYPE: 'MESSAGE', TITLE: `n${n}`, TEXT: String(n) });

describe('replay at the seam between stored and live notifications', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('a person who was offline gets what waited, oldest first, then live ones; acked ones are not replayed to new tabs', async () => {
    for (let i = 1; i <= 3; i++) {
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 40 }, message: msg(i) });
      assert.equal(r.body.delivered, 0);
      assert.equal(r.body.queued, true);
    }
    const tab = await s.tab('admin', 40);
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.SEQ, 3);
    for (let i = 1; i <= 3; i++) assert.equal((await tab.nextOfType('MESSAGE')).SEQ, i);
    await s.api('POST', '/api/v1/send', { to: { aid: 40 }, message: msg(4) });
    assert.equal((await tab.nextOfType('MESSAGE')).SEQ, 4);
    tab.send({ TYPE: 'RESPONSE', SEQ: 4 });
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG'); // frames are handled in order: the ack is stored by now
    const second = await s.tab('admin', 40);
    await second.nextOfType('WELCOME');
    second.send({ TYPE: 'PING' });
    await second.nextOfType('PONG');
    assert.deepEqual(second.notifications(), []);
    tab.close();
    second.close();
  });

  test('reconnecting with a cursor replays exactly what was missed', async () => {
    const first = await s.tab('admin', 41);
    await first.nextOfType('WELCOME');
    const sent = await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: msg(1) });
    const m1 = await first.nextOfType('MESSAGE');
    first.close();
    await first.closed;
    await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: msg(2) });
    await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: msg(3) });
    const again = await s.tab('admin', 41, { query: { seq: String(m1.SEQ), epoch: sent.body.results[0].epoch } });
    await again.nextOfType('WELCOME');
    await s.api('POST', '/api/v1/send', { to: { aid: 41 }, message: msg(4) });
    await again.next((f) => f.SEQ === 4);
    assert.deepEqual(again.notifications().map((f) => f.SEQ), [2, 3, 4]);
    again.close();
  });

  test('a stale epoch gets an explicit RESET, never a silent partial replay', async () => {
    await s.api('POST', '/api/v1/send', { to: { aid: 42 }, message: msg(1) });
    const tab = await s.tab('admin', 42, { query: { seq: '17', epoch: 'not-the-epoch' } });
    const reset = await tab.nextOfType('RESET');
    assert.equal(reset.REASON, 'epoch changed');
    assert.equal((await tab.nextOfType('MESSAGE')).SEQ, 1);
    tab.close();
  });

  test('a RESUME frame on an open tab rewinds to its cursor', async () => {
    const tab = await s.tab('user', 43);
    await tab.nextOfType('WELCOME');
    const r = await s.api('POST', '/api/v1/send', { to: { uid: 43 }, message: msg(1) });
    await s.api('POST', '/api/v1/send', { to: { uid: 43 }, message: msg(2) });
    await tab.next((f) => f.SEQ === 2);
    tab.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: r.body.results[0].epoch });
    await tab.next((f) => f.SEQ === 2);
    assert.deepEqual(tab.notifications().map((f) => f.SEQ), [1, 2, 1, 2]);
    tab.close();
  });

  test('an ack numbered in another epoch is ignored', async () => {
    await s.api('POST', '/api/v1/send', { to: { aid: 45 }, message: msg(1) });
    const tab = await s.tab('admin', 45);
    const m = await tab.nextOfType('MESSAGE');
    tab.send({ TYPE: 'RESPONSE', SEQ: m.SEQ, EPOCH: 'an-old-epoch' });
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    const ignored = await s.tab('admin', 45);
    assert.equal((await ignored.nextOfType('MESSAGE')).SEQ, 1, 'not acknowledged: a new tab still gets it');
    tab.send({ TYPE: 'RESPONSE', SEQ: m.SEQ, EPOCH: m.EPOCH });
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    await s.api('POST', '/api/v1/send', { to: { aid: 45 }, message: msg(2) });
    const acked = await s.tab('admin', 45);
    assert.equal((await acked.nextOfType('MESSAGE')).SEQ, 2, 'acknowledged in its own epoch: not replayed');
    for (const t of [tab, ignored, acked]) t.close();
  });

  test('past the cap: a new tab is replayed what is kept without a RESET, a stale epoch gets one RESET, a cursor behind it one', async () => {
    const capped = await startHerald({ maxPerStream: 5 });
    try {
      const first = (await capped.api('POST', '/api/v1/send', { to: { aid: 46 }, message: msg(1) })).body.results[0];
      for (let i = 2; i <= 10; i++) await capped.api('POST', '/api/v1/send', { to: { aid: 46 }, message: msg(i) });
      const resets = async (query: Record<string, string>) => {
        const tab = await capped.tab('admin', 46, { query });
        await tab.next((f) => f.SEQ === 10);
        tab.send({ TYPE: 'PING' });
        await tab.nextOfType('PONG');
        assert.deepEqual(tab.notifications().map((f) => f.SEQ), [6, 7, 8, 9, 10]);
        tab.close();
        return tab.frames.filter((f) => f.TYPE === 'RESET').map((f) => `${f.REASON} ${f.SEQ}`);
      };
      assert.deepEqual(await resets({}), []);
      assert.deepEqual(await resets({ seq: '3', epoch: 'not-the-epoch' }), ['epoch changed 5']);
      assert.deepEqual(await resets({ seq: '3', epoch: first.epoch }), ['too far behind 5']);
    } finally {
      await capped.close();
    }
  });

  test('ttl 0 reaches only tabs open now and is not queued', async () => {
    const r = await s.api('POST', '/api/v1/send', { to: { aid: 44 }, message: msg(1), ttl: 0 });
    assert.deepEqual([r.body.delivered, r.body.queued], [0, false]);
    const tab = await s.tab('admin', 44);
    await tab.nextOfType('WELCOME');
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    assert.deepEqual(tab.notifications(), []);
    tab.close();
  });
});
