/**
 * An idempotency key on a live-only send (a plain string, `ttl: 0`, or no ttl
 * with defaultTtlMs 0): nothing is stored, yet a repeat within the window is
 * not delivered again. Real Herald, real `ws` tabs, the HTTP API over a socket.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';
import { LiveKeys } from '../src/server/live-keys.js';

/** Sends a live marker without a key and waits for it: every frame sent before it has arrived by then (one broker, in order). */
async function drained(s: TestServer, tab: TestTab, aid: number, marker: string): Promise<string[]> {
  const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: marker }, ttl: 0 });
  assert.equal(r.body.delivered, 1, JSON.stringify(r.body));
  await tab.next((f) => f?.TEXT === marker);
  return tab.notifications().map((f) => (typeof f === 'string' ? f : f.TEXT));
}

describe('idempotency keys of live-only sends', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ legacyEnabled: false });
  });
  after(() => s.close());

  const live = [
    { name: 'ttl 0', body: (text: string) => ({ message: { TYPE: 'MESSAGE', TEXT: text }, ttl: 0 }) },
    { name: 'a plain string message', body: (text: string) => ({ message: text }) },
  ];
  for (const [n, kind] of live.entries()) {
    test(`${kind.name}: the same key twice is delivered once; the repeat says duplicate`, async () => {
      const aid = 100 + n;
      const tab = await s.tab('admin', aid);
      await tab.nextOfType('WELCOME');
      const send = { to: { aid }, ...kind.body('once'), idempotencyKey: 'evt-1' };
      const first = await s.api('POST', '/api/v1/send', send);
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.deepEqual(first.body.results, [{ kind: 'admin', id: aid, delivered: 1, queued: false, duplicate: false, dropped: 0 }]);
      const again = await s.api('POST', '/api/v1/send', send);
      assert.equal(again.status, 200, JSON.stringify(again.body));
      assert.deepEqual(again.body, { delivered: 0, queued: false, results: [{ kind: 'admin', id: aid, delivered: 0, queued: false, duplicate: true, dropped: 0 }] });
      assert.deepEqual(await drained(s, tab, aid, 'marker'), ['once', 'marker']);
      tab.close();
    });
  }

  test('the key is per recipient, as for stored sends: the same key to a list reaches each once, and another person later still gets theirs', async () => {
    const [a, b] = [await s.tab('admin', 110), await s.tab('admin', 111)];
    await Promise.all([a.nextOfType('WELCOME'), b.nextOfType('WELCOME')]);
    const both = await s.api('POST', '/api/v1/send', { to: { aids: [110, 111] }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: 0, idempotencyKey: 'k' });
    assert.deepEqual(both.body.results.map((r: { duplicate: boolean }) => r.duplicate), [false, false]);
    const c = await s.tab('admin', 112);
    await c.nextOfType('WELCOME');
    const third = await s.api('POST', '/api/v1/send', { to: { aid: 112 }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: 0, idempotencyKey: 'k' });
    assert.equal(third.body.results[0].duplicate, false);
    assert.deepEqual(await drained(s, a, 110, 'm'), ['x', 'm']);
    assert.deepEqual(await drained(s, b, 111, 'm'), ['x', 'm']);
    assert.deepEqual(await drained(s, c, 112, 'm'), ['x', 'm']);
    for (const t of [a, b, c]) t.close();
  });

  test('in one batch, and in two requests that cross each other, the key goes out once', async () => {
    const tab = await s.tab('admin', 120);
    await tab.nextOfType('WELCOME');
    const item = { to: { aid: 120 }, message: { TYPE: 'MESSAGE', TEXT: 'b' }, ttl: 0, idempotencyKey: 'batch-1' };
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: [item, item], answer: 'summary' });
    assert.deepEqual(batch.body, { items: 2, delivered: 1, queued: 0, duplicates: 1, dropped: 0 });
    const crossing = { ...item, message: { TYPE: 'MESSAGE', TEXT: 'c' }, idempotencyKey: 'crossing' };
    const answers = await Promise.all(Array.from({ length: 8 }, () => s.api('POST', '/api/v1/send', crossing)));
    assert.equal(answers.filter((r) => r.body.results[0].duplicate === false).length, 1, JSON.stringify(answers.map((r) => r.body)));
    assert.deepEqual(await drained(s, tab, 120, 'm'), ['b', 'c', 'm']);
    tab.close();
  });

  test('a live broadcast with a key goes out once', async () => {
    const tab = await s.tab('user', 130);
    await tab.nextOfType('WELCOME');
    const send = { to: { all: 'users' }, message: { TYPE: 'EVENT', TEXT: 'all' }, ttl: 0, idempotencyKey: 'bc-1' };
    const first = await s.api('POST', '/api/v1/send', send);
    assert.equal(first.body.duplicate, false);
    const again = await s.api('POST', '/api/v1/send', send);
    assert.deepEqual(again.body, { delivered: 0, queued: false, duplicate: true, dropped: 0 });
    const marker = await s.api('POST', '/api/v1/send', { to: { uid: 130 }, message: { TYPE: 'MESSAGE', TEXT: 'm' }, ttl: 0 });
    assert.equal(marker.body.delivered, 1);
    await tab.next((f) => f?.TEXT === 'm');
    assert.deepEqual(tab.notifications().map((f) => f.TEXT), ['all', 'm']);
    tab.close();
  });

  test('without a key a live send is delivered each time, as before; a key with a lone surrogate is refused on a live send too', async () => {
    const tab = await s.tab('admin', 140);
    await tab.nextOfType('WELCOME');
    for (let i = 0; i < 2; i++) assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 140 }, message: 'twice', ttl: 0 })).body.delivered, 1);
    const bad = await s.api('POST', '/api/v1/send', { to: { aid: 140 }, message: 'x', ttl: 0, idempotencyKey: 'a\ud800' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'HERALD_ERR_VALIDATION');
    assert.deepEqual(await drained(s, tab, 140, 'm'), ['twice', 'twice', 'm']);
    tab.close();
  });
});

