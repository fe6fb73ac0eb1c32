/**
 * The SDK against a Herald that shuts down and restarts (a rolling deploy):
 * a request the server may have run is told apart from one that never left,
 * so that a caller (and the SDK) knows which can be sent again.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { BrowserSender, HeraldSdkError } from '../src/sdk/index.js';
import { gatedStore } from './helpers/gated-store.js';
import { within } from './helpers/legacy-client.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald } from './helpers/server.js';
import type { SendMessageInput } from '../src/sdk/index.js';

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
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, retryForMs: 0 });
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

  test('a send during a restart (503 while the old server closes, refused while nothing listens) is sent again and lands once on the new server', async () => {
    const port = await restartablePort();
    const secrets = { secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url') };
    const old = await startHerald({ port, shutdownGraceMs: 5000, legacyEnabled: false }, secrets);
    let fresh: Awaited<ReturnType<typeof startHerald>> | undefined;
    try {
      const sender = new BrowserSender({ url: old.url, apiToken: secrets.apiToken, retryForMs: 20_000 });
      // A tab that reads nothing more: the old server waits (up to 2 s) for its close
      // handshake before it stops listening, and refuses requests with 503 meanwhile.
      const stuck = await old.tab('admin', 2);
      await stuck.nextOfType('WELCOME');
      (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      let refused = 0;
      const firstRefusal = new Promise<void>((resolve) => {
        old.herald.app.server.on('request', (_req, res) => res.on('finish', () => {
          if (res.statusCode === 503) refused++;
          resolve();
        }));
      });
      const closing = old.herald.close();
      const sending = sender.sendMessage({ aid: 1, message: { TYPE: 'MESSAGE', TEXT: 'across the restart' }, ttl: 60 });
      sending.catch(() => undefined);
      await within(firstRefusal, 10_000, 'the old server to answer the send');
      assert.ok(refused >= 1, 'the old server refused the send with 503 while closing');
      await within(closing, 15_000, 'the old server to close');
      fresh = await startHerald({ port, legacyEnabled: false }, secrets);
      const result = await within(sending, 25_000, 'the send to land on the new server');
      assert.equal(result && result.queued, true);
      // Stored once: a tab that connects now replays it, and the next thing it gets is the marker.
      const tab = await fresh.tab('admin', 1);
      assert.equal((await tab.nextOfType('MESSAGE')).TEXT, 'across the restart');
      await sender.sendMessage({ aid: 1, message: { TYPE: 'MESSAGE', TEXT: 'marker' }, ttl: 0 });
      assert.equal((await tab.nextOfType('MESSAGE')).TEXT, 'marker');
    } finally {
      await old.close();
      await fresh?.close();
    }
  });
});

/**
 * A TCP relay in front of a real Herald that loses the first answer: the
 * request reaches the server whole and runs, and the connection to the client
 * is cut when the answer starts back (a reset on the way, a proxy restarting).
 * Later connections are relayed untouched.
 */
async function answerDroppingRelay(port: number, cutAfterMs = 0): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  let dropped = 0;
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = dropped === 0;
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (drop) {
        if (dropped === 0) dropped++;
        // `cutAfterMs`: the answer is held that long before the cut (a proxy giving up on it late).
        const cut = () => {
          client.destroy();
          upstream.destroy();
        };
        if (cutAfterMs > 0) setTimeout(cut, cutAfterMs);
        else cut();
        return;
      }
      client.write(chunk);
    });
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    dropped: () => dropped,
    close: async () => {
      for (const so of sockets) so.destroy();
      relay.close();
      await once(relay, 'close');
    },
  };
}

