/**
 * The SDK against a Herald that shuts down and restarts (a rolling deploy):
 * a request the server may have run is told apart from one that never left,
 * so that a caller (and the SDK) knows which can be sent again.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserSender, HeraldSdkError } from '../src/sdk/index.js';
import { gatedStore } from './helpers/gated-store.js';
import { within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';

function isSdkError(code: string, status = 0) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof HeraldSdkError, `not a HeraldSdkError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    return true;
  };
}

describe('SDK: a server that shuts down', () => {
  test('a send the shutdown cuts off (still in flight after shutdownGraceMs) is HERALD_ERR_CONNECTION_LOST; with nothing listening, HERALD_ERR_UNREACHABLE', async () => {
    const gated = gatedStore();
    const s = await startHerald({ shutdownGraceMs: 300, legacyEnabled: false }, { store: gated.store });
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken });
    try {
      const sending = sender.sendMessage({ aid: 1, message: { TEXT: 'in flight at shutdown' }, ttl: 60 });
      sending.catch(() => undefined);
      await within(gated.written(1), 10_000, 'the send to reach the store');
      const closing = s.herald.close();
      // The server received it and was storing it: "could not be reached" would be untrue,
      // and a caller who sent it again on that word could deliver it twice.
      await assert.rejects(within(sending, 10_000, 'the send to fail'), (e: unknown) => isSdkError('HERALD_ERR_CONNECTION_LOST')(e) && /may have carried the request out/.test((e as Error).message));
      gated.open();
      await within(closing, 10_000, 'close() to end');
      await assert.rejects(sender.sendMessage({ aid: 1, message: { TEXT: 'nobody listens' } }), (e: unknown) => isSdkError('HERALD_ERR_UNREACHABLE')(e) && /ECONNREFUSED/.test((e as Error).message));
    } finally {
      gated.open();
      await s.close();
    }
  });
});
