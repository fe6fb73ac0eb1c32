import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';

describe('presence answers the ids a send takes', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('an id past 2^53 - 1 is refused by GET /online/:kind/:id as by /send, not rounded to another person', async () => {
    // 9007199254740993 parses to 9007199254740992: the answer was about an id nobody asked for.
    for (const id of ['9007199254740993', '99999999999999999999']) {
      const online = await s.api('GET', `/api/v1/online/admin/${id}`);
      assert.equal(online.status, 400, id);
      assert.equal(online.body.error.code, 'HERALD_ERR_VALIDATION');
      assert.equal(online.body.error.message, 'params/id must be <= 9007199254740991');
      const send = await s.api('POST', '/api/v1/send', `{"to":{"aid":${id}},"message":{"TYPE":"MESSAGE"}}`);
      assert.equal(send.status, 400, id);
    }
    assert.deepEqual((await s.api('GET', '/api/v1/online/admin/9007199254740991')).body, { kind: 'admin', id: 9007199254740991, online: false, tabs: 0 });
  });
});