test('with defaultTtlMs 0 a send without ttl is live only, and its key is honoured', async () => {
  const s = await startHerald({ legacyEnabled: false, defaultTtlMs: 0 });
  try {
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const send = { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'd' }, idempotencyKey: 'dflt' };
    assert.equal((await s.api('POST', '/api/v1/send', send)).body.results[0].queued, false);
    assert.equal((await s.api('POST', '/api/v1/send', send)).body.results[0].duplicate, true);
    assert.deepEqual(await drained(s, tab, 1, 'm'), ['d', 'm']);
  } finally {
    await s.close();
  }
});

describe('LiveKeys: the window and the bound', () => {
  test('a key is a repeat within the window and new after it', () => {
    let now = 0;
    const keys = new LiveKeys({ windowMs: 1000, now: () => now });
    assert.equal(keys.claim('admin:1', 'k'), true);
    now = 999;
    assert.equal(keys.claim('admin:1', 'k'), false);
    assert.equal(keys.claim('admin:2', 'k'), true, 'per stream');
    now = 1000;
    assert.equal(keys.claim('admin:1', 'k'), true, 'forgotten when the window ends');
    assert.equal(keys.size, 2, 'expired keys are pruned as new ones come');
    keys.close();
  });

  test('the window is measured on its own clock, not on the time a caller passes (the wall clock may step)', () => {
    let now = 0;
    const keys = new LiveKeys({ windowMs: 1000, now: () => now });
    const wall = Date.now();
    assert.equal(keys.claim('admin:1', 'k', wall), true);
    // The wall clock stepped an hour forward; the monotonic one moved 10 ms.
    now = 10;
    assert.equal(keys.has('admin:1', 'k', wall + 3_600_000), true);
    assert.equal(keys.claim('admin:1', 'k', wall + 3_600_000), false, 'still a repeat');
    keys.close();
  });

  test('a released key (its send failed) is new again', () => {
    const keys = new LiveKeys();
    assert.equal(keys.claim('admin:1', 'k'), true);
    keys.release('admin:1', 'k');
    assert.equal(keys.claim('admin:1', 'k'), true);
    keys.close();
  });

  test('full: the oldest key is forgotten first, and the record says so once a window', () => {
    const full: number[] = [];
    let now = 0;
    const keys = new LiveKeys({ windowMs: 1000, maxKeys: 2, onFull: (n) => full.push(n), now: () => now });
    for (const k of ['a', 'b', 'c', 'd']) {
      keys.claim('s', k);
      now++;
    }
    assert.equal(keys.size, 2);
    assert.equal(keys.claim('s', 'd'), false);
    now++;
    assert.equal(keys.claim('s', 'a'), true, 'a was forgotten early');
    assert.deepEqual(full, [2]);
    assert.throws(() => new LiveKeys({ maxKeys: 0 }), TypeError);
    keys.close();
  });
});
