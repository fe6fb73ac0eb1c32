/**
 * A shutdown while a handshake waits for the session resolver (the panel's
 * HTTP service, or its database, is slow). The Gateway refuses new tabs
 * once it closes, and one still being checked is a new tab: it gets 503
 * HERALD_ERR_SHUTTING_DOWN at once. Left to wait, it kept the HTTP server
 * from closing for the whole shutdown grace (node's closeAllConnections does
 * not see upgrade sockets), and was answered only when its look-up ended,
 * after the shutdown, with 503 HERALD_ERR_UNAVAILABLE.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { startHerald } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';

/** Rejects after `ms` with `what`, so a missing event fails the test instead of hanging it. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}

test('a handshake waiting for the resolver when the server shuts down gets 503 HERALD_ERR_SHUTTING_DOWN at once, and the shutdown does not wait for it', async () => {
  // The panel's session service: it takes the look-up and never answers.
  let asked!: () => void;
  const lookUpArrived = new Promise<void>((resolve) => { asked = resolve; });
  const panel = createServer((_req: IncomingMessage) => asked());
  await new Promise<void>((resolve) => panel.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(panel.address() as AddressInfo).port}/herald/session`;
  const s = await startHerald({
    authResolver: 'http', httpResolverUrl: url, httpResolverTimeoutMs: 8000, authCacheMs: 0, authNegativeCacheMs: 0, shutdownGraceMs: 5000,
  });
  try {
    const handshake = TestTab.status(`${s.wsUrl}/ws/admin`, { headers: { cookie: 'sid=0123456789abcdef' } });
    await within(lookUpArrived, 5000, 'the look-up to reach the panel');
    const started = Date.now();
    const closing = s.herald.close();
    const refused = await within(handshake, 3000, 'the handshake to be answered');
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.body).error.code, 'HERALD_ERR_SHUTTING_DOWN');
    await closing;
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 2500, `the shutdown took ${tookMs} ms: it waited for the handshake (grace 5000 ms)`);
  } finally {
    await s.close();
    panel.closeAllConnections();
    panel.close();
  }
});
