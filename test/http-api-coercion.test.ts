/**
 * What Fastify's validator converts, refused where the conversion changes the
 * value's meaning (schemas.ts, finiteNumbers; http-api.ts, convertedField):
 * the strings "Infinity", "-Infinity" and "1e400" became ±Infinity and got
 * past minimum and maximum (admin Infinity, a token's ttl of Infinity: 500); a
 * one-item array of null or a boolean became 0 or 1 (`"ttl":[null]`: stored
 * nothing). And two answers in Herald's error shape that were not: a body with
 * a `__proto__` key (said "not valid JSON") and an HTTP/1.1 request without a
 * Host header (node's bare 400).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

const NOT_FINITE = ['Infinity', '-Infinity', '1e400'];

describe('numbers a request carries', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  function assertRefused(r: { status: number; body: any }, where: string, what: string): void {
    assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'HERALD_ERR_VALIDATION', what);
    assert.match(r.body.error.message, new RegExp(`^${where} must be a finite number$`), what);
  }

  for (const text of NOT_FINITE) {
    test(`"${text}" is refused wherever a number is taken, by name`, async () => {
      assertRefused(await s.api('GET', `/api/v1/online/admin/${text}`), 'params/id', 'online');
      assertRefused(await s.api('POST', '/api/v1/send', { to: { aid: text }, message: { TYPE: 'X' } }), 'body/to/aid', 'send aid');
      assertRefused(await s.api('POST', '/api/v1/send', { to: { uids: [1, text] }, message: { TYPE: 'X' } }), 'body/to/uids/1', 'send uids');
      assertRefused(await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'X' }, ttl: text }), 'body/ttl', 'send ttl');
      assertRefused(await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { uid: text }, message: { TYPE: 'X' } }] }), 'body/messages/0/to/uid', 'batch');
      assertRefused(await s.api('POST', '/api/v1/disconnect', { to: { aid: text } }), 'body/to/aid', 'disconnect');
      assertRefused(await s.api('POST', '/api/v1/tokens', { kind: 'admin', id: text }), 'body/id', 'token id');
      assertRefused(await s.api('POST', '/api/v1/tokens', { kind: 'admin', id: 1, ttl: text }), 'body/ttl', 'token ttl');
      assertRefused(await s.api('GET', `/api/v1/commands/audit?limit=${text}`), 'querystring/limit', 'audit limit');
      assertRefused(await s.api('GET', `/api/v1/commands?limit=${text}`), 'querystring/limit', 'list limit');
      assertRefused(await s.api('GET', `/api/v1/commands/nosuch?wait=${text}`), 'querystring/wait', 'command wait');
      assertRefused(await s.api('POST', '/api/v1/commands', { aid: text, program: 'ping', args: ['-c', '1', '127.0.0.1'] }), 'body/aid', 'command aid');
    });
  }

  test('nothing was stored or sent for them: the stream of admin Infinity does not exist', async () => {
    const status = await s.api('GET', '/api/v1/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.storeCounts.streams, 0, JSON.stringify(status.body.storeCounts));
  });

  test('numeric strings that are finite still convert, as a Perl backend sends them', async () => {
    const r = await s.api('POST', '/api/v1/send', { to: { aid: '7' }, message: { TYPE: 'X' }, ttl: '60' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const online = await s.api('GET', '/api/v1/online/admin/7');
    assert.equal(online.status, 200);
    assert.equal(online.body.id, 7);
  });

  test('every number in a request schema of the API is declared finite (x-finite), as openapi.json shows them', async () => {
    const doc = (await s.api('GET', '/api/v1/openapi.json')).body as { paths: Record<string, Record<string, any>> };
    const missing: string[] = [];
    let numbers = 0;
    const walk = (schema: any, at: string): void => {
      if (schema === null || typeof schema !== 'object') return;
      if (schema.type === 'integer' || schema.type === 'number') {
        numbers++;
        if (schema['x-finite'] !== true) missing.push(at);
      }
      for (const [k, v] of Object.entries(schema)) if (typeof v === 'object') walk(v, `${at}/${k}`);
    };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        for (const p of op.parameters ?? []) walk(p.schema, `${method} ${path} ${p.in}/${p.name}`);
        walk(op.requestBody, `${method} ${path} body`);
      }
    }
    assert.ok(numbers >= 10, `only ${numbers} numbers found in the request schemas: is the walk right?`);
    assert.deepEqual(missing, []);
  });
});

describe('one-item arrays of null or a boolean in a send\'s own fields', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  for (const [body, where, type] of [
    [{ to: { aid: 3 }, message: { TYPE: 'M' }, ttl: [null] }, 'body/ttl/0', 'number, not null'],
    [{ to: { aid: 3 }, message: { TYPE: 'M' }, ttl: [true] }, 'body/ttl/0', 'number, not true'],
    [{ to: { aid: 3 }, message: { TYPE: 'M' }, idempotencyKey: [false] }, 'body/idempotencyKey/0', 'string, not false'],
  ] as const) {
    test(`${JSON.stringify(body)} is refused, naming ${where}`, async () => {
      const r = await s.api('POST', '/api/v1/send', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.message, `${where} must be ${type}`);
      const batch = await s.api('POST', '/api/v1/send/batch', { messages: [body] });
      assert.equal(batch.status, 400, JSON.stringify(batch.body));
      assert.equal(batch.body.error.message, `body/messages/0/${where.slice('body/'.length)} must be ${type}`);
    });
  }

  test('an id list holding a one-item array ("aids":[[true]], admin 1 once) is refused, on /send and in a batch', async () => {
    for (const to of [{ aids: [3, [true]] }, { uids: [[null]] }, { aids: [[7]] }]) {
      const key = Object.keys(to)[0]!;
      const i = key === 'aids' && (to as { aids: unknown[] }).aids.length === 2 ? 1 : 0;
      const r = await s.api('POST', '/api/v1/send', { to, message: { TYPE: 'M' } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.message, `body/to/${key}/${i} must be integer, not an array`);
      const batch = await s.api('POST', '/api/v1/send/batch', { messages: [{ to, message: { TYPE: 'M' } }] });
      assert.equal(batch.status, 400, JSON.stringify(batch.body));
      assert.equal(batch.body.error.message, `body/messages/0/to/${key}/${i} must be integer, not an array`);
    }
  });

  test('{"reason":[null]} on /disconnect is refused', async () => {
    const r = await s.api('POST', '/api/v1/disconnect', { to: { aid: 3 }, reason: [null] });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.message, 'body/reason/0 must be string, not null');
  });

  test('a one-item array of a number still converts ("ttl":[60])', async () => {
    const r = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: { TYPE: 'M' }, ttl: [60] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.queued, true);
  });
});

describe('a token\'s own fields: null, booleans and one-item arrays of them are refused, not converted', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  // `"id":true` was a token for admin 1, `"ttl":true` a token of one second.
  for (const [body, message] of [
    [{ kind: 'admin', id: true }, 'body/id must be integer, not true'],
    [{ kind: 'admin', id: false }, 'body/id must be integer, not false'],
    [{ kind: 'admin', id: null }, 'body/id must be integer, not null'],
    [{ kind: 'admin', id: [true] }, 'body/id/0 must be integer, not true'],
    [{ kind: 'user', id: 1, ttl: true }, 'body/ttl must be number, not true'],
    [{ kind: 'user', id: 1, ttl: null }, 'body/ttl must be number, not null'],
    [{ kind: 'user', id: 1, ttl: [false] }, 'body/ttl/0 must be number, not false'],
  ] as const) {
    test(`POST /api/v1/tokens ${JSON.stringify(body)}: 400 "${message}"`, async () => {
      const r = await s.api('POST', '/api/v1/tokens', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual(r.body.error, { code: 'HERALD_ERR_VALIDATION', message });
    });
  }

  test('the demo\'s /demo/token refuses "id":true and [null] too', async () => {
    for (const [id, message] of [[true, 'body/id must be integer, not true'], [[null], 'body/id/0 must be integer, not null']] as const) {
      const r = await fetch(`${s.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'admin', id }) });
      assert.equal(r.status, 400);
      assert.deepEqual(((await r.json()) as { error: unknown }).error, { code: 'HERALD_ERR_VALIDATION', message });
    }
  });

  test('the demo\'s /demo/send refuses "id":true, [null] and "0x10" (it was admin 16) as its API does', async () => {
    for (const id of [true, [null], '0x10', '07']) {
      const r = await fetch(`${s.url}/demo/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'admin', id, title: 't', text: 'x' }) });
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(r.status, 400, `${JSON.stringify(id)}: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'HERALD_ERR_VALIDATION');
      assert.match(body.error.message, /^body\/id/);
    }
  });

  test('what keeps its meaning still converts: "id":"7" and "ttl":"60" give a token for admin 7 of a minute', async () => {
    const r = await s.api('POST', '/api/v1/tokens', { kind: 'admin', id: '7', ttl: '60' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const claims = JSON.parse(Buffer.from(String(r.body.token).split('.')[1]!, 'base64url').toString()) as { sub: string; exp: number; iat: number };
    assert.equal(claims.sub, 'admin:7');
    assert.equal(claims.exp - claims.iat, 60);
  });
});

describe('a number as a message is refused, not sent as its text', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory', commandsAllow: ['echo'] });
  });
  after(() => s.close());

  test('POST /send {"message":5}: 400, and the tab gets nothing', async () => {
    const tab = await s.tab('admin', 5);
    await tab.nextOfType('WELCOME');
    const r = await s.api('POST', '/api/v1/send', { to: { aid: 5 }, message: 5 });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.deepEqual(r.body.error, { code: 'HERALD_ERR_VALIDATION', message: 'body/message must be a notification object (with a TYPE) or a string, not number' });
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 5 }, message: 'ok' }, { to: { aid: 5 }, message: 6 }] });
    assert.equal(batch.status, 400, JSON.stringify(batch.body));
    assert.equal(batch.body.error.message, 'body/messages/1/message must be a notification object (with a TYPE) or a string, not number');
    // What reaches the tab next is the string sent after: neither "5" nor the batch's.
    assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 5 }, message: 'after' })).status, 200);
    assert.equal(await tab.next((f) => typeof f === 'string'), 'after');
  });

  test('a notification\'s TYPE that is not a string is refused, on /send, in a batch and in a command\'s notes: the tab got "true", "5" or "X"', async () => {
    const tab = await s.tab('admin', 6);
    await tab.nextOfType('WELCOME');
    for (const type of [true, 5, ['X'], null]) {
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: { TYPE: type, FLAG: true } });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      const shown = type === null ? 'null' : Array.isArray(type) ? 'an array' : typeof type === 'boolean' ? 'true' : 'number';
      assert.deepEqual(r.body.error, { code: 'HERALD_ERR_VALIDATION', message: `body/message/TYPE must be string, not ${shown}` });
    }
    const batch = await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 6 }, message: { TYPE: 'OK' } }, { to: { aid: 6 }, message: { TYPE: false } }] });
    assert.equal(batch.status, 400, JSON.stringify(batch.body));
    assert.equal(batch.body.error.message, 'body/messages/1/message/TYPE must be string, not false');
    const command = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'echo', args: ['x'], success: { TYPE: 7, TEXT: 'done' } });
    assert.equal(command.status, 400, JSON.stringify(command.body));
    assert.equal(command.body.error.message, 'body/success/TYPE must be string, not number');
    // Nothing reached the tab: the next thing it gets is the send after, with its other fields as sent.
    assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: { TYPE: 'AFTER', FLAG: true, N: null } })).status, 200);
    const next = await tab.next((f) => typeof f === 'object' && f !== null && f.TYPE !== 'PING' && f.TYPE !== 'PACE');
    assert.deepEqual([next.TYPE, next.FLAG, next.N], ['AFTER', true, null]);
  });

  test('POST /commands with a program that is not a string: 400, and nothing runs ("program":true ran /usr/bin/true)', async () => {
    for (const [program, shown] of [[true, 'true'], [['echo'], 'an array'], [null, 'null'], [5, 'number']] as const) {
      const r = await s.api('POST', '/api/v1/commands', { aid: 1, program, args: ['x'] });
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.message, `body/program must be string, not ${shown}`);
    }
  });

  test('POST /commands {"success":5}: 400, as on /send', async () => {
    const r = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'echo', args: ['x'], success: 5 });
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.equal(r.body.error.message, 'body/success must be a notification object (with a TYPE) or a string, not number');
  });
});

describe('answers in Herald\'s error shape', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory' });
  });
  after(() => s.close());

  test('a body with a __proto__ key: 400 naming the key, not "not valid JSON"', async () => {
    for (const body of ['{"to":{"aid":1},"message":{"TYPE":"X","__proto__":{"x":1}}}', '{"constructor":{"prototype":{"x":1}},"to":{"aid":1},"message":{"TYPE":"X"}}']) {
      const r = await s.api('POST', '/api/v1/send', body);
      assert.equal(r.status, 400, body);
      assert.equal(r.body.error.code, 'HERALD_ERR_BAD_REQUEST');
      assert.match(r.body.error.message, /"__proto__" key or a "constructor" key with a "prototype"/);
    }
    const invalid = await s.api('POST', '/api/v1/send', '{"to":');
    assert.equal(invalid.status, 400);
    assert.match(invalid.body.error.message, /not valid JSON/);
  });

  /** One raw HTTP/1.x request; resolves with what came back, once the server closed or 2 s passed. */
  function rawExchange(request: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1');
      let answer = '';
      socket.on('data', (d: Buffer) => {
        answer += d.toString('latin1');
        if (/\r\n\r\n[\s\S]*\}$/.test(answer)) socket.end();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
      setTimeout(() => socket.destroy(), 2000).unref();
      socket.write(request);
    });
  }

  test('an HTTP/1.1 request without a Host header: 400 HERALD_ERR_BAD_REQUEST with a body that says so', async () => {
    const answer = await rawExchange(`GET /api/v1/status HTTP/1.1\r\nAuthorization: Bearer ${s.apiToken}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 400 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
    assert.deepEqual(body.error, { code: 'HERALD_ERR_BAD_REQUEST', message: 'an HTTP/1.1 request must carry a Host header' });
    // HTTP/1.0 has no Host header to require.
    const old = await rawExchange(`GET /api/v1/status HTTP/1.0\r\nAuthorization: Bearer ${s.apiToken}\r\n\r\n`);
    assert.match(old, /^HTTP\/1\.1 200 /);
  });
});
