import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/**
 * The schema's validator converts types. `null` and booleans in a send's or a
 * disconnect's own fields used to become values that mean something else:
 * `"aid":true` was admin 1, `"ttl":null` was ttl 0 (nothing stored). They are
 * refused now; a number sent as a string is still taken.
 */
describe('send and disconnect bodies: null and booleans are refused, not converted', () => {
  let s: TestServer;
  let admin1: TestTab;
  before(async () => {
    s = await startHerald();
    admin1 = await s.tab('admin', 1);
    await admin1.nextOfType('WELCOME');
  });
  after(() => s.close());

  /** The next notification admin 1 gets is `marker`: nothing refused reached it in between. */
  async function nothingReachedAdmin1(marker: string): Promise<void> {
    const sent = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: marker } });
    assert.equal(sent.status, 200);
    const next = await admin1.next((f) => typeof f === 'string' || (f?.TYPE !== 'PING' && f?.TYPE !== 'PACE'));
    assert.equal(next.TEXT, marker, `admin 1 got ${JSON.stringify(next)} before the marker`);
  }

  test('"aid": true is not admin 1', async () => {
    for (const [body, field] of [
      ['{"to":{"aid":true},"message":{"TYPE":"MESSAGE","TEXT":"for nobody"}}', 'body/to/aid must be integer, not true'],
      ['{"to":{"aids":[5,true]},"message":{"TYPE":"MESSAGE","TEXT":"for nobody"}}', 'body/to/aids/1 must be integer, not true'],
      ['{"to":{"uid":false},"message":{"TYPE":"MESSAGE"}}', 'body/to/uid must be integer, not false'],
      ['{"to":{"aid":null},"message":{"TYPE":"MESSAGE"}}', 'body/to/aid must be integer, not null'],
    ] as const) {
      const r = await s.api('POST', '/api/v1/send', body);
      assert.equal(r.status, 400, body);
      assert.equal(r.body.error.code, 'HERALD_ERR_VALIDATION');
      assert.equal(r.body.error.message, field);
    }
    await nothingReachedAdmin1('after aid true');
  });

  test('a disconnect of "aid": true closes nobody', async () => {
    const r = await s.api('POST', '/api/v1/disconnect', '{"to":{"aid":true}}');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.message, 'body/to/aid must be integer, not true');
    const reason = await s.api('POST', '/api/v1/disconnect', '{"to":{"aid":9},"reason":null}');
    assert.equal(reason.status, 400);
    assert.equal(reason.body.error.message, 'body/reason must be string, not null');
    assert.deepEqual((await s.api('GET', '/api/v1/online/admin/1')).body, { kind: 'admin', id: 1, online: true, tabs: 1 });
    await nothingReachedAdmin1('after disconnect true');
  });

  test('"ttl": null or false is refused, not taken for ttl 0 (which stores nothing)', async () => {
    for (const ttl of ['null', 'false', 'true']) {
      const r = await s.api('POST', '/api/v1/send', `{"to":{"aid":7},"message":{"TYPE":"MESSAGE"},"ttl":${ttl}}`);
      assert.equal(r.status, 400, ttl);
      assert.equal(r.body.error.message, `body/ttl must be number, not ${ttl}`);
    }
    const key = await s.api('POST', '/api/v1/send', '{"to":{"aid":7},"message":{"TYPE":"MESSAGE"},"idempotencyKey":null}');
    assert.equal(key.status, 400);
    assert.equal(key.body.error.message, 'body/idempotencyKey must be string, not null');
    // Admin 7 was offline: nothing was stored for them, so a tab opened now gets no replay.
    const a7 = await s.tab('admin', 7);
    const welcome = await a7.nextOfType('WELCOME');
    assert.equal(welcome.SEQ, 0);
  });

  test('a null, boolean or array message is refused, not sent as "", "true" or its one item', async () => {
    for (const m of ['null', 'true', '["x"]']) {
      const r = await s.api('POST', '/api/v1/send', `{"to":{"aid":1},"message":${m}}`);
      assert.equal(r.status, 400, m);
      assert.match(r.body.error.message, /^body\/message must be a notification object \(with a TYPE\) or a string, not /);
    }
    await nothingReachedAdmin1('after message null');
  });

  test('a batch names the item, and sends none of it', async () => {
    const r = await s.api('POST', '/api/v1/send/batch', {
      messages: [
        { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'first of a refused batch' } },
        { to: { aid: 2 }, message: { TYPE: 'MESSAGE' }, ttl: null },
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.message, 'body/messages/1/ttl must be number, not null');
    const answer = await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 1 }, message: { TYPE: 'MESSAGE' } }], answer: null });
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error.message, 'body/answer must be "full" or "summary", not null');
    await nothingReachedAdmin1('after the refused batch');
  });

  test('numbers sent as strings are still taken, and null inside a notification is its own', async () => {
    const r = await s.api('POST', '/api/v1/send', '{"to":{"aid":"1"},"message":{"TYPE":"MESSAGE","TITLE":null,"TEXT":"as a string"},"ttl":"60"}');
    assert.equal(r.status, 200);
    assert.equal(r.body.delivered, 1);
    assert.equal(r.body.queued, true);
    const got = await admin1.next((f) => f?.TEXT === 'as a string');
    assert.equal(got.TITLE, null);
  });
});
