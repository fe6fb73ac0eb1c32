/**
 * maxSendBytes: what one request may make Herald store and deliver, each
 * notification's JSON counted once per recipient. A list send of one large
 * text to many people was copied, framed and stored once per person (100 ×
 * 800 KB held the event loop 8.7 s; 10,000 × 820 KB ended the process out of
 * heap): past the bound the whole request is refused, 413, before anything
 * is stored. And a payload shared by several recipients is serialised once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { createCore } from './helpers/legacy-core.js';

const MAX = 20_000;
const LEGACY_TOKEN = 'perl-side-token-0123456789';

for (const store of ['memory', 'sqlite'] as const) {
  describe(`maxSendBytes with the ${store} store`, () => {
    let s: TestServer;
    before(async () => { s = await startHerald({ store, maxSendBytes: MAX, legacyToken: LEGACY_TOKEN }); });
    after(async () => { await s.close(); });

    const retained = async (): Promise<number> => (await s.api('GET', '/api/v1/status')).body.storeCounts.retained;

    test('a list send whose text, once per recipient, passes the bound is refused whole with 413 naming the option and the figures', async () => {
      const before = await retained();
      const text = 'y'.repeat(1000);
      const aids = Array.from({ length: 30 }, (_, i) => 1000 + i);
      const r = await s.api('POST', '/api/v1/send', { to: { aids }, message: { TYPE: 'MESSAGE', TEXT: text } });
      assert.equal(r.status, 413, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HERALD_ERR_TOO_LARGE');
      assert.match(r.body.error.message, /maxSendBytes \(20000\)/);
      const total = r.body.error.details.bytes as number;
      assert.ok(total > 30 * 1000 && total < 30 * 1100, `the whole request counted: ${total}`);
      assert.match(r.body.error.message, new RegExp(`come to ${total} bytes`));
      assert.deepEqual(r.body.error.details, { option: 'maxSendBytes', bytes: total, maxSendBytes: MAX });
      assert.equal(await retained(), before, 'nothing stored');
      // The same text to fewer people fits, and is stored for each.
      const ok = await s.api('POST', '/api/v1/send', { to: { aids: aids.slice(0, 10) }, message: { TYPE: 'MESSAGE', TEXT: text } });
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      assert.equal(await retained(), before + 10);
    });

    test('a batch is counted over all its items and recipients; live-only ones count too', async () => {
      const before = await retained();
      const text = 'z'.repeat(5000);
      const r = await s.api('POST', '/api/v1/send/batch', {
        messages: [
          { to: { aid: 2001 }, message: { TYPE: 'MESSAGE', TEXT: 'small' } },
          { to: { aids: [2002, 2003] }, message: { TYPE: 'MESSAGE', TEXT: text } },
          { to: { aids: [2004, 2005] }, message: { TYPE: 'MESSAGE', TEXT: text }, ttl: 0 },
        ],
      });
      assert.equal(r.status, 413, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HERALD_ERR_TOO_LARGE');
      assert.equal(await retained(), before, 'not even the small first item is stored');
      const live = await s.api('POST', '/api/v1/send', { to: { aids: [2004, 2005, 2006, 2007, 2008] }, message: { TYPE: 'MESSAGE', TEXT: text }, ttl: 0 });
      assert.equal(live.status, 413, JSON.stringify(live.body));
    });

    test('a broadcast counts once, and many small sends pass', async () => {
      const b = await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'w'.repeat(MAX - 100) } });
      assert.equal(b.status, 200, JSON.stringify(b.body));
      const aids = Array.from({ length: 50 }, (_, i) => 3000 + i);
      const many = await s.api('POST', '/api/v1/send', { to: { aids }, message: { TYPE: 'MESSAGE', TEXT: 'hello' } });
      assert.equal(many.status, 200, JSON.stringify(many.body));
    });

    test('the legacy door answers a MESSAGE past the bound with an ERROR, and goes on serving', async () => {
      const c = await RawLegacyClient.connect(s.herald.urls.legacy!.port);
      try {
        const big = JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 7, TOKEN: LEGACY_TOKEN, DATA: { TYPE: 'MESSAGE', TEXT: 'q'.repeat(MAX) } });
        const r = await c.request(big, 5000);
        const answer = r.answer as { TYPE: string; ERROR: string; CODE: string };
        assert.equal(answer.TYPE, 'ERROR', JSON.stringify(answer).slice(0, 300));
        assert.equal(answer.CODE, 'HERALD_ERR_TOO_LARGE');
        assert.match(answer.ERROR, /maxSendBytes/);
        const small = await c.request(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 7, TOKEN: LEGACY_TOKEN, DATA: { TYPE: 'MESSAGE', TEXT: 'ok' } }), 5000);
        assert.notEqual((small.answer as { TYPE?: string }).TYPE, 'ERROR', JSON.stringify(small.answer));
      } finally {
        c.destroy();
      }
    });
  });
}

describe('a payload shared by several recipients', () => {
  test('is serialised once for a list send, not once per person', async () => {
    const core = await createCore();
    try {
      let reads = 0;
      // JSON.stringify reads the getter once per serialisation.
      const payload = { TYPE: 'MESSAGE', get TEXT() { reads++; return 'shared text'; } };
      const people = Array.from({ length: 25 }, (_, i) => ({ kind: 'admin' as const, id: 100 + i }));
      const tab = core.open('admin', 100)[0]!;
      const results = await core.notifier.sendMany(people, payload);
      assert.equal(results.length, 25);
      assert.ok(results.every((r) => r.queued));
      assert.equal(reads, 1, `serialised ${reads} times`);
      assert.deepEqual((tab.received[0] as { TEXT: string }).TEXT, 'shared text');
    } finally {
      await core.close();
    }
  });
});
