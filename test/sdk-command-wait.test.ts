/**
 * BrowserSender.commandStatus(id, { wait }) against a real Herald running a
 * real program: the server may hold a long poll for `wait` seconds, so that
 * time is the server's, not the SDK's deadline (timeoutMs) running out.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserSender } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('BrowserSender.commandStatus with wait', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['sleep'] });
  });
  after(() => s.close());

  test('a long poll longer than timeoutMs answers when the command ends, not HERALD_ERR_TIMEOUT', async () => {
    // Starting the program gets the default deadline: a loaded machine may take longer than 300 ms
    // to spawn it, and that is not what this test is about.
    const starter = new BrowserSender({ url: s.url, apiToken: s.apiToken, aid: 1 });
    const id = await starter.runInBackground('sleep', { args: ['1'] });
    assert.ok(id);
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, aid: 1, timeoutMs: 300 });
    const info = await sender.commandStatus(id, { wait: 20 });
    assert.equal(info?.state, 'succeeded', JSON.stringify(info));
  });

  test('the deadline still holds beyond the wait: a server that never answers times out after wait + timeoutMs', async () => {
    const { createServer } = await import('node:net');
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((socket) => { sockets.add(socket); socket.on('error', () => undefined); });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}`, apiToken: 'whatever-token-123', timeoutMs: 200 });
      const started = performance.now();
      await assert.rejects(sender.commandStatus('x', { wait: 0.3 }), (e: Error & { code?: string }) => e.code === 'HERALD_ERR_TIMEOUT' && /no answer within 500 ms/.test(e.message));
      const took = performance.now() - started;
      assert.ok(took >= 450 && took < 5000, `took ${took} ms`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
