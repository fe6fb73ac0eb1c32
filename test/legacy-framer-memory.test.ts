/**
 * What the framer holds of an unfinished request is what legacyMaxBufferedBytes
 * counts (`buffered`), and the memory it takes must follow that count, however
 * the request arrives. Kept as one Buffer per read, a request sent a byte at a
 * time took about 100 bytes of heap for each byte counted (1 MB counted, 106 MB
 * of heap), so the bound did not bound memory. Now the parts are one buffer
 * whose room doubles: under twice the bytes counted.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { JsonStreamFramer } from '../src/server/api/json-stream.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** The heap and the array buffers outside it, after a full collection. */
function memoryUsed(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

describe('legacy framer: memory held for an unfinished request', () => {
  it('a request arriving a byte a read holds about the bytes counted, not a Buffer per read', () => {
    const f = new JsonStreamFramer({ maxValueBytes: 1 << 20, maxDepth: 64 });
    const before = memoryUsed();
    f.push(Buffer.from('{"TYPE":"MESSAGE","ID":1,"DATA":"'));
    const n = 256 * 1024;
    // As a socket delivers: a fresh Buffer each read.
    for (let i = 0; i < n; i++) f.push(Buffer.from('a'));
    const grown = memoryUsed() - before;
    assert.ok(f.buffered > n);
    // One Buffer a read took about 27 MB here; the doubling room is at most 512 KiB.
    assert.ok(grown < 4 * f.buffered, `${grown} bytes of memory for ${f.buffered} bytes counted`);
    // And the request is whole once it ends.
    const [event] = f.push(Buffer.from('"}'));
    assert.equal(event?.kind, 'value');
    assert.equal((event as { value: { DATA: string } }).value.DATA, 'a'.repeat(n));
    assert.equal(f.buffered, 0);
  });

  it('a request in reads of every size, across the room\'s growth, is framed whole and exactly', () => {
    const text = 'Новое сообщение 😀 "quoted" \\ '.repeat(4000);
    const request = Buffer.from(JSON.stringify({ TYPE: 'MESSAGE', ID: 1, DATA: { TEXT: text } }) + '{"TYPE":"PING"}');
    for (const size of [1, 7, 255, 256, 257, 4096, 65_536]) {
      const f = new JsonStreamFramer({ maxValueBytes: 1 << 20 });
      const events = [];
      for (let at = 0; at < request.length; at += size) events.push(...f.push(request.subarray(at, at + size)));
      assert.deepEqual(events.map((e) => (e.kind === 'value' ? e.value : e.kind)), [{ TYPE: 'MESSAGE', ID: 1, DATA: { TEXT: text } }, { TYPE: 'PING' }], `reads of ${size} bytes`);
      assert.equal(f.buffered, 0);
    }
  });
});
