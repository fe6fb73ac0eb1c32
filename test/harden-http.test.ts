/**
 * The HTTP API from an attacker's side: random JSON bodies, random
 * Content-Types and headers, random path parameters, on every route. Whatever
 * arrives, the answer is never a 500, never a stack trace or an internal
 * message, and every refusal carries a HERALD_ERR_* code. And a batch cannot
 * name more recipients than one request may cost.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import net from 'node:net';
import fc from 'fast-check';
/** The most people one batch may name (docs/http-api.md). */
const MAX_BATCH_RECIPIENTS = 10_000;
import { within } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

let s: TestServer;

before(async () => {
  s = await startHerald({ store: 'memory', commandsAllow: ['true'] });
});

after(async () => {
  await s.close();
});

/** What must never appear in an answer: a stack frame, a source path, a JavaScript error's own words. */
const LEAK = /\n\s+at |node_modules|\/src\/server|\.ts:\d|TypeError|ReferenceError|RangeError|SyntaxError: |Cannot read prop|is not a function|undefined is not/;

async function call(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const res = await fetch(`${s.url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  return { status: res.status, text: await res.text() };
}

/** An answer is a success, or a refusal in Herald's shape with a HERALD_ERR_* code; never a 500 or a leak. */
function checkAnswer(what: string, a: { status: number; text: string }): void {
  assert.notEqual(a.status, 500, `${what}: 500 ${a.text}`);
  assert.ok(a.status < 500 || a.status === 503, `${what}: ${a.status} ${a.text}`);
  assert.doesNotMatch(a.text, LEAK, `${what}: the answer leaks internals: ${a.text}`);
  if (a.status >= 400) {
    let parsed: { error?: { code?: unknown; message?: unknown } };
    try {
      parsed = JSON.parse(a.text) as typeof parsed;
    } catch {
      assert.fail(`${what}: ${a.status} answered with a body that is not JSON: ${a.text.slice(0, 200)}`);
    }
    assert.match(String(parsed.error?.code), /^HERALD_ERR_[A-Z_]+$/, `${what}: ${a.text}`);
    assert.equal(typeof parsed.error?.message, 'string', `${what}: ${a.text}`);
  }
}

/** Field names the routes know, so random bodies often reach past the first check. */
const KNOWN = ['to', 'message', 'ttl', 'idempotencyKey', 'messages', 'answer', 'reason', 'kind', 'id', 'aid', 'uid', 'aids', 'uids', 'all',
  'program', 'args', 'timeout', 'TYPE', 'TO', 'ID', 'DATA', 'TEXT', 'LIST_TYPE', 'PROXY_TO', 'MESSAGE', 'SILENT', '__proto__', 'constructor'];

const scalar = fc.oneof(
  fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.string({ maxLength: 20 }),
  fc.constantFrom('admins', 'users', 'admin', 'user', 'full', 'summary', '*', 'ADMIN', 'USER', 'PING', 'MESSAGE', 'REQUEST_LIST', 'COMMAND', 'PROXY', '-1', '1e309', '0x10', ''),
  fc.constantFrom(0, -1, 1, 2 ** 53, 2 ** 53 + 2, 1e308, -0, 0.5),
);
const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...KNOWN) }, { weight: 1, arbitrary: fc.string({ maxLength: 10 }) });
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(key, tie('node'), { maxKeys: 4 })),
})).node;
/** A body: usually JSON of a random shape made of the routes' own words; sometimes not JSON at all. */
const body = fc.oneof(
  { weight: 6, arbitrary: fc.dictionary(key, value, { maxKeys: 5 }).map((v) => JSON.stringify(v)) },
  { weight: 2, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '{', '[', '{"to":', 'null', '"x"', '{"__proto__":{"to":1}}', '{"a":1}{"b":2}', '\u0000', '{"to":{"aid":1}}'.repeat(3)) },
);
const contentType = fc.option(fc.constantFrom(
  'application/json', 'application/json; charset=utf-8', 'application/JSON', 'application/json; charset=latin1', 'text/plain',
  'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', '*/*', 'json', ';;', 'application/json; a="',
), { nil: undefined });
const authorization = fc.constantFrom('valid', 'none', 'Bearer', 'Bearer ', 'Basic eDp5', 'bearer wrong', 'valid-lower');
const extraHeaders = fc.dictionary(
  fc.stringMatching(/^x-[a-z0-9-]{1,12}$/),
  fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((v) => v.trim()),
  { maxKeys: 3 },
);

function headersOf(auth: string, type: string | undefined, extra: Record<string, string>): Record<string, string> {
  const h: Record<string, string> = { ...extra };
  if (auth === 'valid') h.authorization = `Bearer ${s.apiToken}`;
  else if (auth === 'valid-lower') h.authorization = `bearer ${s.apiToken}`;
  else if (auth !== 'none') h.authorization = auth;
  if (type !== undefined) h['content-type'] = type;
  return h;
}

const POSTS = ['/api/v1/send', '/api/v1/send/batch', '/api/v1/disconnect', '/api/v1/tokens', '/api/v1/legacy', '/api/v1/commands', '/api/v1/commands/x/cancel'];

describe('HTTP API fuzzing', () => {
  test('random bodies and headers on every POST route: never a 500, a leak, or a refusal without a HERALD_ERR_* code', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom(...POSTS), body, contentType, authorization, extraHeaders, async (path, b, type, auth, extra) => {
      checkAnswer(`POST ${path} ${type} ${b.slice(0, 200)}`, await call('POST', path, b, headersOf(auth, type, extra)));
    }), { numRuns: 700 });
  });

  test('random bodies in the fields that matter, with a valid token and JSON: the validator and the routes hold', async () => {
    const sendLike = fc.record({ to: value, message: value, ttl: value, idempotencyKey: value }, { requiredKeys: ['to', 'message'] });
    const bodies = fc.oneof(
      sendLike.map((v) => ['/api/v1/send', v] as const),
      fc.record({ messages: fc.oneof(fc.array(sendLike, { maxLength: 4 }), value), answer: value }, { requiredKeys: ['messages'] }).map((v) => ['/api/v1/send/batch', v] as const),
      fc.record({ to: value, reason: value }).map((v) => ['/api/v1/disconnect', v] as const),
      fc.record({ kind: value, id: value, ttl: value }).map((v) => ['/api/v1/tokens', v] as const),
      fc.record({ TYPE: value, TO: value, ID: value, DATA: value, LIST_TYPE: value, MESSAGE: value, SILENT: value, TOKEN: value }).map((v) => ['/api/v1/legacy', v] as const),
      fc.record({ aid: value, program: value, args: value, timeout: value }).map((v) => ['/api/v1/commands', v] as const),
    );
    await fc.assert(fc.asyncProperty(bodies, async ([path, v]) => {
      const text = JSON.stringify(v);
      checkAnswer(`POST ${path} ${text.slice(0, 300)}`, await call('POST', path, text, headersOf('valid', 'application/json', {})));
    }), { numRuns: 700 });
  });

  test('random path parameters and queries on the GET routes', async () => {
    const segment = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('admin', 'user', '1', '0', '-1', '1e3', '9007199254740993', '%', '%E0%A4%A', '..', '%2e%2e', 'x'.repeat(120)));
    const target = fc.oneof(
      segment.map((k) => `/api/v1/online?kind=${encodeURIComponent(k)}`),
      fc.tuple(segment, segment).map(([k, id]) => `/api/v1/online/${encodeURIComponent(k)}/${encodeURIComponent(id)}`),
      segment.map((id) => `/api/v1/messages/${encodeURIComponent(id)}`),
      segment.map((id) => `/api/v1/commands/${encodeURIComponent(id)}`),
      segment.map((q) => `/api/v1/commands?${encodeURIComponent(q)}=${encodeURIComponent(q)}`),
      segment.map((q) => `/api/v1/commands/audit?limit=${encodeURIComponent(q)}&before=${encodeURIComponent(q)}`),
      segment.map((p) => `/api/v1/${p.replace(/[?#]/g, '')}`),
    );
    await fc.assert(fc.asyncProperty(target, authorization, async (path, auth) => {
      checkAnswer(`GET ${path}`, await call('GET', path, undefined, headersOf(auth, undefined, {})));
    }), { numRuns: 500 });
  });
});

