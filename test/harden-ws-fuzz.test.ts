/**
 * The browser endpoint fuzzed over a raw socket: random sequences of text and
 * binary frames, fragments, control frames, reserved bits and opcodes,
 * unmasked frames, frames past maxFrameBytes and past what `ws` reads at all,
 * invalid UTF-8. Whatever arrives, the server answers each tab with a
 * documented close code or keeps it open and answering, never crashes, and
 * never leaves a closed tab in the Hub.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import * as ws from 'ws';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable };

const MAX_FRAME = 4096;

let s: TestServer;

before(async () => {
  s = await startHerald({ store: 'memory', maxFrameBytes: MAX_FRAME });
});

after(async () => {
  await s.close();
});

interface FrameSpec {
  fin: boolean;
  /** RSV1–3 as three bits (0 in every valid frame: Herald negotiates no extension). */
  rsv: number;
  opcode: number;
  payload: Buffer;
  masked: boolean;
  /** A length claimed in the header, with no payload sent after it (a frame too large to read). */
  claimedLength?: number;
}

/** One client frame on the wire (RFC 6455 §5.2). */
function encode(f: FrameSpec): Buffer {
  const len = f.claimedLength ?? f.payload.length;
  const head: number[] = [(f.fin ? 0x80 : 0) | (f.rsv << 4) | f.opcode];
  const maskBit = f.masked ? 0x80 : 0;
  if (len < 126) head.push(maskBit | len);
  else if (len < 65536) head.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    head.push(maskBit | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(len));
    head.push(...big);
  }
  if (f.claimedLength !== undefined) return Buffer.from(head);
  if (!f.masked) return Buffer.concat([Buffer.from(head), f.payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(f.payload);
  for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from(head), mask, body]);
}

const text = (payload: Buffer | string, fin = true, opcode = 1): FrameSpec => ({ fin, rsv: 0, opcode, payload: Buffer.from(payload), masked: true });

/** A frame, and whether it alone keeps a tab open and well (a complete, small, well-formed frame). */
type Step = { frames: readonly FrameSpec[]; benign: boolean };

const utf8 = fc.string({ maxLength: 200, unit: 'grapheme' });
const jsonish = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.constantFrom('{"TYPE":"PING"}', '{"TYPE":"PONG"}', '{"TYPE":"RESPONSE","SEQ":1}', '{"TYPE":"RESPONCE","RESPONCE":"RECEIVED"}', '{"TYPE":"RESPONSE","SEQ":-1,"EPOCH":5}',
    '{"TYPE":"COMMAND_CANCEL","COMMAND_ID":"x"}', '{"TYPE":"RESUME"}', '{"TYPE":"RESUME","SEQ":"a"}', '{"TYPE":"NOPE"}', '{"TYPE":null}', '[]', 'null', '{"__proto__":{"TYPE":"PING"}}'),
  utf8,
);
/** Bytes that are not UTF-8: a lone continuation byte, an overlong form, a surrogate, a cut sequence. */
const badUtf8 = fc.tuple(utf8, fc.constantFrom([0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xff], [0xf4, 0x90, 0x80, 0x80])).map(([t, bad]) => Buffer.concat([Buffer.from(t), Buffer.from(bad)]));

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: jsonish.map((t) => ({ frames: [text(t)], benign: true })) },
  { weight: 2, arbitrary: badUtf8.map((b) => ({ frames: [text(b)], benign: false })) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 100 }).map((b) => ({ frames: [text(Buffer.from(b), true, 2)], benign: false })) },
  // A message in fragments, well-formed: benign. Its text split anywhere, even inside a character.
  {
    weight: 3,
    arbitrary: fc.tuple(jsonish, fc.array(fc.nat(), { minLength: 1, maxLength: 4 })).map(([t, cuts]) => {
      const bytes = Buffer.from(t);
      const at = [...new Set(cuts.map((c) => (bytes.length === 0 ? 0 : c % bytes.length)))].sort((a, b) => a - b);
      const parts: Buffer[] = [];
      let prev = 0;
      for (const c of at) {
        parts.push(bytes.subarray(prev, c));
        prev = c;
      }
      parts.push(bytes.subarray(prev));
      return { frames: parts.map((p, i) => text(p, i === parts.length - 1, i === 0 ? 1 : 0)), benign: true };
    }),
  },
  // A ping or pong in the middle of a fragmented message (allowed, RFC 6455 §5.4).
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 125 }).map((b) => ({ frames: [text('{"TYPE":', false), { ...text(Buffer.from(b)), opcode: 9 }, text('"PING"}', true, 0)], benign: true })) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(9, 10), fc.uint8Array({ maxLength: 125 })).map(([op, b]) => ({ frames: [{ ...text(Buffer.from(b)), opcode: op }], benign: true })) },
  // Broken framing: each is a protocol error.
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 126, maxLength: 200 }).map((b) => ({ frames: [{ ...text(Buffer.from(b)), opcode: 9 }], benign: false })) },
  { weight: 1, arbitrary: fc.constantFrom(8, 9, 10).map((op) => ({ frames: [{ ...text('x', false), opcode: op }], benign: false })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 7 }).map((rsv) => ({ frames: [{ ...text('{"TYPE":"PING"}'), rsv }], benign: false })) },
  { weight: 1, arbitrary: fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15).map((op) => ({ frames: [{ ...text('x'), opcode: op }], benign: false })) },
  { weight: 1, arbitrary: utf8.map((t) => ({ frames: [{ ...text(t), masked: false }], benign: false })) },
  { weight: 1, arbitrary: fc.constant({ frames: [text('x', true, 0)], benign: false }) },
  { weight: 1, arbitrary: fc.constant({ frames: [text('{"TYPE":', false)], benign: false }) },
  // Too large: past maxFrameBytes (4413), past what ws reads (1009, only a header sent).
  { weight: 1, arbitrary: fc.integer({ min: MAX_FRAME + 1, max: 2 * MAX_FRAME }).map((n) => ({ frames: [text('x'.repeat(n))], benign: false })) },
  { weight: 1, arbitrary: fc.constantFrom(2 * MAX_FRAME + 1, 1 << 20, 2 ** 40, 2 ** 53).map((n) => ({ frames: [{ ...text(''), claimedLength: n }], benign: false })) },
  // A fragmented message whose pieces together pass maxFrameBytes.
  { weight: 1, arbitrary: fc.constant({ frames: [text('x'.repeat(MAX_FRAME), false), text('x'.repeat(MAX_FRAME), true, 0)], benign: false }) },
  // The client's own close, with a code and reason of any kind.
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.string({ maxLength: 30 })).map(([code, reason]) => {
      const p = Buffer.alloc(2);
      p.writeUInt16BE(code);
      return { frames: [{ ...text(Buffer.concat([p, Buffer.from(reason)])), opcode: 8 }], benign: false };
    }),
  },
);

