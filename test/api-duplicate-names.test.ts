/**
 * A field given twice in one object of a body: JSON.parse keeps the last
 * value without a word, so what a reader of the first sees (a log line, a
 * proxy's filter, a review of the backend's template) was not what Herald
 * did: `{"to":{"aid":7},…,"to":{"all":"admins"}}` went to every admin, and
 * `{"kind":"user","id":7,"kind":"admin"}` minted an admin token. Refused with
 * 400 HERALD_ERR_VALIDATION naming the field and its object (docs/http-api.md).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { jsonBodyFault, jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../src/protocol/json-depth.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('API: a field given twice in a body', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory', commandsAllow: ['true'] });
  });
  after(() => s.close());

  async function assertRefused(path: string, body: string, message: string): Promise<void> {
    const r = await s.api('POST', path, body);
    assert.equal(r.status, 400, `${body}: ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(r.body.error.code, 'HERALD_ERR_VALIDATION', body);
    assert.equal(r.body.error.message, message, body);
  }

  test('"to" twice in a send is refused, not sent to the last one (every admin)', async () => {
    await assertRefused('/api/v1/send', '{"to":{"aid":7},"message":{"TYPE":"MESSAGE","TEXT":"for admin 7 only"},"ttl":0,"to":{"all":"admins"}}',
      'body has the field "to" twice: give each field once');
  });

  test('an id twice in "to", which holds exactly one key, is refused, in a send, a batch item and a disconnect', async () => {
    await assertRefused('/api/v1/send', '{"to":{"aid":7,"aid":8},"message":"x","ttl":0}', 'body/to has the field "aid" twice: give each field once');
    await assertRefused('/api/v1/send/batch', '{"messages":[{"to":{"uid":1},"message":"x"},{"to":{"uid":2,"uid":3},"message":"x"}]}',
      'body/messages/1/to has the field "uid" twice: give each field once');
    await assertRefused('/api/v1/send/batch', '{"messages":[{"to":{"uid":1},"message":"x","ttl":0,"ttl":60}]}',
      'body/messages/0 has the field "ttl" twice: give each field once');
    await assertRefused('/api/v1/disconnect', '{"to":{"aid":7},"to":{"aid":8}}', 'body has the field "to" twice: give each field once');
  });

  test('a name written with escapes is the same name ("\\u0061id" is "aid")', async () => {
    await assertRefused('/api/v1/send', '{"to":{"aid":7,"\\u0061id":8},"message":"x","ttl":0}', 'body/to has the field "aid" twice: give each field once');
  });

  test('"kind" twice in POST /tokens is refused, not a token for the last kind', async () => {
    await assertRefused('/api/v1/tokens', '{"kind":"user","id":7,"kind":"admin"}', 'body has the field "kind" twice: give each field once');
  });

  test('"program" twice in POST /commands is refused', async () => {
    await assertRefused('/api/v1/commands', '{"aid":1,"program":"true","args":[],"program":"rm"}', 'body has the field "program" twice: give each field once');
  });

  test('a notification stays the panel\'s own: a name twice inside `message` (or a command\'s `success`) is taken as JSON.parse takes it', async () => {
    const r = await s.api('POST', '/api/v1/send', '{"to":{"aid":7},"message":{"TYPE":"MESSAGE","TEXT":"a","TEXT":"b","X":{"y":1,"y":2}},"ttl":0}');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const c = await s.api('POST', '/api/v1/commands', '{"aid":1,"program":"true","success":{"TYPE":"MESSAGE","TEXT":"a","TEXT":"b"}}');
    assert.equal(c.status, 201, JSON.stringify(c.body));
  });

  test('a body that is not JSON is refused as such, whatever names it repeats', async () => {
    const r = await s.api('POST', '/api/v1/send', '{"to":{"aid":7,"aid":8},"message":"x",}');
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'HERALD_ERR_BAD_REQUEST');
  });
});

describe('jsonBodyFault', () => {
  test('finds a name given twice at any level outside `message`, `success` and `error`, and says where', () => {
    assert.deepEqual(jsonBodyFault('{"a":1,"b":{"c":[{"d":1},{"d":1,"e":2,"d":3}]}}', MAX_JSON_DEPTH), { kind: 'repeated', name: 'd', at: '/b/c/1' });
    assert.deepEqual(jsonBodyFault('[{"a":1},{"a":1,"a":2}]', MAX_JSON_DEPTH), { kind: 'repeated', name: 'a', at: '/1' });
    assert.equal(jsonBodyFault('{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}', MAX_JSON_DEPTH), undefined);
    assert.equal(jsonBodyFault('{"message":{"a":1,"a":2,"b":[{"c":1,"c":2}]},"\\u0065rror":{"a":1,"a":2},"x":1}', MAX_JSON_DEPTH), undefined);
    assert.deepEqual(jsonBodyFault('{"message":{"a":1},"message":2}', MAX_JSON_DEPTH), { kind: 'repeated', name: 'message', at: '' });
    // Names that differ only where a string's escapes or quotes are; a value that looks like a name.
    assert.equal(jsonBodyFault('{"a\\"":1,"a":2,"a\\\\":3,"b":"a","c":"\\"a\\":1"}', MAX_JSON_DEPTH), undefined);
    assert.deepEqual(jsonBodyFault('{"\\"":1,"\\u0022":2}', MAX_JSON_DEPTH), { kind: 'repeated', name: '"', at: '' });
    assert.deepEqual(jsonBodyFault('{"a":[[[]]]}', 3), { kind: 'deeper' });
  });

  /** Strings that look like structure: brackets, quotes, runs of backslashes, and the open names. */
  const tricky = fc.oneof(fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', ',', ':', 'a', 'ж', '\u2028') }), fc.constantFrom('message', 'error', 'a'));
  const value = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: 'small', maxDepth: 8 }, tricky, fc.integer(), fc.constant(null), tie('array'), tie('object')),
    array: fc.array(tie('value'), { maxLength: 3 }),
    object: fc.dictionary(tricky, tie('value'), { maxKeys: 3 }),
  })).value;
  /** A JSON string for `s` with every character escaped (`"\u0061"`). */
  const escaped = (s: string): string => `"${[...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;

  test('property: finds no repeated name in any JSON text JSON.stringify writes, and agrees with jsonNestsDeeperThan', () => {
    fc.assert(fc.property(value, fc.integer({ min: 0, max: 10 }), fc.constantFrom(undefined, 1), (v, limit, space) => {
      const text = JSON.stringify(v, null, space);
      const fault = jsonBodyFault(text, limit);
      assert.equal(fault?.kind === 'deeper', jsonNestsDeeperThan(text, limit), text);
      assert.notEqual(fault?.kind, 'repeated', text);
    }), { numRuns: 2000 });
  });

  test('property: two names in one object are the same exactly when they decode to the same string, however written', () => {
    fc.assert(fc.property(tricky, tricky, fc.boolean(), value, (a, b, escape, v) => {
      const text = `{"x":[{"y":${JSON.stringify(v)},${JSON.stringify(a)}:1,${escape ? escaped(b) : JSON.stringify(b)}:2}]}`;
      const fault = jsonBodyFault(text, MAX_JSON_DEPTH);
      if (a === b || a === 'y' || b === 'y') assert.deepEqual(fault, { kind: 'repeated', name: a === 'y' ? 'y' : b, at: '/x/0' }, text);
      else assert.equal(fault, undefined, text);
    }), { numRuns: 2000 });
  });

  test('stays linear on an object of 100,000 names, and finds the one repeated at its end', () => {
    const members = Array.from({ length: 100_000 }, (_, i) => `"n${i}":0`);
    const started = process.hrtime.bigint();
    assert.equal(jsonBodyFault(`{${members.join(',')}}`, MAX_JSON_DEPTH), undefined);
    assert.deepEqual(jsonBodyFault(`{${members.join(',')},"n5":1}`, MAX_JSON_DEPTH), { kind: 'repeated', name: 'n5', at: '' });
    // Pair by pair it would take 5·10^9 comparisons, minutes: a deadline far from the expected few ms.
    assert.ok(process.hrtime.bigint() - started < 10_000_000_000n);
  });
});