describe('POST /api/v1/send/batch: recipients per request', () => {
  const ids = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

  test(`a batch naming more than ${MAX_BATCH_RECIPIENTS} people in all is refused, naming the limit, and nothing is stored`, async () => {
    // 16 lists of 10,000: under 1 MB of body, 160,000 people. Storing a
    // notification for each held the event loop for about a second.
    const messages = Array.from({ length: 16 }, (_, i) => ({ to: { aids: ids(10_000, 1 + i * 10_000) }, message: { TYPE: 'MESSAGE', TEXT: `batch ${i}` } }));
    const big = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' });
    assert.equal(big.status, 400, JSON.stringify(big.body).slice(0, 300));
    assert.equal(big.body.error.code, 'HERALD_ERR_VALIDATION');
    assert.match(big.body.error.message, /160000 recipients.*at most 10000/);
    // One over, counting single recipients and a broadcast as one each.
    const over = await s.api('POST', '/api/v1/send/batch', {
      messages: [{ to: { uids: ids(MAX_BATCH_RECIPIENTS - 1) }, message: { TYPE: 'MESSAGE' } }, { to: { all: 'users' }, message: 'x' }, { to: { uid: 5 }, message: 'y' }],
    });
    assert.equal(over.status, 400);
    assert.match(over.body.error.message, /10001 recipients/);
    // Nothing of a refused batch was stored.
    const tab = await s.tab('admin', 150_001);
    assert.equal((await tab.nextOfType('WELCOME')).SEQ, 0);
    tab.close();
  });

  test('a batch naming exactly the limit is sent', async () => {
    const messages = [
      { to: { aids: ids(MAX_BATCH_RECIPIENTS - 2) }, message: { TYPE: 'MESSAGE', TEXT: 'many' } },
      { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'one' } },
      { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'all' } },
    ];
    const ok = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body).slice(0, 300));
    assert.equal(ok.body.items, 3);
    assert.equal(ok.body.queued, 3);
  });

  test('a batch holds at most 10 broadcasts: each is a write to every tab of a kind, whoever is online', async () => {
    // 10,000 broadcasts to 200 tabs held the event loop for 5.1 s.
    const broadcast = (i: number, tag: string) => ({ to: { all: i % 2 === 0 ? 'admins' : 'users' }, message: { TYPE: 'MESSAGE', TEXT: `${tag}${i}` } });
    const tab = await s.tab('user', 150_002);
    await tab.nextOfType('WELCOME');
    const over = await s.api('POST', '/api/v1/send/batch', { messages: Array.from({ length: 11 }, (_, i) => broadcast(i, 'refused')), answer: 'summary' });
    assert.equal(over.status, 400, JSON.stringify(over.body));
    assert.equal(over.body.error.code, 'HERALD_ERR_VALIDATION');
    assert.match(over.body.error.message, /11 broadcasts; a batch may hold at most 10/);
    const ok = await s.api('POST', '/api/v1/send/batch', { messages: Array.from({ length: 10 }, (_, i) => broadcast(i, 'b')), answer: 'summary' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.items, 10);
    // The tab got the five users' broadcasts of the accepted batch, and none of the refused one.
    const got: string[] = [];
    for (let i = 0; i < 5; i++) got.push(String((await tab.nextOfType('MESSAGE')).TEXT));
    assert.deepEqual(got, ['b1', 'b3', 'b5', 'b7', 'b9']);
    tab.close();
  });
});

