import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import Fastify from 'fastify';
import { installErrorHandling } from '../src/server/api/http-api.js';
import { ErrorCodes, HeraldError, type ErrorCode } from '../src/server/errors.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { AppendInput } from '../src/server/store/message-store.js';
import { within } from './helpers/legacy-client.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** Sends raw bytes on a new connection and returns all the server sent before it closed the connection. */
async function rawExchange(url: string, bytes: string): Promise<{ status: number; head: string; body: any }> {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  await once(socket, 'connect');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('utf8')));
  socket.on('error', () => undefined);
  socket.write(bytes);
  await within(once(socket, 'close'), 10_000, 'the server to answer and close the connection');
  const at = text.indexOf('\r\n\r\n');
  const head = text.slice(0, at);
  return { status: Number(head.split(' ')[1]), head, body: JSON.parse(text.slice(at + 4)) };
}

describe('HTTP API', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('every call needs the bearer token', async () => {
    for (const headers of [{ authorization: '' }, { authorization: 'Bearer wrong-token-of-some-length' }, { authorization: `Basic ${s.apiToken}` }]) {
      const r = await s.api('GET', '/api/v1/ping', undefined, headers);
      assert.equal(r.status, 401);
      assert.equal(r.body.error.code, 'HERALD_ERR_UNAUTHORIZED');
    }
    const ok = await s.api('GET', '/api/v1/ping');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.ok, true);
    // The scheme's name is case-insensitive (RFC 9110 §11.1); the token is not.
    for (const scheme of ['bearer', 'BEARER']) {
      assert.equal((await s.api('GET', '/api/v1/ping', undefined, { authorization: `${scheme} ${s.apiToken}` })).status, 200, scheme);
    }
    assert.equal((await s.api('GET', '/api/v1/ping', undefined, { authorization: `Bearer ${s.apiToken.toUpperCase()}x` })).status, 401);
  });

  test('online lists and is-online with tab count', async () => {
    const a = await s.tab('admin', 11);
    const b = await s.tab('admin', 11);
    const u = await s.tab('user', 5);
    await Promise.all([a, b, u].map((t) => t.nextOfType('WELCOME')));
    assert.deepEqual((await s.api('GET', '/api/v1/online?kind=admin')).body, { kind: 'admin', ids: [11] });
    assert.deepEqual((await s.api('GET', '/api/v1/online?kind=user')).body, { kind: 'user', ids: [5] });
    assert.deepEqual((await s.api('GET', '/api/v1/online/admin/11')).body, { kind: 'admin', id: 11, online: true, tabs: 2 });
    assert.deepEqual((await s.api('GET', '/api/v1/online/admin/12')).body, { kind: 'admin', id: 12, online: false, tabs: 0 });
    for (const t of [a, b, u]) t.close();
  });

  test('send to a user, a list, and everyone', async () => {
    const u1 = await s.tab('user', 21);
    const u2 = await s.tab('user', 22);
    await Promise.all([u1, u2].map((t) => t.nextOfType('WELCOME')));
    const one = await s.api('POST', '/api/v1/send', { to: { uid: 21 }, message: { TYPE: 'EVENT', MODULE: 'Msgs', EXTRA: '/x' } });
    assert.equal(one.body.delivered, 1);
    assert.deepEqual(await u1.nextOfType('EVENT'), { TYPE: 'EVENT', MODULE: 'Msgs', EXTRA: '/x', SEQ: 1, EPOCH: one.body.results[0].epoch });
    const list = await s.api('POST', '/api/v1/send', { to: { uids: [21, 22, 23] }, message: 'plain string' });
    assert.equal(list.body.delivered, 2);
    assert.deepEqual(list.body.results.map((r: any) => r.delivered), [1, 1, 0]);
    assert.equal(await u1.next((f) => typeof f === 'string'), 'plain string');
    assert.equal(await u2.next((f) => typeof f === 'string'), 'plain string');
    const all = await s.api('POST', '/api/v1/send', { to: { all: 'users' }, message: { TYPE: 'MESSAGE', TEXT: 'to everyone' } });
    assert.equal(all.body.delivered, 2);
    for (const t of [u1, u2]) {
      const m = await t.next((f) => f?.TEXT === 'to everyone');
      assert.equal(m.STREAM, '*');
      assert.equal(m.SEQ, all.body.seq);
    }
    u1.close();
    u2.close();
  });

  test('a batch sends many different notifications in one request, in order per person', async () => {
    const tab = await s.tab('admin', 71);
    await tab.nextOfType('WELCOME');
    const messages = Array.from({ length: 50 }, (_, i) => ({ to: { aid: i % 2 === 0 ? 71 : 72 }, message: { TYPE: 'MESSAGE', TEXT: `#${i}` } }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200);
    assert.equal(r.body.results.length, 50);
    assert.deepEqual(r.body.results.slice(0, 2).map((x: any) => x.delivered), [1, 0]);
    await tab.next((f) => f.TEXT === '#48');
    assert.deepEqual(tab.notifications().map((f) => f.TEXT), messages.filter((m) => m.to.aid === 71).map((m) => m.message.TEXT));
    assert.deepEqual(tab.notifications().map((f) => f.SEQ), Array.from({ length: 25 }, (_, i) => i + 1));
    const bad = await s.api('POST', '/api/v1/send/batch', { messages: [] });
    assert.equal(bad.body.error.code, 'HERALD_ERR_VALIDATION');
    tab.close();
  });

  test('a batch may ask for totals only: tabs reached, items stored, duplicates', async () => {
    const tab = await s.tab('admin', 73);
    await tab.nextOfType('WELCOME');
    const messages = [
      { to: { aid: 73 }, message: { TYPE: 'MESSAGE', TEXT: 'a' }, idempotencyKey: 'k1' },
      { to: { aid: 73 }, message: { TYPE: 'MESSAGE', TEXT: 'b' } },
      { to: { aids: [73, 74] }, message: { TYPE: 'MESSAGE', TEXT: 'c' } },
      { to: { aid: 74 }, message: 'live only' },
    ];
    const r = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { items: 4, delivered: 3, queued: 3, duplicates: 0, dropped: 0 });
    const again = await s.api('POST', '/api/v1/send/batch', { messages: messages.slice(0, 1), answer: 'summary' });
    assert.deepEqual(again.body, { items: 1, delivered: 0, queued: 1, duplicates: 1, dropped: 0 });
    await tab.next((f) => f.TEXT === 'c');
    assert.deepEqual(tab.notifications().map((f) => f.TEXT), ['a', 'b', 'c']);
    // A broadcast in a batch is answered in its place, and reaches the tab after what came before it.
    const mixed = await s.api('POST', '/api/v1/send/batch', {
      messages: [{ to: { aid: 73 }, message: { TYPE: 'MESSAGE', TEXT: 'e' } }, { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'f' } }],
    });
    assert.equal(mixed.body.results.length, 2);
    assert.equal(mixed.body.results[0].results[0].id, 73);
    assert.equal(typeof mixed.body.results[1].messageId, 'string');
    assert.ok(mixed.body.results[1].delivered >= 1);
    const f = await tab.next((x) => x.TEXT === 'f');
    assert.equal(f.STREAM, '*');
    // Acknowledged, so that the admin tabs of later tests are not replayed it.
    tab.send({ TYPE: 'RESPONSE', SEQ: f.SEQ, EPOCH: f.EPOCH, STREAM: '*' });
    for (let i = 0; !(await s.api('GET', `/api/v1/messages/${mixed.body.results[1].messageId}`)).body.acknowledged; i++) {
      assert.ok(i < 100, 'the broadcast ack was recorded');
      await new Promise((r) => setTimeout(r, 20));
    }
    const wrong = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'some' });
    assert.equal(wrong.body.error.code, 'HERALD_ERR_VALIDATION');
    tab.close();
  });

  test('a TTL past the bound is the bound, even one that overflows (1e308 s): a batch never fails half sent', async () => {
    const before = Date.now();
    const r = await s.api('POST', '/api/v1/send/batch', {
      messages: [
        { to: { aid: 41 }, message: { TYPE: 'MESSAGE', TITLE: 'long' }, ttl: 1e308 },
        { to: { aid: 42 }, message: { TYPE: 'MESSAGE', TITLE: 'longer than allowed' }, ttl: 1e12 },
      ],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const item of r.body.results) {
      const status = await s.api('GET', `/api/v1/messages/${encodeURIComponent(item.results[0].messageId)}`);
      assert.equal(status.status, 200);
      assert.ok(status.body.expiresAt >= before + s.options.maxTtlMs && status.body.expiresAt <= Date.now() + s.options.maxTtlMs, `expires at the bound: ${status.body.expiresAt}`);
    }
  });

  test('disconnect closes every tab of a person with the reason', async () => {
    const t = await s.tab('admin', 31);
    await t.nextOfType('WELCOME');
    const r = await s.api('POST', '/api/v1/disconnect', { to: { aid: 31 }, reason: 'kicked by operator' });
    assert.deepEqual(r.body, { tabs: 1 });
    assert.deepEqual(await t.nextOfType('close'), { TYPE: 'close', REASON: 'kicked by operator' });
    assert.equal((await t.closed).code, 4403);
  });

  test('bad bodies get schema errors with stable codes, never a stack trace', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{ to: { aid: 'x' }, message: { TYPE: 'MESSAGE' } }, 400, 'HERALD_ERR_VALIDATION'],
      [{ to: { aid: 1 } }, 400, 'HERALD_ERR_VALIDATION'],
      [{ to: { aid: 1 }, message: { TITLE: 'no type' } }, 400, 'HERALD_ERR_VALIDATION'],
      [{ to: { aid: 1 }, message: { TYPE: 'MESSAGE' }, ttl: -1 }, 400, 'HERALD_ERR_VALIDATION'],
      ['{"to":', 400, 'HERALD_ERR_BAD_REQUEST'],
    ];
    for (const [body, status, code] of cases) {
      const r = await s.api('POST', '/api/v1/send', body);
      assert.equal(r.status, status, JSON.stringify(body));
      assert.equal(r.body.error.code, code, JSON.stringify(r.body));
      assert.doesNotMatch(JSON.stringify(r.body), /at .*\.(ts|js):\d+/);
    }
    // JSON sent with another Content-Type, or none: the answer names the Content-Type, not the JSON.
    for (const [headers, given] of [[{ 'content-type': 'text/plain' }, 'got "text/plain"'], [{ 'content-type': 'application/x-www-form-urlencoded' }, 'got "application/x-www-form-urlencoded"']] as const) {
      const r = await s.api('POST', '/api/v1/send', JSON.stringify({ to: { aid: 1 }, message: 'x' }), headers);
      assert.equal(r.status, 400, given);
      assert.equal(r.body.error.code, 'HERALD_ERR_BAD_REQUEST');
      assert.match(r.body.error.message, /^the body must be JSON, sent with Content-Type: application\/json/);
      assert.ok(r.body.error.message.includes(given), r.body.error.message);
    }
    const big = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'x'.repeat(s.options.maxBodyBytes) } });
    assert.equal(big.status, 413);
    assert.equal(big.body.error.code, 'HERALD_ERR_TOO_LARGE');
    const missing = await s.api('GET', '/api/v1/nothing-here');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'HERALD_ERR_NOT_FOUND');
  });

  test('a field no schema knows is refused, naming it, not dropped: a misspelt ttl must not send a notification that lives for the default TTL', async () => {
    const cases: Array<[string, unknown, string]> = [
      ['/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE' }, tll: 5 }, 'body has an unknown field "tll"'],
      ['/api/v1/send', { to: { aid: 1 }, message: 'x', idempotency_key: 'k' }, 'body has an unknown field "idempotency_key"'],
      ['/api/v1/send', { to: { aidd: 1 }, message: 'x' }, 'body/to has an unknown field "aidd"'],
      ['/api/v1/send/batch', { messages: [{ to: { aid: 1 }, message: 'x' }, { to: { aid: 1 }, message: 'x', TTL: 5 }] }, 'body/messages/1 has an unknown field "TTL"'],
      ['/api/v1/send/batch', { messages: [{ to: { aid: 1 }, message: 'x' }], answers: 'summary' }, 'body has an unknown field "answers"'],
      ['/api/v1/disconnect', { to: { aid: 1 }, reasn: 'kicked' }, 'body has an unknown field "reasn"'],
      ['/api/v1/disconnect', { to: { aidd: 1 } }, 'body/to has an unknown field "aidd"'],
      ['/api/v1/disconnect', { to: { aid: 1, uid: 2 } }, 'body/to must hold exactly one of aid, uid, not aid and uid'],
      ['/api/v1/disconnect', { to: {} }, 'body/to must hold exactly one of aid, uid'],
      // The count is checked before the names: a stray field beside a right one is still named.
      ['/api/v1/send', { to: { aid: 1, foo: 1 }, message: 'x' }, 'body/to has an unknown field "foo"'],
      ['/api/v1/send', { to: { aid: 1, uid: 2 }, message: 'x' }, 'body/to must hold exactly one of aid, uid, aids, uids, all, not aid and uid'],
      ['/api/v1/send/batch', { messages: [{ to: { aid: 1 }, message: 'x' }, { to: { uids: [1], bar: 2 }, message: 'x' }] }, 'body/messages/1/to has an unknown field "bar"'],
      ['/api/v1/tokens', { kind: 'admin', id: 1, ttlSec: 60 }, 'body has an unknown field "ttlSec"'],
    ];
    for (const [path, body, message] of cases) {
      const r = await s.api('POST', path, body);
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.deepEqual(r.body.error, { code: 'HERALD_ERR_VALIDATION', message }, `${path} ${JSON.stringify(body)}`);
    }
    const status = await s.api('GET', '/api/v1/online/admin/1');
    assert.equal(status.status, 200, 'nothing was sent, and the server goes on');
  });

  test('a notification keeps every field of its own, nested ones too: only the request\'s own fields are closed', async () => {
    const tab = await s.tab('admin', 63);
    await tab.nextOfType('WELCOME');
    const message = { TYPE: 'MESSAGE', TITLE: 'x', PANEL_FIELD: 1, SENDER: { UID: 5, LOGIN: 'l', SOMETHING: [1, { deep: true }] }, extra_lower: null };
    const one = await s.api('POST', '/api/v1/send', { to: { aid: 63 }, message });
    assert.equal(one.status, 200, JSON.stringify(one.body));
    const got = await tab.next((f) => f.TITLE === 'x');
    assert.deepEqual({ ...got, SEQ: undefined, EPOCH: undefined }, { ...message, SEQ: undefined, EPOCH: undefined });
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 63 }, message: { ...message, TITLE: 'y' } }] });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    const fromBatch = await tab.next((f) => f.TITLE === 'y');
    assert.deepEqual(fromBatch.SENDER, message.SENDER);
    assert.equal(fromBatch.PANEL_FIELD, 1);
    // The legacy request over HTTP takes any field, as the old daemon did (DATA's own and the request's).
    const legacy = await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 63, TOKEN: 'x', NOT_A_LEGACY_FIELD: 1, DATA: { TITLE: 'z', OWN: { a: 1 } } });
    assert.deepEqual(legacy.body, { TYPE: 'RESULT', RESULT: [1] });
    assert.deepEqual((await tab.next((f) => f.TITLE === 'z')).OWN, { a: 1 });
    tab.close();
  });

  test('what is refused before any route (a bad URL, a request node cannot parse) is answered in the same error shape', async () => {
    const auth = `Authorization: Bearer ${s.apiToken}\r\n`;
    const cases: Array<[string, string, number, ErrorCode]> = [
      ['a URL that is not valid percent-encoding', `GET /api/v1/messages/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`, 400, 'HERALD_ERR_BAD_REQUEST'],
      ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'HERALD_ERR_BAD_REQUEST'],
      ['a path parameter past the router\'s 100 characters', `GET /api/v1/commands/${'a'.repeat(200)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${auth}\r\n`, 400, 'HERALD_ERR_BAD_REQUEST'],
      ['both Content-Length and Transfer-Encoding (request smuggling)', `POST /api/v1/send HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'HERALD_ERR_BAD_REQUEST'],
      ['an Expect other than 100-continue', `POST /api/v1/send HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\n{}`, 417, 'HERALD_ERR_EXPECTATION_FAILED'],
      ['headers past node\'s limit', `GET /api/v1/ping HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HERALD_ERR_HEADERS_TOO_LARGE'],
    ];
    for (const [what, bytes, status, code] of cases) {
      const r = await rawExchange(s.url, bytes);
      assert.equal(r.status, status, what);
      assert.equal(r.body.error.code, code, what);
      assert.equal(ErrorCodes[code].status, status, `${what}: the status is its code's (README's error table)`);
      assert.equal(typeof r.body.error.message, 'string', what);
      assert.deepEqual(Object.keys(r.body), ['error'], what);
      assert.match(r.head, /\r\ncontent-type: application\/json/i, what);
    }
    assert.equal((await s.api('GET', '/api/v1/ping')).status, 200, 'the server goes on');
  });

  test('tokens minted by the API admit a tab', async () => {
    const r = await s.api('POST', '/api/v1/tokens', { kind: 'user', id: 77, ttl: 60 });
    assert.equal(r.status, 200);
    assert.ok(r.body.expiresAt > Date.now());
    // expiresAt is when the token ends: its own exp, not the moment of minting plus the TTL
    // (up to 999 ms later, as the token's seconds count from the current second).
    const claims = JSON.parse(Buffer.from(r.body.token.split('.')[1], 'base64url').toString('utf8'));
    assert.equal(r.body.expiresAt, claims.exp * 1000);
    assert.equal(claims.exp - claims.iat, 60);
    const { TestTab } = await import('./helpers/ws-client.js');
    const tab = await TestTab.open(`${s.wsUrl}/ws/user`, { query: { token: r.body.token } });
    assert.equal((await tab.nextOfType('WELCOME')).ID, 77);
    tab.close();
  });

  test('the OpenAPI document lists the routes', async () => {
    const r = await fetch(`${s.url}/api/v1/openapi.json`);
    assert.equal(r.status, 200, 'no token needed');
    const doc = (await r.json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    for (const p of ['/api/v1/send', '/api/v1/online', '/api/v1/disconnect', '/api/v1/tokens']) assert.ok(doc.paths[p], p);
  });

  test('POST /legacy answers legacy requests as the TCP door does', async () => {
    assert.deepEqual((await s.api('POST', '/api/v1/legacy', { TYPE: 'PING' })).body, { TYPE: 'PONG' });
    const tab = await s.tab('admin', 61);
    await tab.nextOfType('WELCOME');
    assert.deepEqual((await s.api('POST', '/api/v1/legacy', { TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' })).body, { TYPE: 'RESULT', LIST: [61] });
    const sent = await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 61, DATA: { TITLE: 'Тест', TEXT: 'x' } });
    assert.deepEqual(sent.body, { TYPE: 'RESULT', RESULT: [1] });
    assert.equal((await tab.nextOfType('MESSAGE')).TITLE, 'Тест');
    const silent = await s.api('POST', '/api/v1/legacy', { TYPE: 'PING', SILENT: 1 });
    assert.equal(silent.status, 204);
    const silentSend = await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 61, DATA: { TITLE: 'тихо', TEXT: 'x' }, SILENT: 1 });
    assert.equal(silentSend.status, 204, 'a SILENT send that was made answers nothing');
    assert.equal((await tab.nextOfType('MESSAGE')).TITLE, 'тихо');
    // An HTTP caller reads an answer to every request: a 204 for these told it they were done.
    const refused = await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 'x', DATA: { TEXT: 'x' }, SILENT: 1 });
    assert.equal(refused.status, 200);
    assert.equal(refused.body.TYPE, 'ERROR', 'a SILENT request refused for its shape is answered with its error');
    assert.equal((await s.api('POST', '/api/v1/legacy', { TYPE: 'NOPE', SILENT: 1 })).body.ERROR, 'UNKNOWN MESSAGE TYPE');
    assert.equal((await s.api('POST', '/api/v1/legacy', { TYPE: 'NOPE' })).body.ERROR, 'UNKNOWN MESSAGE TYPE');
    tab.close();
  });

  test('a body nested deeper than 64 levels is refused with 400 before it is parsed, on every route; 64 levels is a body like any other; the server goes on', async () => {
    const refusal = { code: 'HERALD_ERR_BAD_REQUEST', message: 'the body is nested deeper than 64 levels (arrays and objects)' };
    /** Arrays nested `n` deep. */
    const nested = (n: number) => '['.repeat(n) + ']'.repeat(n);
    // 500,000 levels (1 MB): JSON.parse alone held the event loop for 400 ms before the notifier refused it.
    const send = await s.api('POST', '/api/v1/send', `{"to":{"aid":1},"message":{"TYPE":"MESSAGE","TEXT":${nested(500_000)}}}`);
    assert.equal(send.status, 400);
    assert.deepEqual(send.body.error, refusal);
    const batch = await s.api('POST', '/api/v1/send/batch', `{"messages":[{"to":{"aid":1},"message":{"TYPE":"MESSAGE","TEXT":${nested(62)}}}]}`);
    assert.equal(batch.status, 400, 'the body, the list, the item, the message and 62 arrays: 66 levels');
    assert.deepEqual(batch.body.error, refusal);
    const echo = await s.api('POST', '/api/v1/legacy', `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${nested(100_000)}}}`);
    assert.equal(echo.status, 400);
    assert.deepEqual(echo.body.error, refusal);
    // Sixty-four levels: the body, the message and 62 arrays (brackets in strings are not nesting).
    const atBound = await s.api('POST', '/api/v1/send', `{"to":{"aid":1},"message":{"TYPE":"MESSAGE","TEXT":"\\\"[[[[","A":${nested(62)}}}`);
    assert.equal(atBound.status, 200, JSON.stringify(atBound.body));
    const legacyAtBound = await s.api('POST', '/api/v1/legacy', `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${nested(62)}}}`);
    assert.deepEqual(legacyAtBound.body, JSON.parse(nested(62)));
    const token = await s.api('POST', '/api/v1/legacy', '{"TYPE":"PING","TOKEN":{"toString":0}}');
    assert.deepEqual(token.body, { TYPE: 'PONG' }, 'no legacy token is configured: a TOKEN of any kind is ignored');
    assert.equal((await s.api('GET', '/api/v1/ping')).status, 200);
  });

  test("a notification whose TYPE is one of Herald's own frames is refused, by every door, and reaches no tab", async () => {
    const tab = await s.tab('admin', 62);
    await tab.nextOfType('WELCOME');
    const expected = (type: string) => ({ code: 'HERALD_ERR_VALIDATION', message: `TYPE ${JSON.stringify(type)} is one of Herald's own frames to the browser; the tab would not show it as a notification` });
    for (const TYPE of ['RESET', 'WELCOME', 'PACE', 'PONG', 'close', 'ERROR']) {
      const stored = await s.api('POST', '/api/v1/send', { to: { aid: 62 }, message: { TYPE, TITLE: 'x' } });
      assert.equal(stored.status, 400, TYPE);
      assert.deepEqual(stored.body.error, expected(TYPE));
      const live = await s.api('POST', '/api/v1/send', { to: { aid: 62 }, message: { TYPE, TITLE: 'x' }, ttl: 0 });
      assert.deepEqual(live.body.error, expected(TYPE), `${TYPE} with ttl 0`);
    }
    // All or nothing: the batch's good first item is not sent either.
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: [
      { to: { aid: 62 }, message: { TYPE: 'MESSAGE', TITLE: 'first' } },
      { to: { all: 'admins' }, message: { TYPE: 'RESET', SEQ: 1, EPOCH: 'e' } },
    ] });
    assert.equal(batch.status, 400);
    assert.deepEqual(batch.body.error, expected('RESET'));
    const legacy = await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 62, DATA: { TYPE: 'WELCOME', HEARTBEAT: 1 } });
    assert.equal(legacy.body.TYPE, 'ERROR');
    assert.match(String(legacy.body.ERROR), /TYPE "WELCOME" is one of Herald's own frames/);
    // Other TYPEs (and the same words in other cases) are the backend's own and delivered; a PING is the old panel's probe.
    assert.deepEqual((await s.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 62, DATA: { TYPE: 'PING' } })).body, { TYPE: 'RESULT', RESULT: [1] });
    assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 62 }, message: { TYPE: 'Reset', TITLE: 'last' } })).status, 200);
    assert.equal((await tab.nextOfType('Reset')).TITLE, 'last');
    assert.deepEqual(tab.frames.filter((f) => !(f?.TYPE === 'WELCOME' || f?.TYPE === 'Reset' || f?.TYPE === 'PING')), [], 'nothing refused reached the tab');
    assert.equal(tab.frames.filter((f) => f?.TYPE === 'WELCOME').length, 1);
    tab.close();
  });

  test('/healthz needs no token', async () => {
    const r = await fetch(`${s.url}/healthz`);
    assert.equal(r.status, 200);
  });
});

