/**
 * The OpenAPI document served at /api/v1/openapi.json against what a real
 * Herald answers: every route declares a success with the shape of its body,
 * every status real requests get is declared for their route, the real
 * answers fit the declared schemas (with every field declared), and the
 * document is OpenAPI 3.0 (no numeric exclusiveMinimum, no `type: null`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Ajv, type ValidateFunction } from 'ajv';
import { startHerald, type TestServer } from './helpers/server.js';

type Schema = Record<string, unknown>;
interface Operation { parameters?: Array<{ name: string; in: string; schema?: Schema }>; responses: Record<string, { description: string; content?: Record<string, { schema?: Schema }> }> }
type Document = { openapi: string; paths: Record<string, Record<string, Operation>> };

/** One request and the operation of the document it is for (`POST /api/v1/send`). */
interface Call { op: string; path: string; body?: unknown; raw?: string; noToken?: true }
interface Answer { call: Call; status: number; body: unknown }

/** A copy of an answer schema in which an object lists every field it may have: a field the document does not name fails. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Schema).map(([p, s]) => [p, closed(s)])) : closed(v);
  if ('properties' in out && !('additionalProperties' in out)) out.additionalProperties = false;
  return out;
}

describe('openapi.json against the answers of a real server', () => {
  let s: TestServer;
  let doc: Document;
  const answers: Answer[] = [];

  async function ask(call: Call): Promise<Answer> {
    const headers: Record<string, string> = call.noToken ? {} : { authorization: `Bearer ${s.apiToken}` };
    const body = call.raw ?? (call.body === undefined ? undefined : JSON.stringify(call.body));
    if (body !== undefined) headers['content-type'] = 'application/json';
    const method = call.op.split(' ')[0]!;
    const res = await fetch(`${s.url}${call.path}`, { method, headers, ...(body === undefined ? {} : { body }) });
    const text = await res.text();
    const answer = { call, status: res.status, body: text === '' ? undefined : JSON.parse(text) as unknown };
    answers.push(answer);
    return answer;
  }

  function operation(op: string): Operation {
    const [method, path] = op.split(' ') as [string, string];
    const found = doc.paths[path]?.[method.toLowerCase()];
    assert.ok(found, `openapi.json has no ${op}`);
    return found;
  }

  before(async () => {
    s = await startHerald({ maxBodyBytes: 16384, commandsAllow: ['echo', 'sleep'], commandsKillGraceMs: 500 });
    const served = await fetch(`${s.url}/api/v1/openapi.json`);
    assert.equal(served.status, 200);
    doc = await served.json() as Document;

    const tab = await s.tab('admin', 7);
    await tab.nextOfType('WELCOME');
    const big = 'x'.repeat(20000);

    await ask({ op: 'GET /api/v1/ping', path: '/api/v1/ping' });
    await ask({ op: 'GET /api/v1/ping', path: '/api/v1/ping', noToken: true });
    await ask({ op: 'GET /api/v1/status', path: '/api/v1/status' });
    await ask({ op: 'GET /api/v1/online', path: '/api/v1/online' });
    await ask({ op: 'GET /api/v1/online', path: '/api/v1/online?kind=root' });
    await ask({ op: 'GET /api/v1/online/{kind}/{id}', path: '/api/v1/online/admin/7' });
    await ask({ op: 'GET /api/v1/online/{kind}/{id}', path: '/api/v1/online/admin/0' });

    const SEND = 'POST /api/v1/send';
    const sent = await ask({ op: SEND, path: '/api/v1/send', body: { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TEXT: 'hi' }, ttl: 60, idempotencyKey: 'k1' } });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TEXT: 'hi' }, ttl: 60, idempotencyKey: 'k1' } });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { aids: [7, 7, 8] }, message: 'live only', ttl: 0 } });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { all: 'admins' }, message: { TYPE: 'MESSAGE' }, ttl: 60 } });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { all: 'users' }, message: 'x', ttl: 0 } });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { aid: 7 }, message: 5 } });
    await ask({ op: SEND, path: '/api/v1/send', raw: '{"to":' });
    await ask({ op: SEND, path: '/api/v1/send', body: { to: { aid: 7 }, message: big } });
    await ask({ op: SEND, path: '/api/v1/send', noToken: true, body: { to: { aid: 7 }, message: 'x' } });

    const BATCH = 'POST /api/v1/send/batch';
    const items = [{ to: { aid: 7 }, message: 'a', ttl: 30 }, { to: { uids: [1, 2] }, message: { TYPE: 'M' } }, { to: { all: 'admins' }, message: 'b', ttl: 0 }];
    await ask({ op: BATCH, path: '/api/v1/send/batch', body: { messages: items } });
    await ask({ op: BATCH, path: '/api/v1/send/batch', body: { messages: items, answer: 'summary' } });
    await ask({ op: BATCH, path: '/api/v1/send/batch', body: { messages: [] } });
    await ask({ op: BATCH, path: '/api/v1/send/batch', body: { messages: [{ to: { aid: 7 }, message: big }] } });

    await ask({ op: 'POST /api/v1/disconnect', path: '/api/v1/disconnect', body: { to: { aid: 99 }, reason: 'bye' } });
    await ask({ op: 'POST /api/v1/disconnect', path: '/api/v1/disconnect', body: { to: {} } });

    const messageId = (sent.body as { results: Array<{ messageId: string }> }).results[0]!.messageId;
    const MESSAGE = 'GET /api/v1/messages/{id}';
    await ask({ op: MESSAGE, path: `/api/v1/messages/${encodeURIComponent(messageId)}` });
    await ask({ op: MESSAGE, path: '/api/v1/messages/nope' });
    await ask({ op: MESSAGE, path: `/api/v1/messages/${'m'.repeat(101)}` });
    await ask({ op: MESSAGE, path: '/api/v1/messages/%E0%A4%A' });

    await ask({ op: 'POST /api/v1/tokens', path: '/api/v1/tokens', body: { kind: 'admin', id: 7, ttl: 60 } });
    await ask({ op: 'POST /api/v1/tokens', path: '/api/v1/tokens', body: { kind: 'admin', id: true } });

    const LEGACY = 'POST /api/v1/legacy';
    await ask({ op: LEGACY, path: '/api/v1/legacy', body: { TYPE: 'PING' } });
    await ask({ op: LEGACY, path: '/api/v1/legacy', body: { TYPE: 'PING', SILENT: 1 } });
    await ask({ op: LEGACY, path: '/api/v1/legacy', body: 5 });
    await ask({ op: LEGACY, path: '/api/v1/legacy', raw: '{' });

    const START = 'POST /api/v1/commands';
    const echo = await ask({ op: START, path: '/api/v1/commands', body: { aid: 7, program: 'echo', args: ['hello'] } });
    const sleep = await ask({ op: START, path: '/api/v1/commands', body: { aid: 7, program: 'sleep', args: ['30'] } });
    await ask({ op: START, path: '/api/v1/commands', body: { aid: 7, program: 'rm', args: ['-rf', '/nothing'] } });
    await ask({ op: START, path: '/api/v1/commands', body: { aid: 0, program: 'echo' } });
    const echoId = (echo.body as { id: string }).id;
    const sleepId = (sleep.body as { id: string }).id;
    const GET = 'GET /api/v1/commands/{id}';
    await ask({ op: GET, path: `/api/v1/commands/${echoId}?wait=20` });
    await ask({ op: GET, path: `/api/v1/commands/${echoId}?since=2` });
    await ask({ op: GET, path: `/api/v1/commands/${echoId}?since=-1` });
    await ask({ op: GET, path: '/api/v1/commands/nope' });
    await ask({ op: 'GET /api/v1/commands', path: '/api/v1/commands?limit=5' });
    await ask({ op: 'GET /api/v1/commands', path: '/api/v1/commands?limit=0' });
    await ask({ op: 'GET /api/v1/commands/audit', path: '/api/v1/commands/audit?limit=3' });
    await ask({ op: 'GET /api/v1/commands/audit', path: '/api/v1/commands/audit?limit=abc' });
    const CANCEL = 'POST /api/v1/commands/{id}/cancel';
    await ask({ op: CANCEL, path: `/api/v1/commands/${sleepId}/cancel` });
    await ask({ op: CANCEL, path: `/api/v1/commands/${echoId}/cancel` });
    await ask({ op: CANCEL, path: '/api/v1/commands/nope/cancel' });
  });
  after(() => s?.close());

  test('the requests got the answers they were meant to: a success and errors of every kind', () => {
    const statuses = new Set(answers.map((a) => a.status));
    for (const status of [200, 201, 204, 400, 401, 403, 404, 409, 413]) assert.ok(statuses.has(status), `no request got ${status}: ${[...statuses].join(', ')}`);
  });

  test('it is OpenAPI 3.0: no numeric exclusiveMinimum or exclusiveMaximum, no type null', () => {
    assert.match(doc.openapi, /^3\.0\.\d+$/);
    const wrong: string[] = [];
    const walk = (v: unknown, at: string): void => {
      if (typeof v !== 'object' || v === null) return;
      const o = v as Schema;
      for (const k of ['exclusiveMinimum', 'exclusiveMaximum']) if (k in o && typeof o[k] !== 'boolean') wrong.push(`${at}/${k}: ${JSON.stringify(o[k])}`);
      if (o.type === 'null' || Array.isArray(o.type)) wrong.push(`${at}/type: ${JSON.stringify(o.type)}`);
      for (const [k, c] of Object.entries(o)) walk(c, `${at}/${k}`);
    };
    walk(doc, '');
    assert.deepEqual(wrong, []);
    // A command's timeout must be above 0: said as 3.0 says it.
    const timeout = (operation('POST /api/v1/commands') as unknown as { requestBody: { content: Record<string, { schema: { properties: { timeout: Schema } } }> } })
      .requestBody.content['application/json']!.schema.properties.timeout;
    assert.deepEqual([timeout.minimum, timeout.exclusiveMinimum], [0, true]);
  });

  test('every route declares a 2xx answer with the schema of its body', () => {
    const without: string[] = [];
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const success = Object.entries(op.responses).filter(([status]) => status.startsWith('2'));
        if (!success.some(([, r]) => r.content?.['application/json']?.schema !== undefined)) without.push(`${method.toUpperCase()} ${path}`);
        for (const [status, r] of Object.entries(op.responses)) assert.notEqual(r.description, 'Default Response', `${method} ${path} ${status}`);
      }
    }
    assert.deepEqual(without, []);
  });

  test('every status a request got is declared for its route', () => {
    const undeclared = answers.filter((a) => !(String(a.status) in operation(a.call.op).responses)).map((a) => `${a.call.op} ${a.status} (${a.call.path})`);
    assert.deepEqual(undeclared, []);
  });

  test('a route declares the errors it gives, not every route\'s: a command lookup no 403, 409, 422, 429 or 501', () => {
    assert.deepEqual(Object.keys(operation('GET /api/v1/commands/{id}').responses), ['200', '400', '401', '404', '500', '503']);
    assert.deepEqual(Object.keys(operation('POST /api/v1/commands/{id}/cancel').responses), ['200', '400', '401', '404', '409', '413', '500', '503']);
    assert.deepEqual(Object.keys(operation('GET /api/v1/ping').responses), ['200', '400', '401', '500', '503']);
  });

  test('every real answer fits the schema declared for its route and status, each of its fields declared', () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validators = new Map<string, ValidateFunction>();
    const misfits: string[] = [];
    let checked = 0;
    for (const a of answers) {
      const declared = operation(a.call.op).responses[String(a.status)];
      const schema = declared?.content?.['application/json']?.schema;
      if (schema === undefined) {
        assert.equal(a.body, undefined, `${a.call.op} ${a.status} has a body but declares none`);
        continue;
      }
      const key = `${a.call.op} ${a.status}`;
      let validate = validators.get(key);
      if (!validate) validators.set(key, validate = ajv.compile(closed(schema) as Schema));
      checked++;
      if (!validate(a.body)) misfits.push(`${key} (${a.call.path}): ${ajv.errorsText(validate.errors)} in ${JSON.stringify(a.body).slice(0, 300)}`);
    }
    assert.deepEqual(misfits, []);
    const sends = answers.filter((a) => a.call.op.startsWith('POST /api/v1/send') && a.status === 200).length;
    assert.ok(sends >= 7 && checked > 40, `checked ${checked} answers, ${sends} successful sends`);
  });
});