/** Close codes the server may end a fuzzed tab with (PROTOCOL.md, close-codes.ts), besides echoing the client's own. */
const DOCUMENTED = new Set([1000, 1002, 1003, 1007, 1009, 4413, 4429]);

interface Outcome {
  pong: boolean;
  close: { code: number; reason: string } | undefined;
  ended: boolean;
}

/** Opens an authenticated tab on a raw socket, sends the frames and a PING, and waits for a PONG or the end. */
async function run(steps: Step[], id: number): Promise<Outcome> {
  const token = await s.token('admin', id);
  const { port } = new URL(s.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const outcome: Outcome = { pong: false, close: undefined, ended: false };
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  receiver.on('message', (data: Buffer) => {
    if (data.toString() === '{"TYPE":"PONG","DATA":"RESPONSE"}') outcome.pong = true;
  });
  receiver.on('conclude', (code: number, reason: Buffer) => {
    outcome.close = { code, reason: reason.toString() };
  });
  receiver.on('error', (err: Error) => assert.fail(`the server sent a bad frame: ${err.message}`));
  let head: Buffer | undefined = Buffer.alloc(0);
  const upgraded = new Promise<void>((resolve, reject) => {
    socket.on('data', (b: Buffer) => {
      if (head === undefined) {
        receiver.write(b);
        return;
      }
      head = Buffer.concat([head, b]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, end).toString('latin1');
      const rest = head.subarray(end + 4);
      head = undefined;
      if (!status.startsWith('HTTP/1.1 101')) reject(new Error(status));
      else resolve();
      receiver.write(rest);
    });
  });
  socket.on('close', () => {
    outcome.ended = true;
  });
  socket.write(`GET /ws/admin?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  await upgraded;
  for (const st of steps) for (const f of st.frames) if (!socket.destroyed) socket.write(encode(f));
  if (!socket.destroyed) socket.write(encode(text('{"TYPE":"PING"}')));
  try {
    await until(() => outcome.pong || outcome.close !== undefined || outcome.ended, 5000, 'a PONG or the end of the tab');
  } finally {
    socket.destroy();
  }
  return outcome;
}

describe('browser endpoint fuzzing', () => {
  test('random frame sequences: a documented close code or an open, answering tab; never a crash or a tab left in the Hub', async () => {
    let id = 1000;
    const seen = new Map<string, number>();
    await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
      const me = { kind: 'admin' as const, id: ++id };
      const o = await run(steps, me.id);
      const clientClose = steps.flatMap((st) => st.frames).find((f) => f.opcode === 8 && f.fin && f.rsv === 0 && f.masked && f.payload.length >= 2);
      const what = `${JSON.stringify(o)} after ${JSON.stringify(steps.map((st) => st.frames.map((f) => ({ ...f, payload: f.payload.subarray(0, 40).toString('latin1') }))))}`;
      if (o.close) {
        const echoed = clientClose !== undefined && o.close.code === clientClose.payload.readUInt16BE(0);
        assert.ok(DOCUMENTED.has(o.close.code) || echoed, `close code ${o.close.code}: ${what}`);
        seen.set(String(o.close.code), (seen.get(String(o.close.code)) ?? 0) + 1);
      } else if (o.pong) {
        seen.set('open', (seen.get('open') ?? 0) + 1);
      } else {
        // ws answers every protocol error with a close frame: a tab is never just cut.
        assert.fail(`the tab ended without a close frame or an answer: ${what}`);
      }
      if (steps.every((st) => st.benign)) assert.ok(o.pong && !o.close, `a well-formed sequence closed the tab: ${what}`);
      // Gone from the Hub, and from the gateway, once the socket is.
      await until(() => s.herald.hub.count(me) === 0 && s.herald.gateway.connections.size === 0, 5000, `tab of admin ${me.id} gone from the Hub: ${what}`);
    }), { numRuns: 250 });
    if (process.env.HERALD_FUZZ_STATS) console.log(JSON.stringify([...seen]));
    // The fuzzing reached both outcomes and several codes.
    assert.ok((seen.get('open') ?? 0) > 10, JSON.stringify([...seen]));
    for (const code of ['1002', '1007', '4413']) assert.ok((seen.get(code) ?? 0) > 0, `no run ended with ${code}: ${JSON.stringify([...seen])}`);
    // The server still works.
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    tab.close();
  });
});
