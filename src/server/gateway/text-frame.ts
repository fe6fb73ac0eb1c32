/**
 * Whole WebSocket text frames as the server sends them (RFC 6455 §5.2: FIN
 * set, opcode 1, no mask), header and payload in one Buffer, written to a
 * tab's socket in one call. `ws.send` builds a header for every send and
 * writes header and payload as two pieces through the stream's cork and
 * writev path; a notification that goes to many tabs (a broadcast) is framed
 * here once and the same bytes go to every socket.
 */

/** The frame of a text payload (a string, or its UTF-8 bytes). */
export function textFrame(payload: string | Buffer): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81; // FIN, text
  if (head === 2) {
    frame[1] = length;
  } else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  if (typeof payload === 'string') frame.write(payload, head);
  else payload.copy(frame, head);
  return frame;
}

/**
 * A text frame for one socket write. For an ASCII payload (nearly every
 * notification) it is a string — the header as characters 0–255, then the
 * payload — that the socket writes as latin1, one byte a character: node
 * encodes it straight into the write, and no Buffer is made for it. Any
 * other payload gets the Buffer `textFrame` builds.
 */
export function socketTextFrame(payload: string): Buffer | string {
  const length = Buffer.byteLength(payload);
  if (length !== payload.length) return textFrame(payload);
  if (length < 126) return String.fromCharCode(0x81, length) + payload;
  if (length < 65536) return String.fromCharCode(0x81, 126, length >>> 8, length & 0xff) + payload;
  return textFrame(payload);
}

let lastPayload: Buffer | undefined;
let lastFrame: Buffer | undefined;

/**
 * The frame of a payload that many tabs share: the Hub hands every tab the
 * same Buffer one after another, so remembering the last one frames it once.
 */
export function sharedTextFrame(payload: Buffer): Buffer {
  if (payload !== lastPayload) {
    lastFrame = textFrame(payload);
    lastPayload = payload;
  }
  return lastFrame!;
}
