/**
 * `herald send` and `herald run` when the server's answer does not come
 * within --timeout-ms: the server may have done the work (it did, here), so
 * the CLI says so and how to go on safely, as after a lost connection. A real
 * Herald behind a real TCP relay that holds every answer back. The
 * --timeout-ms of 1.5 s leaves the request time to reach the server on a
 * loaded machine (300 ms did not, once, with three test files at a time).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';
import { runCli } from './helpers/cli.js';

/** A relay to 127.0.0.1:`port` that passes requests on and never passes an answer back. */
async function answerHoldingRelay(port: number): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    // The answer is read and dropped: the client waits for it in vain.
    upstream.resume();
    client.on('close', () => upstream.destroy());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    close: async () => {
      for (const so of sockets) so.destroy();
      relay.close();
      await once(relay, 'close');
    },
  };
}

describe('an answer that does not come within --timeout-ms', () => {
  let s: TestServer;
  let relay: Awaited<ReturnType<typeof answerHoldingRelay>>;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['ping'] });
    relay = await answerHoldingRelay(Number(new URL(s.url).port));
    env = { HERALD_URL: relay.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(async () => {
    await relay.close();
    await s.close();
  });

  test('send: "may or may not have been sent", with the resend advice of a lost connection (it was sent)', async () => {
    const tab = await s.tab('admin', 601);
    try {
      await tab.nextOfType('WELCOME');
      const r = await runCli(['send', '--aid', '601', '--text', 'slow answer', '--ttl', '1h', '--idempotency-key', 'late-1', '--timeout-ms', '1500'], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^herald: Herald at http:\/\/127\.0\.0\.1:\d+ did not answer within 1500 ms \(--timeout-ms\): the notification to admin 601 may or may not have been sent; send it again with the same --idempotency-key: it is delivered once while the server keeps the key/);
      await tab.next((f) => f?.TEXT === 'slow answer');
      const unkeyed = await runCli(['send', '--aid', '601', '--text', 'no key', '--ttl', '0', '--timeout-ms', '1500'], { env });
      assert.equal(unkeyed.code, 1, unkeyed.stderr);
      assert.match(unkeyed.stderr, /may or may not have been sent; sending it again may deliver it twice \(give --idempotency-key to make a resend safe\)/);
      await tab.next((f) => f?.TEXT === 'no key');
    } finally {
      tab.close();
    }
  });

  test('run: the command may be running, and where to find it (it is)', async () => {
    const r = await runCli(['run', '--aid', '1', '--id', 'late-task', '--timeout-ms', '1500', '--', 'ping', '-c', '1', '-q', '127.0.0.1'], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /did not answer within 1500 ms \(--timeout-ms\): the command may or may not have been started, and may be running now; running it again may run it twice\. Look for it in GET \/api\/v1\/commands .*taskId "late-task".*POST \/api\/v1\/commands\/ID\/cancel/);
    const listed = await s.api('GET', '/api/v1/commands');
    assert.deepEqual(listed.body.commands.map((c: { taskId?: string; door: string }) => [c.taskId, c.door]), [['late-task', 'cli']]);
  });
});
