/**
 * The old browser script (the panel's websocket_client.js) asks the server
 * to close its tab with `{ "type" :  "close_request"}`, key and value in
 * lower case. Herald must close the tab as it does for
 * `{"TYPE":"CLOSE_REQUEST"}` (PROTOCOL.md §1), not answer ERROR and keep it
 * open. Real `ws` clients against a real Herald.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import type { Closed, TestTab } from './helpers/ws-client.js';

/** How the tab closed, or a failure when it is still open after `ms`. */
function closedWithin(tab: TestTab, ms = 5000): Promise<Closed> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the tab is still open after ${ms} ms; got ${JSON.stringify(tab.frames.slice(-3))}`)), ms);
  });
  return Promise.race([tab.closed, timeout]).finally(() => clearTimeout(timer));
}

describe("the old script's close request", () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(async () => {
    await s?.close();
  });

  test('the exact text the old script sends closes the tab: the close notice, then 1000 "by client request"', async () => {
    const tab = await s.tab('admin', 61);
    await tab.nextOfType('WELCOME');
    tab.send('{ "type" :  "close_request"}');
    assert.deepEqual(await tab.nextOfType('close'), { TYPE: 'close', REASON: 'by client request' });
    assert.deepEqual(await closedWithin(tab), { code: 1000, reason: 'by client request' });
    assert.deepEqual(tab.frames.filter((f) => f?.TYPE === 'ERROR'), [], 'no ERROR frame');
  });

  test('on a user tab too, whatever the case of the value', async () => {
    const tab = await s.tab('user', 62);
    await tab.nextOfType('WELCOME');
    tab.send('{"type":"Close_Request"}');
    assert.deepEqual(await closedWithin(tab), { code: 1000, reason: 'by client request' });
    assert.deepEqual(tab.frames.filter((f) => f?.TYPE === 'ERROR'), [], 'no ERROR frame');
  });

  test('a frame with a TYPE is read by its TYPE: a lower-case type beside it closes nothing', async () => {
    const tab = await s.tab('admin', 63);
    await tab.nextOfType('WELCOME');
    tab.send('{"TYPE":"NOPE","type":"close_request"}');
    assert.equal((await tab.nextOfType('ERROR')).ERROR, 'UNKNOWN_TYPE');
    // Still open: it answers a PING.
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    tab.close();
    await closedWithin(tab);
  });
});
