/**
 * What a tab gets when the old client's MESSAGE is a hash: send_message({AID,
 * MESSAGE, TITLE}) writes DATA {"TYPE":"MESSAGE","TITLE":<TITLE>,"TEXT":<MESSAGE>}
 * (PROTOCOL.md §2), and a TEXT is never meant to be an object: the hash is the
 * notification, with a TYPE or without. On both doors (TCP and
 * POST /api/v1/legacy), at real `ws` tabs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { normaliseData } from '../src/server/api/legacy-request.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('legacy: a hash MESSAGE without a TYPE, wrapped in TEXT', () => {
  let server: TestServer;
  let c: RawLegacyClient;

  before(async () => {
    server = await startHerald({ store: 'memory' });
    c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
  });
  after(async () => {
    c.destroy();
    await server.close();
  });

  it('send_message({AID, MESSAGE => {TITLE, TEXT}}) reaches the tab as that notification, not one whose TEXT is an object', async () => {
    const tab = await server.tab('admin', 3);
    await tab.nextOfType('WELCOME');
    const r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":3,"DATA":{"TYPE":"MESSAGE","TITLE":null,"TEXT":{"TITLE":"x","TEXT":"y"}}}');
    assert.deepEqual(r.answer, { TYPE: 'RESULT', RESULT: [1] });
    const got = await tab.nextOfType('MESSAGE');
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT }, { TYPE: 'MESSAGE', TITLE: 'x', TEXT: 'y' });
  });

  it('with a TITLE given beside the hash, the hash\'s fields win and the TITLE fills what it lacks; the HTTP door does the same', async () => {
    const tab = await server.tab('admin', 4);
    await tab.nextOfType('WELCOME');
    await c.request('{"TYPE":"MESSAGE","ID":4,"DATA":{"TYPE":"MESSAGE","TITLE":"Платёж","TEXT":{"TEXT":"Абонент 42","MODULE":"Paysys"}}}');
    let got = await tab.nextOfType('MESSAGE');
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT, MODULE: got.MODULE }, { TYPE: 'MESSAGE', TITLE: 'Платёж', TEXT: 'Абонент 42', MODULE: 'Paysys' });
    const res = await server.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', ID: 4, DATA: { TYPE: 'MESSAGE', TITLE: null, TEXT: { TITLE: 'via http', TEXT: 'z' } } });
    assert.deepEqual(res, { status: 200, body: { TYPE: 'RESULT', RESULT: [1] } });
    got = await tab.nextOfType('MESSAGE');
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT }, { TYPE: 'MESSAGE', TITLE: 'via http', TEXT: 'z' });
  });

  it('another TYPE\'s object TEXT is that type\'s own data, and a string TEXT stays text: both delivered unchanged', () => {
    assert.deepEqual(normaliseData({ TYPE: 'EVENT', TEXT: { ROWS: [1, 2] } }), { TYPE: 'EVENT', TEXT: { ROWS: [1, 2] } });
    assert.deepEqual(normaliseData({ TYPE: 'MESSAGE', TITLE: 'a', TEXT: '{"TITLE":"looks like JSON"}' }), { TYPE: 'MESSAGE', TITLE: 'a', TEXT: '{"TITLE":"looks like JSON"}' });
    // No TYPE on the wrapper either: it is a MESSAGE (DATA without TYPE gets one), so its hash is unwrapped.
    assert.deepEqual(normaliseData({ TITLE: 'a', TEXT: { TEXT: 'b' } }), { TITLE: 'a', TEXT: 'b', TYPE: 'MESSAGE' });
  });
});
