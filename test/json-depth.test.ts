import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { jsonBodyFault, jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../src/protocol/json-depth.js';
import { JsonStreamFramer, type FramerEvent } from '../src/server/api/json-stream.js';

/** The depth of a parsed value, by walking it: a scalar is 0, `[]` and `{}` are 1. */
function depthOf(v: unknown): number {
  if (typeof v !== 'object' || v === null) return 0;
  let deepest = 0;
  for (const child of Array.isArray(v) ? v : Object.values(v)) deepest = Math.max(deepest, depthOf(child));
  return deepest + 1;
}

/** Strings that look like structure: brackets, quotes and runs of backslashes. */
const tricky = fc.string({ unit: fc.constantFrom('[', ']', '{', '}', '"', '\\', 'a', ' ', 'ж', '\u2028') });

/** JSON values of up to `max` levels, holding tricky strings as keys and values. */
const nestedValue = (max: number) => fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', maxDepth: max }, tricky, fc.integer(), fc.constant(null), fc.boolean(), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 3 }),
  object: fc.dictionary(tricky, tie('value'), { maxKeys: 3 }),
})).value;

describe('jsonNestsDeeperThan', () => {
  it('property: agrees with the depth of the parsed value, for any JSON text, any white space, any limit', () => {
    fc.assert(fc.property(nestedValue(12), fc.integer({ min: 0, max: 14 }), fc.constantFrom(undefined, 1, '\t'), (v, limit, space) => {
      const text = JSON.stringify(v, null, space);
      assert.equal(jsonNestsDeeperThan(text, limit), depthOf(v) > limit, text);
    }), { numRuns: 3000 });
  });

  it('counts arrays and objects alike, and nothing inside strings', () => {
    const at = (n: number) => `{"a":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}`;
    assert.equal(jsonNestsDeeperThan(at(MAX_JSON_DEPTH), MAX_JSON_DEPTH), false);
    assert.equal(jsonNestsDeeperThan(at(MAX_JSON_DEPTH + 1), MAX_JSON_DEPTH), true);
    assert.equal(jsonNestsDeeperThan('{"a":{"b":{"c":1}}}', 2), true);
    assert.equal(jsonNestsDeeperThan('{"a":{"b":{"c":1}}}', 3), false);
    // An escaped quote does not end a string; an escaped backslash before a quote does not hide it.
    assert.equal(jsonNestsDeeperThan(`["\\"${'['.repeat(10)}"]`, 1), false);
    assert.equal(jsonNestsDeeperThan(`["\\\\",${'['.repeat(2)}${']'.repeat(2)}]`, 2), true);
    assert.equal(jsonNestsDeeperThan(`["\\\\\\"[[[", 1]`, 1), false);
    assert.equal(jsonNestsDeeperThan('"[[[["', 0), false);
    assert.equal(jsonNestsDeeperThan('42', 0), false);
  });

  it('stays linear on what would be slow to scan: 1 MB of backslashes before quotes, an unterminated string, 1 MB of [', () => {
    // Each of these is answered; the run of the suite would stall on a quadratic walk.
    assert.equal(jsonNestsDeeperThan(`["${'\\\\'.repeat(250_000)}", [[]]]`, 2), true);
    assert.equal(jsonNestsDeeperThan(`["${'\\"'.repeat(250_000)}`, 1), false);
    assert.equal(jsonNestsDeeperThan('['.repeat(1_000_000), MAX_JSON_DEPTH), true);
  });
});

describe('the legacy framer with maxDepth', () => {
  const enc = (s: string) => Buffer.from(s, 'utf8');
  const kinds = (events: FramerEvent[]) => events.map((e) => (e.kind === 'value' ? e.value : e.kind));

  it('reports a value nested past maxDepth as too-deep, unparsed, even split byte by byte, and frames the next one', () => {
    const deep = `{"TYPE":"PROXY","MESSAGE":{"ECHO":${'['.repeat(3)}"]]]]"${']'.repeat(3)}}}`;
    const ok = `{"TYPE":"PROXY","MESSAGE":{"ECHO":${'['.repeat(2)}"[[[["${']'.repeat(2)}}}`;
    for (const split of [false, true]) {
      const f = new JsonStreamFramer({ maxValueBytes: 1024, maxDepth: 4 });
      const bytes = enc(`${deep} ${ok}{"TYPE":"PING"}`);
      const events = split ? [...bytes].flatMap((b) => f.push(Uint8Array.of(b))) : f.push(bytes);
      assert.deepEqual(kinds(events), ['too-deep', JSON.parse(ok), { TYPE: 'PING' }]);
      assert.deepEqual(events[0], { kind: 'too-deep', limit: 4, bytes: Buffer.byteLength(deep) });
      assert.equal(f.buffered, 0);
    }
  });

  it('without maxDepth takes any depth, as before', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1 << 20 });
    assert.deepEqual(kinds(f.push(enc(`{"a":${'['.repeat(200)}${']'.repeat(200)}}`))).length, 1);
    assert.equal(f.push(enc('{"a":1}'))[0]?.kind, 'value');
    assert.throws(() => new JsonStreamFramer({ maxValueBytes: 10, maxDepth: 0 }), /maxDepth/);
  });
});

describe('jsonBodyFault: a number JSON reads as 0 although it is not 0 as written', () => {
  /** JSON numbers as written: a sign, digits, a fraction, an exponent, any of them long. */
  const numberText = fc.tuple(
    fc.constantFrom('', '-'),
    fc.oneof(fc.constant('0'), fc.stringMatching(/^[1-9][0-9]{0,3}$/)),
    fc.option(fc.tuple(fc.nat({ max: 400 }), fc.stringMatching(/^[0-9]{1,3}$/)).map(([zeros, digits]) => `.${'0'.repeat(zeros)}${digits}`), { nil: '' }),
    fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 420 })).map(([e, sign, n]) => `${e}${sign}${n}`), { nil: '' }),
  ).map((parts) => parts.join(''));

  it('property: refused exactly when JSON.parse gives 0 and the digits before the exponent are not all 0, wherever it stands', () => {
    fc.assert(fc.property(numberText, fc.constantFrom('{"ttl":%}', '{"to":{"aids":[1,%]}}', '{"a":[%,2]}', '{"message":{"x":%},"y":1}'), (number, shape) => {
      const text = shape.replace('%', number);
      const zero = JSON.parse(number) === 0 && /[1-9]/.test(number.split(/[eE]/)[0]!);
      const fault = jsonBodyFault(text, MAX_JSON_DEPTH);
      if (zero && !shape.includes('message')) assert.deepEqual(fault, { kind: 'underflow', number: number.slice(0, 40), at: fault?.kind === 'underflow' ? fault.at : '' }, text.slice(0, 80));
      else assert.equal(fault, undefined, text.slice(0, 80));
    }), { numRuns: 3000 });
  });

  it('true, false and names and strings holding digits and e are not numbers', () => {
    for (const text of ['{"a":true,"b":false}', '{"1e-400":1}', '{"a":"1e-400"}', '{"a":"0.0000001"}', '{"a":[true,1,false,2.5e3]}']) assert.equal(jsonBodyFault(text, MAX_JSON_DEPTH), undefined, text);
  });
});
