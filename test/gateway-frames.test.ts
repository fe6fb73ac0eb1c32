/**
 * Live notifications are written to a tab's socket as whole frames that
 * Herald builds itself (src/server/gateway/text-frame.ts), once for all the
 * tabs a notification goes to. Checked two ways: each header length parsed
 * back by ws's own frame parser, and notifications of every size class and
 * of non-ASCII text arriving intact at real tabs, alone and shared.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { sharedTextFrame, socketTextFrame, textFrame } from '../src/server/gateway/text-frame.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** ws's frame parser (exported by ws, not described by @types/ws). */
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable };

/** Parses frames with ws's Receiver (as a client does) and returns the text messages. */
function parse(bytes: Buffer): string[] {
  const out: string[] = [];
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, false);
    out.push(data.toString('utf8'));
  });
  let error: unknown;
  receiver.on('error', (err: Error) => { error = err; });
  receiver.write(bytes);
  assert.equal(error, undefined);
  return out;
}

describe('text frames built by Herald', () => {
  test('every payload length class parses back exactly: 7-bit, 16-bit and 64-bit lengths', () => {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536, 70000]) {
      const text = 'x'.repeat(n);
      const frame = textFrame(text);
      assert.equal(frame.length, n + (n < 126 ? 2 : n < 65536 ? 4 : 10), `frame size for ${n}`);
      assert.deepEqual(parse(frame), [text], `payload of ${n} bytes`);
      assert.deepEqual(parse(textFrame(Buffer.from(text))), [text]);
    }
  });

  test('the length counts UTF-8 bytes, not characters', () => {
    const text = `${'Привет, мир! 😀 '.repeat(10)}é`;
    assert.deepEqual(parse(textFrame(text)), [text]);
    // Several frames back to back, as a socket sees them.
    assert.deepEqual(parse(Buffer.concat([textFrame('a'), textFrame(text), textFrame('b'.repeat(300))])), ['a', text, 'b'.repeat(300)]);
  });

  test("one tab's ASCII frame is a latin1 string of the same bytes; any other payload is the Buffer", () => {
    for (const n of [0, 1, 125, 126, 127, 65535, 65536]) {
      const text = `{"TEXT":"${'x'.repeat(n)}"}`;
      const frame = socketTextFrame(text);
      if (text.length < 65536) {
        assert.equal(typeof frame, 'string', `an ASCII payload of ${text.length} bytes`);
        assert.deepEqual(Buffer.from(frame as string, 'latin1'), textFrame(text));
      } else {
        assert.ok(Buffer.isBuffer(frame), 'a payload with a 64-bit length');
        assert.deepEqual(frame, textFrame(text));
      }
      assert.deepEqual(parse(Buffer.from(frame as string, 'latin1')), [text]);
    }
    // 'ÿ' (U+00FF) is one byte in a latin1 string but two in UTF-8: it must not go out as latin1.
    for (const text of ['Привет', 'é', '😀', `${'x'.repeat(200)}ÿ`]) {
      const frame = socketTextFrame(text);
      assert.ok(Buffer.isBuffer(frame), `${JSON.stringify(text.slice(-3))} is not ASCII`);
      assert.deepEqual(parse(frame as Buffer), [text]);
    }
  });

  test('a payload shared by many tabs is framed once; another payload gets its own frame', () => {
    const a = Buffer.from('{"TYPE":"MESSAGE","TEXT":"a"}');
    const b = Buffer.from('{"TYPE":"MESSAGE","TEXT":"a"}');
    assert.equal(sharedTextFrame(a), sharedTextFrame(a));
    assert.notEqual(sharedTextFrame(b), sharedTextFrame(a));
    assert.deepEqual(parse(sharedTextFrame(b)), [b.toString()]);
  });
});

describe('live notifications of every size reach real tabs intact', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
  });
  after(() => s.close());

  test('to one tab, to two tabs of one person, and to every admin', async () => {
    const alone = await s.tab('admin', 61);
    const twinA = await s.tab('admin', 62);
    const twinB = await s.tab('admin', 62);
    for (const t of [alone, twinA, twinB]) await t.nextOfType('WELCOME');
    const texts = ['', 'short', 'x'.repeat(100), 'y'.repeat(200), 'z'.repeat(70_000), 'Привет, мир! 😀'.repeat(500)];
    for (const text of texts) {
      for (const aid of [61, 62]) {
        const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: text } });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
    }
    const b = await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'é'.repeat(40_000) } });
    assert.equal(b.status, 200);
    for (const t of [alone, twinA, twinB]) {
      await t.next((f) => f.STREAM === '*');
      assert.deepEqual(t.notifications().map((f) => f.TEXT), [...texts, 'é'.repeat(40_000)]);
      t.send({ TYPE: 'RESPONSE', SEQ: t.notifications().at(-1)!.SEQ, STREAM: '*' });
      t.close();
    }
  });
});

describe('a tab that stops reading', () => {
  test('is closed as a slow consumer once its unsent backlog passes maxBufferedBytes, frames written whole included', async () => {
    const s = await startHerald({ maxBufferedBytes: 1 << 20, heartbeatMs: 60_000 });
    try {
      const stalled = await s.tab('admin', 71);
      const reading = await s.tab('admin', 72);
      for (const t of [stalled, reading]) await t.nextOfType('WELCOME');
      // The page froze: nothing more is read from its socket, so the server's writes pile up.
      const socket = (stalled.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      socket.pause();
      const big = 'x'.repeat(60_000);
      for (let round = 0; round < 10; round++) {
        const messages = Array.from({ length: 10 }, (_, i) => ({ to: { aids: [71, 72] }, message: { TYPE: 'MESSAGE', TEXT: big, N: round * 10 + i } }));
        const r = await s.api('POST', '/api/v1/send/batch', { messages, answer: 'summary' });
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      await reading.next((f) => f.N === 99);
      // 6 MB sent to it, well past 1 MB unsent and what the loopback socket holds: once it reads
      // again it finds what got through, then the close, with the reason.
      socket.resume();
      assert.equal((await stalled.closed).code, 4429);
      assert.ok(stalled.frames.some((f) => f.TYPE === 'close' && f.REASON === 'slow consumer'));
      assert.ok(stalled.notifications().length < 100, `${stalled.notifications().length} of 100 reached the stalled tab`);
      assert.equal((await s.api('GET', '/api/v1/online/admin/72')).body.tabs, 1);
      reading.close();
    } finally {
      await s.close();
    }
  });
});
