import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffer } from '../src/server/commands/output-buffer.js';
import { makeRig, within, type Frame } from './commands-fixture.js';

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

  it('counts the cap in the UTF-8 bytes of the text kept: bytes that are not UTF-8 cost three each', () => {
    const out = new OutputBuffer(1024);
    out.push('stdout', Buffer.alloc(4096, 0xff));
    out.end();
    assert.equal(out.truncated, true);
    assert.ok(Buffer.byteLength(out.text) <= 1024, `${Buffer.byteLength(out.text)} bytes kept`);
    assert.equal(out.text, '\ufffd'.repeat(341), 'whole replacement characters, as many as fit');
    assert.equal(out.bytes, Buffer.byteLength(out.text));
  });

  it('cuts valid multi-byte text at a whole character, and counts a partial one flushed at the end', () => {
    const cut = new OutputBuffer(1024);
    cut.push('stdout', Buffer.from('я'.repeat(600))); // 1200 bytes
    assert.equal(cut.text, 'я'.repeat(512));
    assert.equal(cut.truncated, true);
    // 1023 bytes, then the first byte of a 3-byte character that never comes: its U+FFFD does not fit.
    const partial = new OutputBuffer(1024);
    partial.push('stderr', Buffer.concat([Buffer.alloc(1023, 0x61), Buffer.from([0xe2])]));
    partial.end();
    assert.equal(partial.text, 'a'.repeat(1023));
    assert.equal(partial.truncated, true);
    assert.equal(partial.bytes, 1023);
  });

  it('keeps and sends at most the cap of a program that writes bytes that are not UTF-8', async () => {
    const rig = await makeRig({ commandsAllow: ['sh', 'head', 'tr'], commandsOutputCap: 4096 });
    try {
      const tab = rig.tab(1);
      const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', "head -c 16384 /dev/zero | tr '\\0' '\\377'"], door: 'http' });
      const done = await within(rig.runner.wait(info.id), 10_000, 'binary output');
      assert.equal(done?.state, 'succeeded');
      assert.equal(done?.TRUNCATED, true);
      assert.ok((done?.output ?? '').startsWith('\ufffd'), 'the bytes were read');
      assert.ok(Buffer.byteLength(done?.output ?? '') <= 4096, `${Buffer.byteLength(done?.output ?? '')} bytes kept`);
      const final = await tab.next((f: Frame) => f.COMMAND_ID === info.id && f.TYPE !== 'COMMAND_PROGRESS');
      const text = String(final.TEXT);
      assert.ok(Buffer.byteLength(text.slice(0, text.lastIndexOf('\n['))) <= 4096, 'the notification carries no more than the cap');
      const progressed = tab.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS').reduce((n, f) => n + Buffer.byteLength(String(f.OUTPUT)), 0);
      assert.ok(progressed <= 4096, `progress frames carried ${progressed} bytes`);
    } finally {
      await rig.close();
    }
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
