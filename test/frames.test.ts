import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseClientFrame } from '../src/protocol/frames.js';
import { withDelivery, serialise } from '../src/server/notifier.js';

test('parseClientFrame never throws, and answers an ERROR frame for anything it does not accept', () => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify(v))), (text) => {
    const r = parseClientFrame(text);
    if (!r.ok) {
      assert.equal(r.error.TYPE, 'ERROR');
      assert.equal(typeof r.error.ERROR, 'string');
    }
  }), { numRuns: 2000 });
});

test('the old script\'s RESPONCE misspelling is an acknowledgement', () => {
  assert.deepEqual(parseClientFrame('{"TYPE":"RESPONCE","RESPONCE":"RECEIVED"}'), { ok: true, frame: { TYPE: 'RESPONSE' } });
  assert.deepEqual(parseClientFrame('{"TYPE":"RESPONSE","SEQ":5}'), { ok: true, frame: { TYPE: 'RESPONSE', SEQ: 5 } });
  assert.equal(parseClientFrame('{"TYPE":"RESPONSE","SEQ":-1}').ok, false);
});

test('withDelivery appends SEQ/EPOCH to a serialised object and stays valid JSON with every field intact', () => {
  fc.assert(fc.property(
    fc.dictionary(fc.string().filter((k) => !['SEQ', 'EPOCH', 'STREAM', '__proto__'].includes(k)), fc.jsonValue()),
    fc.nat(), fc.string(), fc.boolean(),
    (fields, seq, epoch, broadcast) => {
      const payload = { ...fields, TYPE: 'MESSAGE' };
      const out = JSON.parse(withDelivery(serialise(payload), seq, epoch, broadcast));
      assert.deepEqual(out, { ...JSON.parse(JSON.stringify(payload)), SEQ: seq, EPOCH: epoch, ...(broadcast ? { STREAM: '*' } : {}) });
    },
  ), { numRuns: 500 });
});

test('a backend cannot forge delivery fields', () => {
  const out = JSON.parse(withDelivery(serialise({ TYPE: 'MESSAGE', SEQ: 999, EPOCH: 'x', STREAM: '*' }), 3, 'e', false));
  assert.deepEqual(out, { TYPE: 'MESSAGE', SEQ: 3, EPOCH: 'e' });
});

test('the old script\'s lower-case close request is a CLOSE_REQUEST, only when the frame has no TYPE', () => {
  const close = { ok: true, frame: { TYPE: 'CLOSE_REQUEST' } };
  assert.deepEqual(parseClientFrame('{ "type" :  "close_request"}'), close);
  assert.deepEqual(parseClientFrame('{"type":"CLOSE_REQUEST"}'), close);
  assert.deepEqual(parseClientFrame('{"type":"Close_Request"}'), close);
  // A frame with a TYPE is read by its TYPE; other lower-case types stay unknown.
  assert.deepEqual(parseClientFrame('{"TYPE":"PING","type":"close_request"}'), { ok: true, frame: { TYPE: 'PING' } });
  assert.equal(parseClientFrame('{"TYPE":"NOPE","type":"close_request"}').ok, false);
  assert.equal(parseClientFrame('{"type":"ping"}').ok, false);
  assert.equal(parseClientFrame('{"type":"close_request_now"}').ok, false);
  assert.equal(parseClientFrame('{"type":["close_request"]}').ok, false);
});