describe('a /send/batch the store refuses', () => {
  /** A real memory store whose writes can be made to fail, as a full disk or an I/O error does; it counts the writes. */
  class RefusingStore extends MemoryStore {
    refuse = false;
    writes = 0;
    override async append(input: AppendInput, now: number) {
      this.writes++;
      if (this.refuse) throw new HeraldError('HERALD_ERR_UNAVAILABLE', 'store write failed: disk I/O error');
      return super.append(input, now);
    }
    override async appendMany(inputs: readonly AppendInput[], now: number) {
      this.writes++;
      if (this.refuse) throw new HeraldError('HERALD_ERR_UNAVAILABLE', 'store write failed: disk I/O error');
      return super.appendMany(inputs, now);
    }
  }

  test('sends nothing, broadcasts included, and can be sent again as it was: one write for the whole batch', async () => {
    const store = new RefusingStore({ maxPerStream: 100 });
    const s = await startHerald({ store: 'memory' }, { store });
    try {
      const tab = await s.tab('admin', 5);
      await tab.nextOfType('WELCOME');
      const messages = [
        { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'to everyone' } },
        { to: { aid: 5 }, message: { TYPE: 'MESSAGE', TEXT: 'to five' } },
        { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'to everyone again' } },
      ];
      store.refuse = true;
      const refused = await s.api('POST', '/api/v1/send/batch', { messages });
      assert.equal(refused.status, 503);
      assert.equal(refused.body.error.code, 'HERALD_ERR_UNAVAILABLE');
      store.refuse = false;
      store.writes = 0;
      const sent = await s.api('POST', '/api/v1/send/batch', { messages });
      assert.equal(sent.status, 200);
      // One write, broadcasts and all: the store keeps all of a batch or none of it.
      assert.equal(store.writes, 1);
      await tab.next((f) => f.TEXT === 'to everyone again');
      // Each once, in the batch's order: the refused batch left nothing behind.
      assert.deepEqual(tab.notifications().map((f) => f.TEXT), ['to everyone', 'to five', 'to everyone again']);
      assert.deepEqual(tab.notifications().map((f) => [f.STREAM ?? 'own', f.SEQ]), [['*', 1], ['own', 1], ['*', 2]]);
      tab.close();
    } finally {
      await s.close();
    }
  });
});

