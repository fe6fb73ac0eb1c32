/**
 * The legacy listener's memory under many unfinished requests: what all
 * connections hold of requests that have not arrived whole is bounded
 * together (legacyMaxBufferedBytes), not only each (legacyMaxRequestBytes),
 * so 1024 connections cannot hold 1 GiB between them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { LegacyServer } from '../src/server/api/legacy-server.js';
import { loadOptions } from '../src/server/options.js';
import { createCore } from './helpers/legacy-core.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { until } from './helpers/ws-client.js';

const MAX_REQUEST = 100_000;
const MAX_HELD = 250_000;

let s: TestServer;
let port: number;
const clients: RawLegacyClient[] = [];

before(async () => {
  s = await startHerald({ store: 'memory', legacyMaxRequestBytes: MAX_REQUEST, legacyMaxBufferedBytes: MAX_HELD });
  port = s.herald.legacy!.address!.port;
});

after(async () => {
  for (const c of clients) c.destroy();
  await s.close();
});

async function client(): Promise<RawLegacyClient> {
  const c = await RawLegacyClient.connect(port);
  clients.push(c);
  return c;
}

/** A PING padded to `bytes`, cut before its last two characters. */
function unfinishedPing(bytes: number): { head: string; rest: string } {
  const whole = `{"TYPE":"PING","PAD":"${'a'.repeat(bytes - 26)}"}`;
  return { head: whole.slice(0, -2), rest: whole.slice(-2) };
}

describe('legacy: unfinished requests held over all connections', () => {
  test('a connection whose unfinished request would pass legacyMaxBufferedBytes is refused and closed; the others, and small requests, go on', async () => {
    const held: Array<{ c: RawLegacyClient; rest: string }> = [];
    for (let i = 0; i < 2; i++) {
      const c = await client();
      const { head, rest } = unfinishedPing(90_000);
      await c.write(head);
      held.push({ c, rest });
      await until(() => s.herald.legacy!.held >= 90_000 * (i + 1) - 100, 5000, `request ${i + 1} held`);
    }
    // A third would hold 270,000 bytes in all.
    const third = await client();
    await third.write(unfinishedPing(90_000).head);
    const refusal = await third.next(5000) as { TYPE: string; ERROR: string; CODE: string };
    assert.equal(refusal.TYPE, 'ERROR');
    assert.equal(refusal.CODE, 'HERALD_ERR_UNAVAILABLE');
    assert.match(refusal.ERROR, /legacyMaxBufferedBytes/);
    await third.ended;
    assert.ok(s.herald.legacy!.held <= MAX_HELD, `held ${s.herald.legacy!.held}`);

    // A request that arrives whole is never held, and is answered meanwhile.
    const small = await client();
    assert.deepEqual((await small.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });

    // The two held requests complete and are answered; what they held is released.
    for (const { c, rest } of held) {
      await c.write(rest);
      assert.deepEqual(await c.next(5000), { TYPE: 'PONG' });
    }
    assert.equal(s.herald.legacy!.held, 0);
    // A connection that closes with its request unfinished releases what it held too.
    const leaving = await client();
    await leaving.write(unfinishedPing(90_000).head);
    await until(() => s.herald.legacy!.held > 0, 5000, 'the leaving request held');
    leaving.destroy();
    await until(() => s.herald.legacy!.held === 0, 5000, 'what the closed connection held released');
    // Room again for a large request.
    const again = await client();
    const { head, rest } = unfinishedPing(90_000);
    await again.write(head);
    await again.write(rest);
    assert.deepEqual(await again.next(5000), { TYPE: 'PONG' });
  });

  test('legacyMaxBufferedBytes below legacyMaxRequestBytes is a configuration error', async () => {
    await assert.rejects(startHerald({ legacyMaxRequestBytes: 100_000, legacyMaxBufferedBytes: 50_000 }), /legacyMaxBufferedBytes.*legacyMaxRequestBytes/);
  });
});

/**
 * A connection's first bytes are held, unread, while they could still be an
 * HTTP request line (`POST /… HTTP/1.1`, a web page's fetch()): held bytes
 * like any others, so refused against legacyMaxBufferedBytes, and never more
 * of them than legacyMaxRequestBytes.
 */
describe('legacy: first bytes held while they may be an HTTP request line', () => {
  async function listener(overrides: Record<string, unknown>) {
    const core = await createCore();
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {}, overrides }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    return { legacy, port, async close() { await legacy.close(); await core.close(); } };
  }

  test('they count against legacyMaxBufferedBytes, and a connection whose first bytes would pass it is refused and closed', async () => {
    const l = await listener({ legacyMaxRequestBytes: 1024, legacyMaxBufferedBytes: 1024 });
    const opened: RawLegacyClient[] = [];
    try {
      const a = await RawLegacyClient.connect(l.port);
      opened.push(a);
      await a.write(unfinishedPing(600).head);
      await until(() => l.legacy.held >= 590, 5000, 'the unfinished request held');
      // 506 bytes that may still be a request line, beside 598 held: over 1024 together.
      const b = await RawLegacyClient.connect(l.port);
      opened.push(b);
      await b.write(`POST /${'x'.repeat(500)}`);
      const refusal = await b.next(5000) as { TYPE: string; ERROR: string; CODE: string };
      assert.deepEqual({ TYPE: refusal.TYPE, CODE: refusal.CODE }, { TYPE: 'ERROR', CODE: 'HERALD_ERR_UNAVAILABLE' });
      assert.match(refusal.ERROR, /legacyMaxBufferedBytes/);
      await b.ended;
      assert.ok(l.legacy.held <= 1024, `held ${l.legacy.held}`);
      // The held request is untouched, and completes.
      await a.write(unfinishedPing(600).rest);
      assert.deepEqual(await a.next(5000), { TYPE: 'PONG' });
    } finally {
      for (const c of opened) c.destroy();
      await l.close();
    }
  });

  test('no more of them are held than legacyMaxRequestBytes: past it, first bytes that could still be a request line are refused as one', async () => {
    const l = await listener({ legacyMaxRequestBytes: 1024 });
    const c = await RawLegacyClient.connect(l.port);
    try {
      await c.write(`POST /${'x'.repeat(1100)}`);
      const refusal = await c.next(5000) as { TYPE: string; ERROR: string; CODE: string };
      assert.deepEqual(refusal, { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST: this port speaks the legacy JSON protocol, not HTTP; closing', CODE: 'HERALD_ERR_BAD_REQUEST' });
      await c.ended;
      assert.equal(l.legacy.held, 0);
    } finally {
      c.destroy();
      await l.close();
    }
  });
});