/**
 * POSTs headers announcing a 1 MB body and a tenth of it (the rest never
 * comes, as from a slow client) and resolves with the answer's head and
 * start, which must come within 2 s: before the body was read.
 */
async function answerBeforeBody(path: string): Promise<string> {
  const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1');
  socket.on('error', () => undefined);
  let answer = '';
  const answered = new Promise<void>((resolve) => socket.on('data', (b: Buffer) => {
    answer += b.toString();
    if (answer.includes('\r\n\r\n')) resolve();
  }));
  socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"a":"${'x'.repeat(100_000)}`);
  try {
    await within(answered, 2000, `an answer to POST ${path} before its body arrived`);
  } finally {
    socket.destroy();
  }
  return answer;
}

describe('a request no route takes', () => {
  test('is answered 404 before its body is read: a POST to any path cannot make the server hold its body', async () => {
    for (const path of ['/nonexistent', '/', '/api/v1/nope']) {
      const answer = await answerBeforeBody(path);
      assert.match(answer, /^HTTP\/1\.1 404 /);
      assert.match(answer, /"code":"HERALD_ERR_NOT_FOUND"/);
    }
    // Without a body, and on a keep-alive connection, the same answer as before.
    const r = await s.api('GET', '/nope');
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: { code: 'HERALD_ERR_NOT_FOUND', message: 'no route GET /nope' } });
  });
});

describe('routes anyone may call', () => {
  test('the library\'s probe (POST /ws/KIND) and the demo\'s endpoints are answered before a large body is read', async () => {
    // They take no body (the probe) or a small one (the demo's): each held up to
    // maxBodyBytes (1 MB) of an unauthenticated request for up to requestTimeoutMs.
    assert.equal((await s.api('GET', '/demo')).status, 200, 'the demo is on in this test server');
    for (const path of ['/ws/admin', '/ws/user', '/demo/token', '/demo/send']) {
      const answer = await answerBeforeBody(path);
      assert.match(answer, /^HTTP\/1\.1 413 /, `${path}: ${answer.slice(0, 200)}`);
      assert.match(answer, /"code":"HERALD_ERR_TOO_LARGE"/);
    }
    // The probe and the demo still work.
    const probe = await fetch(`${s.url}/ws/admin`, { method: 'POST' });
    assert.equal(probe.status, 401);
    const token = await s.api('POST', '/demo/token', { kind: 'admin', id: 3 });
    assert.equal(token.status, 200);
  });
});

