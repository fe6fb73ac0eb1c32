/**
 * A number sent as a string is taken as that number (`"aid":"7"`,
 * `"ttl":"60"`), but the validator (Ajv's coercion: `data == +data`) also
 * took strings that spell no decimal number: white space and `"1e-400"` were
 * 0 (`"ttl":" "`: a send meant to be stored was not), `"0x10"` admin 16,
 * `"0b111"` admin 7. Refused with 400 HERALD_ERR_VALIDATION naming the field,
 * in every route's body, path and query (docs/http-api.md).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';

/** Strings the validator took for numbers they do not spell. */
const UNDECIMAL = [' ', '\t', '', ' 7', '7 ', '0x10', '0b111', '0o7', '1e-400', '-0.0001e-999', '.5'];

describe('API: a string that is no decimal number is not taken as one', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory', commandsAllow: ['true'] });
  });
  after(() => s.close());

  async function assertRefused(method: string, path: string, body: unknown, where: string, text: string): Promise<void> {
    const r = await s.api(method, path, body);
    const what = `${method} ${path} ${JSON.stringify(body)}`;
    assert.equal(r.status, 400, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'HERALD_ERR_VALIDATION', what);
    assert.ok(r.body.error.message.startsWith(`${where} must be `), `${what}: ${r.body.error.message}`);
    assert.ok(r.body.error.message.includes(JSON.stringify(text)), `${what}: ${r.body.error.message}`);
  }

  for (const text of UNDECIMAL) {
    test(`${JSON.stringify(text)} is refused in every number of a body`, async () => {
      const message = { TYPE: 'MESSAGE', TEXT: 'invoice paid' };
      await assertRefused('POST', '/api/v1/send', { to: { aid: 7 }, message, ttl: text }, 'body/ttl', text);
      await assertRefused('POST', '/api/v1/send', { to: { aid: 7 }, message, ttl: [text] }, 'body/ttl/0', text);
      await assertRefused('POST', '/api/v1/send', { to: { aid: text }, message }, 'body/to/aid', text);
      await assertRefused('POST', '/api/v1/send', { to: { uid: [text] }, message }, 'body/to/uid/0', text);
      await assertRefused('POST', '/api/v1/send', { to: { aids: [1, text] }, message }, 'body/to/aids/1', text);
      await assertRefused('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 7 }, message }, { to: { aid: 7 }, message, ttl: text }] }, 'body/messages/1/ttl', text);
      await assertRefused('POST', '/api/v1/send/batch', { messages: [{ to: { uids: [text] }, message }] }, 'body/messages/0/to/uids/0', text);
      await assertRefused('POST', '/api/v1/disconnect', { to: { uid: text } }, 'body/to/uid', text);
      await assertRefused('POST', '/api/v1/tokens', { kind: 'admin', id: text }, 'body/id', text);
      await assertRefused('POST', '/api/v1/tokens', { kind: 'admin', id: 1, ttl: text }, 'body/ttl', text);
      await assertRefused('POST', '/api/v1/commands', { aid: text, program: 'true' }, 'body/aid', text);
      await assertRefused('POST', '/api/v1/commands', { aid: 1, program: 'true', timeout: text }, 'body/timeout', text);
    });

    test(`${JSON.stringify(text)} is refused in every number of a path and a query`, async () => {
      const q = encodeURIComponent(text);
      await assertRefused('GET', `/api/v1/commands?limit=${q}`, undefined, 'querystring/limit', text);
      await assertRefused('GET', `/api/v1/commands?limit=1&limit=${q}`, undefined, 'querystring/limit/1', text);
      await assertRefused('GET', `/api/v1/commands/x?since=${q}`, undefined, 'querystring/since', text);
      await assertRefused('GET', `/api/v1/commands/x?wait=${q}`, undefined, 'querystring/wait', text);
      await assertRefused('GET', `/api/v1/commands/audit?aid=${q}`, undefined, 'querystring/aid', text);
      await assertRefused('GET', `/api/v1/commands/audit?before=${q}`, undefined, 'querystring/before', text);
      // A path's part cannot be empty (no route), nor end in white space a router keeps.
      if (text.trim() !== '' && text === text.trim()) await assertRefused('GET', `/api/v1/online/admin/${q}`, undefined, 'params/id', text);
    });
  }

  for (const text of ['07', '7.0', '7e0', '+7', '-0']) {
    test(`${JSON.stringify(text)} is refused for an id or another integer (the legacy door refuses it too), as ttl it is a number`, async () => {
      const message = { TYPE: 'MESSAGE', TEXT: 'invoice paid' };
      await assertRefused('POST', '/api/v1/send', { to: { aid: text }, message }, 'body/to/aid', text);
      await assertRefused('POST', '/api/v1/send', { to: { aids: [1, text] }, message }, 'body/to/aids/1', text);
      await assertRefused('POST', '/api/v1/tokens', { kind: 'admin', id: text }, 'body/id', text);
      await assertRefused('POST', '/api/v1/commands', { aid: text, program: 'true' }, 'body/aid', text);
      await assertRefused('GET', `/api/v1/online/admin/${encodeURIComponent(text)}`, undefined, 'params/id', text);
      await assertRefused('GET', `/api/v1/commands?limit=${encodeURIComponent(text)}`, undefined, 'querystring/limit', text);
      if (text !== '-0') assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 7 }, message, ttl: text })).status, 200);
    });
  }

  test('a number written in decimal, in a string, is still that number', async () => {
    const tab = await s.tab('admin', 16);
    await tab.nextOfType('WELCOME');
    const r = await s.api('POST', '/api/v1/send', { to: { aid: '16' }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: '6e1' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.results[0].id, 16);
    assert.equal(r.body.queued, true, 'ttl "6e1" is 60 s: stored');
    for (const ttl of ['1.5', '+60', '060', '0', '-0']) {
      const t = await s.api('POST', '/api/v1/send', { to: { aids: ['16', 17] }, message: 'x', ttl });
      assert.equal(t.status, 200, `ttl ${ttl}: ${JSON.stringify(t.body)}`);
    }
    assert.equal((await s.api('POST', '/api/v1/tokens', { kind: 'user', id: '7', ttl: '600' })).status, 200);
    assert.equal((await s.api('GET', '/api/v1/online/admin/16')).body.tabs, 1);
    assert.equal((await s.api('GET', '/api/v1/commands?limit=5')).status, 200);
  });

  test('a number written as a number that JSON reads as 0 although it is not 0 is refused; one that is 0, and any in a notification, are taken', async () => {
    const zeros = `0.${'0'.repeat(400)}1`;
    for (const [body, where, number] of [
      ['{"to":{"aid":7},"message":"x","ttl":1e-400}', 'body', '1e-400'],
      ['{"to":{"aid":7},"message":"x","ttl":-2.5E-999}', 'body', '-2.5E-999'],
      [`{"to":{"aid":7},"message":"x","ttl":${zeros}}`, 'body', zeros.slice(0, 40)],
      ['{"messages":[{"to":{"aid":7},"message":"x"},{"to":{"aid":7},"message":"x","ttl":1e-400}]}', 'body/messages/1', '1e-400'],
      ['{"kind":"admin","id":1,"ttl":5e-324,"x":1e-324}', 'body', '1e-324'],
    ] as const) {
      const path = body.startsWith('{"messages"') ? '/api/v1/send/batch' : body.startsWith('{"kind"') ? '/api/v1/tokens' : '/api/v1/send';
      const r = await s.api('POST', path, body);
      assert.equal(r.status, 400, `${body.slice(0, 80)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HERALD_ERR_VALIDATION');
      assert.equal(r.body.error.message, `${where} has the number ${number}, which JSON reads as 0: write 0, or a number JSON can hold`);
    }
    // 0 as written, the least number JSON holds, and numbers in what a notification carries.
    for (const ttl of ['0', '0.0', '0e5', '-0.000e-400', '5e-324', '1.5', '12e1']) {
      const r = await s.api('POST', '/api/v1/send', `{"to":{"aid":7},"message":{"TYPE":"MESSAGE","TEXT":"x","DATA":{"tiny":1e-400}},"ttl":${ttl}}`);
      assert.equal(r.status, 200, `ttl ${ttl}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await s.api('POST', '/api/v1/legacy', '{"TYPE":"PING","X":1e-400}')).body.TYPE, 'PONG', 'the legacy door takes any request object');
  });

  test('a ttl above 0 that rounds to 0 ms keeps the send stored, at both doors (it was a live-only send)', async () => {
    for (const ttl of [0.0004, '0.0004', 1e-300]) {
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 4040 }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.queued, true, `ttl ${ttl}: ${JSON.stringify(r.body)}`);
      assert.equal(typeof r.body.results[0].messageId, 'string');
    }
    const retained = () => s.herald.store.counts().retained;
    for (const TTL of [0.0004, '0.0004']) {
      const before = retained();
      assert.deepEqual((await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 4041, TTL, DATA: { TEXT: 'x' } })).body, 0, 'no tab open');
      assert.equal(retained(), before + 1, `legacy TTL ${JSON.stringify(TTL)} stored it`);
    }
    const live = await s.api('POST', '/api/v1/send', { to: { aid: 4040 }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: 0 });
    assert.equal(live.body.queued, false, 'ttl 0 is still live only');
  });

  test('"Infinity" and "1e400" are still refused as not finite, and a word as no number', async () => {
    const inf = await s.api('POST', '/api/v1/send', { to: { aid: 'Infinity' }, message: 'x' });
    assert.equal(inf.body.error.message, 'body/to/aid must be a finite number');
    const big = await s.api('GET', '/api/v1/commands?limit=1e400');
    assert.equal(big.body.error.message, 'querystring/limit must be a finite number');
    const word = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: 'x', ttl: 'soon' });
    assert.equal(word.status, 400);
    assert.equal(word.body.error.message, 'body/ttl must be number');
  });
});