describe('SDK: a connection lost after the request was sent', () => {
  const sends: Array<[string, Omit<SendMessageInput, 'aid'> & { aid: number }, boolean]> = [
    ['a send without an idempotency key: not sent again (it may have been stored)', { aid: 1, message: { TEXT: 'no key' }, ttl: 60 }, false],
    ['a send with a key and ttl 0: not sent again (the server keeps no key for a live-only send)', { aid: 1, message: { TEXT: 'live only' }, ttl: 0, idempotencyKey: 'k-live' }, false],
    ['a string message with a key: not sent again (live only, no key kept)', { aid: 1, message: 'a string', idempotencyKey: 'k-string' }, false],
    ['a stored send with a key: sent again, and delivered once', { aid: 1, message: { TEXT: 'keyed' }, ttl: 60, idempotencyKey: 'k-stored' }, true],
    // The server keeps a stored send's key only for its TTL: here the answer is lost 100 ms
    // after the send ran, its key already gone, and a repeat would be delivered again.
    ['a stored send with a key and a TTL shorter than a repeat may take (20 ms): not sent again (the key would be gone)', { aid: 1, message: { TEXT: 'short-lived' }, ttl: 0.02, idempotencyKey: 'k-short' }, false],
  ];
  for (const [name, input, repeated] of sends) {
    test(name, async () => {
      const s = await startHerald({ legacyEnabled: false });
      const relay = await answerDroppingRelay(Number(new URL(s.url).port), input.ttl === 0.02 ? 100 : 0);
      try {
        const tab = await s.tab('admin', 1);
        await tab.nextOfType('WELCOME');
        let received = 0;
        s.herald.app.server.on('request', (req) => { if (req.url === '/api/v1/send') received++; });
        const sender = new BrowserSender({ url: relay.url, apiToken: s.apiToken, retryForMs: 20_000 });
        const text = typeof input.message === 'string' ? input.message : input.message.TEXT;
        if (repeated) {
          const r = await within(sender.sendMessage(input as SendMessageInput), 10_000, 'the repeated send to be answered');
          assert.equal(r && r.results?.[0]?.duplicate, true, 'the second copy is recognised by its key');
        } else {
          await assert.rejects(within(sender.sendMessage(input as SendMessageInput), 10_000, 'the send to fail'), isSdkError('HERALD_ERR_CONNECTION_LOST'));
        }
        assert.equal(received, repeated ? 2 : 1);
        assert.equal(relay.dropped(), 1);
        // Delivered once: the next notification after it is the marker.
        await tab.next((f) => f === text || f?.TEXT === text, 10_000);
        await new BrowserSender({ url: s.url, apiToken: s.apiToken }).sendMessage({ aid: 1, message: { TYPE: 'MESSAGE', TEXT: 'marker' }, ttl: 0 });
        const after = await tab.next((f) => f === text || f?.TEXT === text || f?.TEXT === 'marker', 10_000);
        assert.equal(after.TEXT, 'marker', `${String(text)} arrived twice`);
      } finally {
        await relay.close();
        await s.close();
      }
    });
  }

  test('a read whose answer was lost (a reset on a kept-alive connection) is asked again', async () => {
    const s = await startHerald({ legacyEnabled: false });
    const relay = await answerDroppingRelay(Number(new URL(s.url).port));
    try {
      const tab = await s.tab('admin', 5);
      await tab.nextOfType('WELCOME');
      const sender = new BrowserSender({ url: relay.url, apiToken: s.apiToken, retryForMs: 20_000 });
      assert.equal(await within(sender.connectedTabs({ aid: 5 }), 10_000, 'the read to be answered'), 1);
      assert.equal(relay.dropped(), 1);
    } finally {
      await relay.close();
      await s.close();
    }
  });

  test('isConnected(), ping() and status() try once: a server that is down answers at once, not after retryForMs', async () => {
    const port = await restartablePort();
    const sender = new BrowserSender({ url: `http://127.0.0.1:${port}`, apiToken: 'whatever-token-123', retryForMs: 60_000 });
    assert.equal(await within(sender.isConnected(), 5_000, 'isConnected() to answer'), false);
    await assert.rejects(within(sender.ping(), 5_000, 'ping() to fail'), isSdkError('HERALD_ERR_UNREACHABLE'));
    await assert.rejects(within(sender.status(), 5_000, 'status() to fail'), isSdkError('HERALD_ERR_UNREACHABLE'));
    // Any other call keeps trying within retryForMs, and then says how long it tried.
    const patient = new BrowserSender({ url: `http://127.0.0.1:${port}`, apiToken: 'whatever-token-123', retryForMs: 500 });
    await assert.rejects(patient.connectedAdmins(), (e: unknown) => isSdkError('HERALD_ERR_UNREACHABLE')(e) && /ECONNREFUSED \(\d+ attempts in \d+ ms\)/.test((e as Error).message));
  });
});
