/**
 * The legacy listener's memory under many unfinished requests: what all
 * connections hold of requests that have not arrived whole is bounded
 * together (legacyMaxBufferedBytes), not only each (legacyMaxRequestBytes),
 * so 1024 connections cannot hold 1 GiB between them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
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
