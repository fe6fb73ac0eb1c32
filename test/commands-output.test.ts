import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffer } from '../src/server/commands/output-buffer.js';

describe('command output capture', () => {
  it('keeps UTF-8 intact when a character is split across reads and streams interleave', () => {
    const out = new OutputBuffer(1024);
    const ru = Buffer.from('привет', 'utf8');
    const uk = Buffer.from('їжак', 'utf8');
    out.push('stdout', ru.subarray(0, 3));
    out.push('stderr', uk.subarray(0, 1));
    out.push('stdout', ru.subarray(3));
    out.push('stderr', uk.subarray(1));
    out.end();
    assert.equal(out.text, 'привет' + 'їжак');
    assert.equal(out.bytes, ru.length + uk.length);
    assert.equal(out.truncated, false);
  });

  it('cuts at the cap, marks it, and ignores the rest', () => {
    const out = new OutputBuffer(10);
    out.push('stdout', Buffer.from('0123456'));
    out.push('stdout', Buffer.from('789abcdef'));
    out.push('stderr', Buffer.from('more'));
    out.end();
    assert.equal(out.text, '0123456789');
    assert.equal(out.bytes, 10);
    assert.equal(out.truncated, true);
  });

  it('hands progress the new text only, keeping the tail when there is too much', () => {
    const out = new OutputBuffer(1024);
    out.push('stdout', Buffer.from('abc'));
    assert.equal(out.takePending(100), 'abc');
    assert.equal(out.hasPending, false);
    out.push('stdout', Buffer.from('defghij'));
    assert.equal(out.takePending(3), 'hij');
    assert.equal(out.takePending(3), '');
  });

  it('never cuts the progress tail inside a character outside the BMP', () => {
    const out = new OutputBuffer(1024);
    // 'a' + two emoji + 'b' is 6 UTF-16 units; the last 4 would start with the second half of the first emoji.
    out.push('stdout', Buffer.from('a😀🙂b'));
    const tail = out.takePending(4);
    assert.equal(tail, '🙂b');
    assert.doesNotMatch(tail, /^[\uDC00-\uDFFF]/, 'no lone surrogate');
  });
});