describe('HTTP API, the old daemon\'s WebSocket ports', () => {
  test('answer what they refuse (a plain request, one node cannot parse, an unmet Expect) in Herald\'s error shape, with the code of its status', async () => {
    const [adminPort, userPort] = [await restartablePort(), await restartablePort()];
    const s = await startHerald({ adminPort, userPort });
    try {
      for (const port of [adminPort, userPort]) {
        const url = `http://127.0.0.1:${port}`;
        const cases: Array<[string, string, number, ErrorCode]> = [
          ['a request line that is not HTTP', 'GARBAGE\r\n\r\n', 400, 'HERALD_ERR_BAD_REQUEST'],
          ['headers past node\'s limit', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HERALD_ERR_HEADERS_TOO_LARGE'],
          ['an Expect other than 100-continue', 'GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n', 417, 'HERALD_ERR_EXPECTATION_FAILED'],
          ['a request that is not an upgrade, without a credential', 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 401, 'HERALD_ERR_UNAUTHORIZED'],
        ];
        for (const [what, bytes, status, code] of cases) {
          const r = await rawExchange(url, bytes);
          assert.equal(r.status, status, `${port}: ${what}`);
          assert.equal(r.body.error.code, code, `${port}: ${what}`);
          assert.equal(ErrorCodes[code].status, status, `${port}: ${what}: the status is its code's (README's error table)`);
          assert.match(r.head, /\r\ncontent-type: application\/json/i, `${port}: ${what}`);
        }
        // The browser library's probe (a plain POST to the endpoint it failed to open, here any path): the status
        // its handshake got. Always 426 before, which the library reads as "retry": a refused tab retried for ever.
        const kind = port === adminPort ? 'admin' : 'user';
        const token = await s.token(kind, 5);
        const probe = async (query: string, origin?: string) => {
          const r = await fetch(`${url}/old/path${query}`, { method: 'POST', headers: origin ? { origin } : {} });
          await r.body?.cancel();
          return r;
        };
        const admitted = await probe(`?token=${token}`, s.url);
        assert.equal(admitted.status, 426, 'a credential that would be admitted is told to upgrade');
        assert.equal(admitted.headers.get('upgrade'), 'websocket');
        assert.equal(admitted.headers.get('access-control-allow-origin'), s.url, 'an allowed page may read the answer');
        assert.equal((await probe('?token=forged', s.url)).status, 401);
        assert.equal((await probe(`?token=${await s.token(kind === 'admin' ? 'user' : 'admin', 5)}`)).status, 401, 'the other endpoint\'s token');
        const foreign = await probe(`?token=${token}`, 'https://evil.example');
        assert.equal(foreign.status, 403);
        assert.equal(foreign.headers.get('access-control-allow-origin'), null);
        const put = await fetch(url, { method: 'PUT' });
        assert.equal(put.status, 426, 'no other method is a probe');
        await put.body?.cancel();
      }
    } finally {
      await s.close();
    }
  });
});

describe('HTTP API, requestTimeoutMs', () => {
  test('a request whose body trickles is answered 408 and closed; a tab connected longer than the limit stays', async () => {
    const s = await startHerald({ requestTimeoutMs: 500 });
    try {
      const tab = await s.tab('admin', 3);
      await tab.nextOfType('WELCOME');
      const socket = connect(Number(new URL(s.url).port), '127.0.0.1');
      await once(socket, 'connect');
      const started = performance.now();
      let answer = '';
      socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
      socket.on('error', () => undefined);
      // Whole headers, and one byte of the hundred the body promises: a slow or hostile client.
      socket.write(`POST /api/v1/send HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${s.apiToken}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
      await within(once(socket, 'close'), 10_000, 'the server to close the trickling request');
      const ms = performance.now() - started;
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error.code, 'HERALD_ERR_REQUEST_TIMEOUT', 'the error shape, with the code of its status');
      assert.ok(ms >= 450, `closed after ${Math.round(ms)} ms, before the limit`);
      // The tab has now been open longer than the limit: once upgraded it is no HTTP request.
      const sent = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: { TYPE: 'MESSAGE', TEXT: 'still here' } });
      assert.equal(sent.body.delivered, 1);
      assert.equal((await tab.nextOfType('MESSAGE')).TEXT, 'still here');
      tab.close();
    } finally {
      await s.close();
    }
  });

  test('an answer given before the body arrived (401, 404) closes the connection: no 408 follows it, read as the next answer', async () => {
    const s = await startHerald({ requestTimeoutMs: 500 });
    try {
      const port = Number(new URL(s.url).port);
      for (const [head, status] of [
        ['POST /api/v1/send HTTP/1.1', 401],
        ['POST /api/v1/nowhere HTTP/1.1', 404],
      ] as const) {
        const socket = connect(port, '127.0.0.1');
        await once(socket, 'connect');
        let answer = '';
        socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
        socket.on('error', () => undefined);
        // No credential (or no route): answered at once, while 99 of the body's 100 bytes never come.
        socket.write(`${head}\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`);
        await within(once(socket, 'close'), 10_000, 'the server to close the connection');
        const answers = answer.match(/HTTP\/1\.1 \d{3}/g) ?? [];
        assert.deepEqual(answers, [`HTTP/1.1 ${status}`], `one answer, then the close: ${JSON.stringify(answer)}`);
        assert.match(answer, /\r\nconnection: close\r\n/i);
      }
      // A request whose body was read, and one without a body, keep their connection.
      const auth = { authorization: `Bearer ${s.apiToken}` };
      for (const init of [
        { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ to: { aid: 5 }, message: 'hi' }) },
        { method: 'GET', headers: auth },
      ]) {
        const kept = await fetch(`${s.url}/api/v1/${init.method === 'GET' ? 'ping' : 'send'}`, init);
        assert.equal(kept.status, 200);
        assert.equal(kept.headers.get('connection'), 'keep-alive', init.method);
        await kept.body?.cancel();
      }
    } finally {
      await s.close();
    }
  });
});

describe('HTTP API, a 4xx raised by a plugin or the framework', () => {
  test('gets the code of its status where Herald has one, else 400 HERALD_ERR_BAD_REQUEST: the status is always its code\'s', async () => {
    // Fastify's own 4xx are each answered by name (413, 415, a bad URL); this is the rest, as a
    // plugin or a dependency throws them: an Error with a statusCode.
    const app = Fastify();
    installErrorHandling(app);
    app.get('/raise/:status', async (req) => {
      throw Object.assign(new Error('raised by a plugin'), { statusCode: Number((req.params as { status: string }).status) });
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const { port } = app.server.address() as { port: number };
      const cases: Array<[number, number, ErrorCode]> = [
        [404, 404, 'HERALD_ERR_NOT_FOUND'],
        [408, 408, 'HERALD_ERR_REQUEST_TIMEOUT'],
        [426, 426, 'HERALD_ERR_UPGRADE_REQUIRED'],
        [429, 429, 'HERALD_ERR_RATE_LIMITED'],
        [418, 400, 'HERALD_ERR_BAD_REQUEST'],
        [422, 400, 'HERALD_ERR_BAD_REQUEST'],
      ];
      for (const [raised, status, code] of cases) {
        const r = await fetch(`http://127.0.0.1:${port}/raise/${raised}`);
        const body = (await r.json()) as { error: { code: string; message: string } };
        assert.equal(r.status, status, `raised ${raised}`);
        assert.deepEqual(body, { error: { code, message: 'raised by a plugin' } }, `raised ${raised}`);
        assert.equal(ErrorCodes[code].status, r.status, `raised ${raised}: the status is its code's (README's error table)`);
      }
    } finally {
      await app.close();
    }
  });
});
