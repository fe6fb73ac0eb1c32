/**
 * Offline delivery through the real Herald, with the SQLite store (the
 * default) and the memory store:
 * time-to-live, the per-person cap, idempotency keys, acknowledgement status,
 * people who never connected, and the broadcast stream.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until, type TestTab } from './helpers/ws-client.js';

const msg = (n: number | string) => ({ TYPE: 'MESSAGE', TITLE: `n${n}`, TEXT: String(n) });

/** Waits until every frame the tab was sent before this call has arrived (frames are handled in order). */
async function settle(tab: TestTab): Promise<void> {
  tab.send({ TYPE: 'PING' });
  await tab.nextOfType('PONG');
}

for (const store of ['sqlite', 'memory'] as const) describe(`offline delivery (${store} store)`, () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald(store === 'sqlite' ? { maxPerStream: 5 } : { maxPerStream: 5, store });
    assert.equal(s.options.store, store, 'sqlite is the default store');
  });
  after(() => s.close());

  test('a notification past its TTL is never delivered and its status says expired', async () => {
    // Long enough for the next request and the status check to come before it ends, on a loaded machine.
    const short = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg('short'), ttl: 2 });
    const long = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg('long'), ttl: 3600 });
    assert.deepEqual([short.status, short.body.queued, short.body.delivered], [200, true, 0]);
    const shortId = encodeURIComponent(short.body.results[0].messageId);
    const first = await s.api('GET', `/api/v1/messages/${shortId}`);
    assert.equal(first.body.expired, false);
    // Time has to pass here: the TTL is the thing under test.
    await until(async () => (await s.api('GET', `/api/v1/messages/${shortId}`)).body.expired === true, 10_000, 'expiry');
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    await settle(tab);
    assert.deepEqual(tab.notifications().map((f) => [f.TITLE, f.SEQ]), [['nlong', long.body.results[0].seq]]);
    // Pruning removes it for good; its status is then unknown.
    assert.equal(await s.herald.store.prune(Date.now()) >= 1, true);
    assert.equal((await s.api('GET', `/api/v1/messages/${shortId}`)).status, 404);
    tab.close();
  });

  test('a person who never connected gets what is within its TTL, oldest first', async () => {
    const sent: any[] = [];
    for (let i = 1; i <= 4; i++) sent.push((await s.api('POST', '/api/v1/send', { to: { uid: 2 }, message: msg(i), ttl: i === 2 ? 0.05 : 600 })).body);
    await until(async () => (await s.api('GET', `/api/v1/messages/${encodeURIComponent(sent[1].results[0].messageId)}`)).body.expired === true);
    const tab = await s.tab('user', 2);
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.SEQ, 4);
    assert.equal(welcome.EPOCH, sent[0].results[0].epoch);
    await settle(tab);
    assert.deepEqual(tab.notifications().map((f) => [f.TITLE, f.SEQ, f.EPOCH]), [1, 3, 4].map((i) => [`n${i}`, i, welcome.EPOCH]));
    tab.close();
  });

  test('the per-person cap drops the oldest, the API says how many, a tab behind it is told', async () => {
    const dropped = [];
    let epoch = '';
    for (let i = 1; i <= 8; i++) {
      const r = (await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: msg(i) })).body.results[0];
      dropped.push(r.dropped);
      epoch = r.epoch;
    }
    assert.deepEqual(dropped, [0, 0, 0, 0, 0, 1, 1, 1]);
    const fresh = await s.tab('admin', 3);
    await fresh.nextOfType('WELCOME');
    await settle(fresh);
    assert.deepEqual(fresh.notifications().map((f) => f.SEQ), [4, 5, 6, 7, 8], 'the newest maxPerStream, oldest first');
    // A tab that saw SEQ 1 missed 2 and 3 for good: an explicit RESET, then the rest.
    const behind = await s.tab('admin', 3, { query: { seq: '1', epoch } });
    const reset = await behind.nextOfType('RESET');
    assert.deepEqual([reset.REASON, reset.SEQ, reset.EPOCH], ['too far behind', 3, epoch]);
    await settle(behind);
    assert.deepEqual(behind.notifications().map((f) => f.SEQ), [4, 5, 6, 7, 8]);
    fresh.close();
    behind.close();
  });

  test('an idempotency key stores and delivers once; the API says duplicate', async () => {
    const tab = await s.tab('admin', 4);
    await tab.nextOfType('WELCOME');
    const body = { to: { aids: [4, 5] }, message: msg('once'), idempotencyKey: 'invoice-77' };
    const first = await s.api('POST', '/api/v1/send', body);
    const again = await s.api('POST', '/api/v1/send', { ...body, message: msg('changed') });
    assert.deepEqual(first.body.results.map((r: any) => r.duplicate), [false, false]);
    assert.deepEqual(again.body.results.map((r: any) => [r.duplicate, r.delivered]), [[true, 0], [true, 0]]);
    assert.deepEqual(again.body.results.map((r: any) => [r.messageId, r.seq]), first.body.results.map((r: any) => [r.messageId, r.seq]));
    await s.api('POST', '/api/v1/send', { to: { aid: 4 }, message: msg('after') });
    await tab.next((f) => f.TITLE === 'nafter');
    assert.deepEqual(tab.notifications().map((f) => f.TITLE), ['nonce', 'nafter']);
    const other = await s.tab('admin', 5);
    await other.nextOfType('WELCOME');
    await settle(other);
    assert.deepEqual(other.notifications().map((f) => f.TITLE), ['nonce']);
    // Broadcasts too.
    const b1 = await s.api('POST', '/api/v1/send', { to: { all: 'users' }, message: msg('b'), idempotencyKey: 'maint-1' });
    const b2 = await s.api('POST', '/api/v1/send', { to: { all: 'users' }, message: msg('b'), idempotencyKey: 'maint-1' });
    assert.deepEqual([b1.body.duplicate, b2.body.duplicate, b2.body.messageId], [false, true, b1.body.messageId]);
    tab.close();
    other.close();
  });

  test('GET /api/v1/messages/:id tells whether a tab acknowledged it', async () => {
    const tab = await s.tab('admin', 6);
    await tab.nextOfType('WELCOME');
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) ids.push(encodeURIComponent((await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: msg(i) })).body.results[0].messageId));
    await tab.next((f) => f.SEQ === 3);
    const status = async () => Promise.all(ids.map(async (id) => (await s.api('GET', `/api/v1/messages/${id}`)).body.acknowledged));
    assert.deepEqual(await status(), [false, false, false]);
    tab.send({ TYPE: 'RESPONSE', SEQ: 2 });
    await settle(tab);
    assert.deepEqual(await status(), [true, true, false]);
    const one = await s.api('GET', `/api/v1/messages/${ids[0]}`);
    assert.deepEqual(Object.keys(one.body).sort(), ['acknowledged', 'epoch', 'expired', 'expiresAt', 'id', 'seq', 'stream']);
    assert.equal(one.body.stream, 'admin:6');
    assert.equal((await s.api('GET', '/api/v1/messages/nope.1.admin:6')).status, 404);
    tab.close();
  });

  test('broadcasts are stored once in the broadcast stream and replayed with STREAM "*"', async () => {
    const tab = await s.tab('admin', 7);
    await tab.nextOfType('WELCOME');
    const b1 = (await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: msg('b1') })).body;
    const live = await tab.next((f) => f.TITLE === 'nb1');
    assert.deepEqual([live.STREAM, live.SEQ, live.EPOCH], ['*', b1.seq, b1.epoch]);
    tab.send({ TYPE: 'RESPONSE', SEQ: live.SEQ, STREAM: '*' });
    await settle(tab);
    assert.equal((await s.api('GET', `/api/v1/messages/${encodeURIComponent(b1.messageId)}`)).body.acknowledged, true);
    tab.close();
    await tab.closed;
    const b2 = (await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: msg('b2') })).body;
    const own = (await s.api('POST', '/api/v1/send', { to: { aid: 7 }, message: msg('own') })).body.results[0];
    const b3 = (await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: msg('b3') })).body;
    assert.equal(b2.queued, true);
    const back = await s.tab('admin', 7, { query: { seq: String(own.seq - 1), epoch: own.epoch, bseq: String(live.SEQ), bepoch: live.EPOCH } });
    await back.nextOfType('WELCOME');
    await settle(back);
    assert.deepEqual(
      back.notifications().map((f) => [f.TITLE, f.STREAM ?? 'own', f.SEQ]),
      [['nown', 'own', own.seq], ['nb2', '*', b2.seq], ['nb3', '*', b3.seq]],
      'own stream first, then the broadcast stream, each in order',
    );
    back.close();
  });

  test('ttl 0 and plain strings are live only: delivered to open tabs, never queued', async () => {
    const r1 = await s.api('POST', '/api/v1/send', { to: { aid: 8 }, message: 'plain text' });
    const r2 = await s.api('POST', '/api/v1/send', { to: { aid: 8 }, message: msg('now'), ttl: 0 });
    assert.deepEqual([r1.body.queued, r2.body.queued], [false, false]);
    const tab = await s.tab('admin', 8);
    await tab.nextOfType('WELCOME');
    await settle(tab);
    // (Broadcasts no admin acknowledged yet are replayed to a new tab: only the own stream matters here.)
    assert.deepEqual(tab.notifications().filter((f) => f.STREAM === undefined), []);
    await s.api('POST', '/api/v1/send', { to: { aid: 8 }, message: 'live text' });
    assert.equal(await tab.next((f) => typeof f === 'string'), 'live text');
    tab.close();
  });
});
