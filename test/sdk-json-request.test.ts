/**
 * BrowserSender.jsonRequest (the seed's json_request): a raw legacy request
 * through POST /api/v1/legacy, answered as the old daemon would, against a
 * real Herald with real tabs.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserSender } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('BrowserSender.jsonRequest', () => {
  let s: TestServer;
  let sender: BrowserSender;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken });
  });
  after(() => s.close());

  test('jsonRequest answers as the old daemon: PONG, a flat LIST, RESULT per tab, 0, ERROR, and nothing for SILENT', async () => {
    const t1 = await s.tab('admin', 41);
    const t2 = await s.tab('admin', 41);
    await Promise.all([t1.nextOfType('WELCOME'), t2.nextOfType('WELCOME')]);
    assert.deepEqual(await sender.jsonRequest({ TYPE: 'PING' }), { TYPE: 'PONG' });
    const list = (await sender.jsonRequest({ TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' })) as { TYPE: string; LIST: number[] };
    assert.equal(list.TYPE, 'RESULT');
    assert.ok(list.LIST.includes(41));
    // The Perl client's send_message shape, with the seed's whole notification as MESSAGE.
    const answer = await sender.jsonRequest({
      TYPE: 'MESSAGE', TO: 'ADMIN', ID: 41, TOKEN: '',
      DATA: { TYPE: 'MESSAGE', TITLE: null, TEXT: { TYPE: 'MESSAGE', TITLE: 'Test notification', TEXT: 'Just<br/>some<br/>text' } },
    });
    assert.deepEqual(answer, { TYPE: 'RESULT', RESULT: [1, 1] });
    const got = await t1.nextOfType('MESSAGE');
    assert.deepEqual([got.TITLE, got.TEXT], ['Test notification', 'Just<br/>some<br/>text']);
    assert.equal(await sender.jsonRequest({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 4242, DATA: { TEXT: 'x' } }), 0);
    assert.deepEqual(await sender.jsonRequest({ TYPE: 'NOPE' }), { TYPE: 'ERROR', ERROR: 'UNKNOWN MESSAGE TYPE' });
    assert.equal(await sender.jsonRequest({ TYPE: 'PING', SILENT: 1 }), null);
    assert.deepEqual(await sender.jsonRequest({ TYPE: 'NOPE', SILENT: 1 }), { TYPE: 'ERROR', ERROR: 'UNKNOWN MESSAGE TYPE' }, 'a SILENT request refused says so over HTTP');
    t1.close();
    t2.close();
  });
});
