/**
 * An idempotency key's bounds in the SDK are the server's: 1 to 200
 * characters, counted as code points. The SDK counted UTF-16 units, so a key
 * of 150 emoji, which the server takes, was refused before the request.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BrowserSender, HeraldSdkError } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('the SDK\'s idempotency key bounds', () => {
  let s: TestServer;
  let sender: BrowserSender;
  before(async () => {
    s = await startHerald();
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, retryForMs: 0 });
  });
  after(() => s.close());

  test('200 emoji are sent and taken; 201 are refused before the request', async () => {
    const message = { TYPE: 'MESSAGE', TITLE: 't', TEXT: 'x' };
    const first = await sender.sendMessage({ aid: 7, message, ttl: 60, idempotencyKey: '😀'.repeat(200) });
    const again = await sender.sendMessage({ aid: 7, message, ttl: 60, idempotencyKey: '😀'.repeat(200) });
    assert.ok(first && again);
    assert.equal(first.results?.[0]?.duplicate, false);
    assert.equal(again.results?.[0]?.duplicate, true, 'the server took the key as the same one');
    await assert.rejects(sender.sendMessage({ aid: 7, message, ttl: 60, idempotencyKey: '😀'.repeat(201) }), (e: unknown) => e instanceof HeraldSdkError && /1 to 200 characters, got 201/.test(e.message));
  });
});
