import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { JsonStreamFramer, type FramerEvent } from '../src/server/api/json-stream.js';

const enc = (s: string) => Buffer.from(s, 'utf8');

function feed(framer: JsonStreamFramer, chunks: Uint8Array[]): FramerEvent[] {
  return chunks.flatMap((c) => framer.push(c));
}

function values(events: FramerEvent[]): unknown[] {
  return events.map((e) => (e.kind === 'value' ? e.value : { event: e.kind }));
}

/** Splits a buffer into single bytes. */
function bytewise(b: Buffer): Uint8Array[] {
  return [...b].map((x) => Uint8Array.of(x));
}

describe('legacy JSON stream framer', () => {
  it('frames several values in one read, with white space between them', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const ev = f.push(enc('{"TYPE":"PING"}{"TYPE":"PING"}\n {"TYPE":"REQUEST_LIST","LIST_TYPE":"ADMINS"}\r\n\t'));
    assert.deepEqual(values(ev), [{ TYPE: 'PING' }, { TYPE: 'PING' }, { TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' }]);
    assert.equal(f.inValue, false);
    assert.equal(f.buffered, 0);
  });

  it('takes a UTF-8 byte order mark between values as white space, also split across reads; part of one is garbage', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const ping = enc('{"TYPE":"PING"}');
    let f = new JsonStreamFramer({ maxValueBytes: 1024 });
    assert.deepEqual(values(f.push(Buffer.concat([bom, ping, bom, ping]))), [{ TYPE: 'PING' }, { TYPE: 'PING' }]);
    f = new JsonStreamFramer({ maxValueBytes: 1024 });
    assert.deepEqual(values(feed(f, bytewise(Buffer.concat([bom, ping])))), [{ TYPE: 'PING' }]);
    f = new JsonStreamFramer({ maxValueBytes: 1024 });
    assert.deepEqual(values(f.push(Buffer.concat([bom.subarray(0, 2), ping]))), [{ event: 'garbage' }, { TYPE: 'PING' }]);
  });

  it('frames a value split byte by byte, inside Cyrillic characters and escaped quotes and braces', () => {
    const text = '{"TYPE":"MESSAGE","DATA":{"TITLE":"Привет, мир","TEXT":"a \\"quoted\\" {brace} [x] \\\\"}}';
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const chunks = bytewise(enc(text));
    const ev = feed(f, chunks.slice(0, -1));
    assert.deepEqual(ev, [], 'nothing before the last byte');
    assert.equal(f.inValue, true);
    const last = f.push(chunks.at(-1) as Uint8Array);
    assert.deepEqual(values(last), [JSON.parse(text)]);
  });

  it('keeps the bytes of a split value even when the caller reuses its buffer', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const buf = Buffer.from('{"A":"ёж', 'utf8');
    f.push(buf.subarray(0, buf.length - 1)); // ends inside "ж"
    buf.fill(0x20);
    const ev = f.push(Buffer.concat([Buffer.from('ж', 'utf8').subarray(1), enc('"}')]));
    assert.deepEqual(values(ev), [{ A: 'ёж' }]);
  });

  it('reports a balanced value that is not JSON as invalid and carries on', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const ev = f.push(enc('{TYPE:PING}{"TYPE":"PING"}'));
    assert.deepEqual(values(ev), [{ event: 'invalid' }, { TYPE: 'PING' }]);
  });

  it('reports garbage once per run and resynchronises at the next {', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const junk = Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x7d, 0x5d]);
    const ev = feed(f, [junk, junk, enc('{"TYPE":"PING"}'), enc('}}}x{"TYPE":"PING"}')]);
    assert.deepEqual(values(ev), [{ event: 'garbage' }, { TYPE: 'PING' }, { event: 'garbage' }, { TYPE: 'PING' }]);
  });

  it('frames top-level scalars too (the handler answers them INCORRECT REQUEST)', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const ev = f.push(enc('"a{b" 12 true null{"TYPE":"PING"}-3'));
    assert.deepEqual(values(ev), ['a{b', 12, true, null, { TYPE: 'PING' }]);
    assert.deepEqual(values(f.end()), [-3], 'a number at the end of the stream completes at end()');
  });

  it('gives up on a value longer than the limit, without buffering it, and then ignores input', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    let events: FramerEvent[] = f.push(enc('{"TYPE":"PING"}{"A":"'));
    const filler = Buffer.alloc(300, 0x61);
    for (let i = 0; i < 10 && !f.finished; i++) {
      events = events.concat(f.push(filler));
      assert.ok(f.buffered <= 1024);
    }
    assert.deepEqual(values(events), [{ TYPE: 'PING' }, { event: 'too-large' }]);
    assert.equal(f.finished, true);
    assert.equal(f.buffered, 0);
    assert.deepEqual(f.push(enc('{"TYPE":"PING"}')), []);
  });

  it('counts an endless garbage run against the limit too', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const events = feed(f, [Buffer.alloc(600, 0x01), Buffer.alloc(600, 0x01)]);
    assert.deepEqual(values(events), [{ event: 'garbage' }, { event: 'too-large' }]);
  });

  it('accepts a value of exactly the limit', () => {
    const v = `{"A":"${'x'.repeat(1024 - 8)}"}`;
    assert.equal(Buffer.byteLength(v), 1024);
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    assert.deepEqual(values(f.push(enc(v))), [JSON.parse(v)]);
  });

  it('refuses an object or array one byte past the limit, whether its last byte comes alone or not', () => {
    // The closing brace ended the value before the limit was checked: 1025 bytes went through.
    for (const [open, close] of [['{"A":"', '"}'], ['["', '"]']] as const) {
      const atLimit = `${open}${'x'.repeat(1024 - open.length - close.length)}${close}`;
      const past = `${open}${'x'.repeat(1025 - open.length - close.length)}${close}`;
      assert.equal(Buffer.byteLength(past), 1025);
      for (const split of [2000, 1024, 1]) {
        for (const [text, expected] of [[atLimit, [JSON.parse(atLimit)]], [past, [{ event: 'too-large' }]]] as const) {
          const f = new JsonStreamFramer({ maxValueBytes: 1024 });
          const bytes = enc(text);
          const chunks = Array.from({ length: Math.ceil(bytes.length / split) }, (_, i) => bytes.subarray(i * split, (i + 1) * split));
          assert.deepEqual(values(feed(f, chunks)), expected, `${bytes.length} bytes in chunks of ${split}`);
        }
      }
    }
  });

  it('holds a top-level string to the limit too, though its bytes are skipped over in one step, escaped quotes and all', () => {
    const atLimit = `"${'x\\"'.repeat(340)}xx"`;
    assert.equal(atLimit.length, 1024);
    for (const [text, expected] of [[atLimit, [JSON.parse(atLimit)]], [`${atLimit.slice(0, -1)}x"`, [{ event: 'too-large' }]]] as const) {
      for (const split of [1024, 100, 1]) {
        const f = new JsonStreamFramer({ maxValueBytes: 1024 });
        const bytes = enc(text);
        const chunks = Array.from({ length: Math.ceil(bytes.length / split) }, (_, i) => bytes.subarray(i * split, (i + 1) * split));
        assert.deepEqual(values(feed(f, chunks)), expected, `${text.length} bytes in chunks of ${split}`);
      }
    }
  });

  it('reports an unfinished value at the end of the stream as invalid', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    f.push(enc('{"TYPE":"PI'));
    assert.deepEqual(values(f.end()), [{ event: 'invalid' }]);
  });

  it('property: any JSON values, any white space, any split points → the same values in order', () => {
    const ws = fc.stringMatching(/^[ \t\r\n]{0,3}$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.jsonValue({ stringUnit: 'binary' }), ws), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (items, cuts) => {
          // A top-level number next to another number needs a separator; JSON text has one in `ws` or not,
          // so always end each value with at least one space.
          const text = items.map(([v, w]) => `${JSON.stringify(v)} ${w}`).join('');
          const bytes = enc(text);
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let prev = 0;
          for (const p of points) {
            chunks.push(bytes.subarray(prev, p));
            prev = p;
          }
          chunks.push(bytes.subarray(prev));
          const f = new JsonStreamFramer({ maxValueBytes: 1 << 20 });
          const got = [...feed(f, chunks), ...f.end()];
          assert.deepEqual(values(got), items.map(([v]) => JSON.parse(JSON.stringify(v)) as unknown));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('stops between values at maxEvents and says how much it read; the rest, pushed again, gives the same values in order', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1024 });
    const chunk = enc('{}'.repeat(100));
    const first = f.push(chunk, 64);
    assert.equal(first.length, 64);
    assert.equal(f.read, 128);
    assert.equal(f.inValue, false);
    assert.equal(f.push(chunk.subarray(f.read)).length, 36);
    assert.equal(f.read, 72);
    // Garbage and BOMs between values count as events and white space as before.
    const g = new JsonStreamFramer({ maxValueBytes: 1024 });
    assert.deepEqual(values(g.push(enc(' x {"A":1} 7 '), 2)), [{ event: 'garbage' }, { A: 1 }]);
    assert.deepEqual(values([...g.push(enc(' x {"A":1} 7 ').subarray(g.read)), ...g.end()]), [7]);
  });

  it('property: values pushed with any maxEvents, the rest pushed again, are those pushed without', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 5 }), (items, max) => {
        const bytes = enc(items.map((v) => `${JSON.stringify(v)} `).join(''));
        const f = new JsonStreamFramer({ maxValueBytes: 1 << 20 });
        const got: FramerEvent[] = [];
        let rest: Uint8Array = bytes;
        for (;;) {
          const events = f.push(rest, max);
          assert.ok(events.length <= max);
          got.push(...events);
          if (f.read === rest.length) break;
          rest = rest.subarray(f.read);
        }
        assert.deepEqual(values([...got, ...f.end()]), items.map((v) => JSON.parse(JSON.stringify(v)) as unknown));
      }),
      { numRuns: 200 },
    );
  });
});
