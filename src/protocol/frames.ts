/**
 * The browser protocol (docs/browser.md, "Connection"): JSON text frames, one object with a
 * `TYPE` each. Shared by the server and the browser library, so it imports
 * neither Node nor the DOM.
 */
import type { PrincipalKind } from './principal.js';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from './json-depth.js';
import { quoted } from './text-cut.js';

/** A notification object as the backend sent it. Unknown fields pass through untouched. */
export interface NotificationObject {
  TYPE: string;
  TITLE?: unknown;
  TEXT?: unknown;
  /** `"text"`: TEXT is plain text, shown as written (a command's default final notification has it); otherwise TEXT may hold a little HTML. */
  FORMAT?: unknown;
  [field: string]: unknown;
}

/** What a backend may send: an object with a TYPE, or (as the old daemon allowed) a plain string. */
export type NotificationPayload = NotificationObject | string;

/** Fields Herald adds to a tracked notification (docs/delivery.md, "Streams, SEQ and EPOCH"). */
export interface DeliveryFields {
  /** Strictly increasing per stream. */
  SEQ: number;
  /** Names the stream's history; changes only if that history was lost. */
  EPOCH: string;
  /**
   * Which stream: absent for the person's own stream, `"*"` for the broadcast
   * stream of their kind (every admin tab follows `admin:*`). A broadcast is
   * stored and framed once, not once per recipient.
   */
  STREAM?: typeof BROADCAST_STREAM;
}

/** The name of the broadcast stream in frames. */
export const BROADCAST_STREAM = '*';

/** A position in one stream: the last SEQ seen and the EPOCH it belonged to. */
export interface StreamCursor {
  SEQ: number;
  EPOCH: string;
}

// ---- server → browser ------------------------------------------------------

export interface WelcomeFrame {
  TYPE: 'WELCOME';
  KIND: PrincipalKind;
  ID: number;
  /** This tab's session id on the server, a random UUID: the `tab` of its log lines (for support). */
  SESSION: string;
  /** How often the server PINGs, in milliseconds. A tab that hears nothing for ~2.5× this may assume the link is dead. */
  HEARTBEAT: number;
  /** The last SEQ of this person's stream and its EPOCH (SEQ 0 when empty). */
  SEQ: number;
  EPOCH: string;
  /**
   * Where this tab is replayed from when it gave no cursor (a new tab): what
   * follows this SEQ, the highest one acknowledged (or the last one dropped,
   * when that is higher). A tab without a cursor takes it as its cursor, so
   * that a reconnect before its first notification resumes from here and
   * misses nothing another tab acknowledged meanwhile. Absent from servers
   * before it.
   */
  ACKED?: number;
  /**
   * The least mean wait, in ms, the server asks this tab to leave between
   * acks of this person's stream: tabs open on the node (rounded up to a
   * power of two, so that it does not give their number away) / `acksPerSecond`,
   * so that together they ack at most a few hundred times a second however
   * many there are (0: no pacing). The browser library waits the longer of
   * this and its own delay.
   */
  ACK_MS: number;
  /** The same for the broadcast stream this tab follows, and how often to ack it. */
  BROADCAST: BroadcastCursor;
}

/** WELCOME's position of the broadcast stream, with the ack pace the server asks for. */
export interface BroadcastCursor extends StreamCursor {
  /** The same as WELCOME's own `ACKED`, for the broadcast stream (whose acknowledged SEQ all tabs of the kind share). */
  ACKED?: number;
  /**
   * The mean wait, in ms, the server asks this tab to leave before acking
   * the broadcast stream. One tab's ack marks a broadcast read for every tab
   * of its kind, so the server scales this with how many are open (rounded
   * up to a power of two): together they ack a few dozen times a second, not
   * once per tab per broadcast.
   */
  ACK_MS: number;
}

/**
 * The ack waits the server asks for now, for a tab that acked while it was
 * told waits half as long or twice as long (WELCOME's `ACK_MS` and
 * `BROADCAST.ACK_MS`, set by how many tabs were open when it connected).
 * It comes just before the next frame to that tab, in the same write. Only
 * tabs that ack with a SEQ (the browser library) get it.
 */
export interface PaceFrame {
  TYPE: 'PACE';
  ACK_MS: number;
  BROADCAST: { ACK_MS: number };
}

export interface PingFrame { TYPE: 'PING' }
export interface PongFrame { TYPE: 'PONG'; DATA?: 'RESPONSE' }
/** Lower-case `close`, exactly as the old daemon wrote it. */
export interface CloseNoticeFrame { TYPE: 'close'; REASON: string; CODE?: number }
export interface ErrorFrame { TYPE: 'ERROR'; ERROR: string; MESSAGE: string }

/**
 * Sent instead of a silent partial replay: the tab asked to resume from a
 * point the server cannot replay from (the epoch changed, or the tab is
 * further behind than the retained history). What follows starts at `SEQ`+1.
 */
export interface ResetFrame {
  TYPE: 'RESET';
  /** Absent for the person's own stream, `"*"` for the broadcast stream. */
  STREAM?: typeof BROADCAST_STREAM;
  EPOCH: string;
  /** Replay continues after this SEQ. */
  SEQ: number;
  REASON: 'epoch changed' | 'too far behind';
}

// ---- browser → server ------------------------------------------------------

export type ClientFrame =
  | { TYPE: 'PING' }
  | { TYPE: 'PONG' }
  /** RESPONSE, or the old script's misspelling RESPONCE; with SEQ it acknowledges up to SEQ; without, the oldest frame the old script acks (Connection's #sentOrder). */
  /** EPOCH, when given, names the stream history SEQ belongs to: an ack from an older epoch is ignored. */
  | { TYPE: 'RESPONSE'; SEQ?: number; STREAM?: typeof BROADCAST_STREAM; EPOCH?: string }
  /** Also the old script's `{"type":"close_request"}` (lower-case key, any case of value). */
  | { TYPE: 'CLOSE_REQUEST' }
  /** Resume after a reconnect: replay what came after these cursors. */
  | { TYPE: 'RESUME'; SEQ: number; EPOCH?: string; BROADCAST?: { SEQ: number; EPOCH?: string } }
  | { TYPE: 'COMMAND_CANCEL'; COMMAND_ID: string };

export type ClientFrameType = ClientFrame['TYPE'];

/** Error codes carried in `ErrorFrame.ERROR`. */
export const FrameError = {
  BAD_JSON: 'BAD_JSON',
  NOT_AN_OBJECT: 'NOT_AN_OBJECT',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  BAD_FIELD: 'BAD_FIELD',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  /** Herald cannot answer now (a command only the audit trail knows, while another process locks the file): try again. */
  UNAVAILABLE: 'UNAVAILABLE',
} as const;

export type ParsedClientFrame = { ok: true; frame: ClientFrame } | { ok: false; error: ErrorFrame };

function fail(code: string, message: string): ParsedClientFrame {
  return { ok: false, error: { TYPE: 'ERROR', ERROR: code, MESSAGE: message } };
}

function isSeq(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * The old browser script (the panel's websocket_client.js) asks to close with
 * `{ "type" :  "close_request"}`, key and value in lower case: an unchanged
 * page's close must close the tab, not get an ERROR and keep it open. Only a
 * frame with no `TYPE` at all: one that has a TYPE is read by its TYPE.
 */
function isOldCloseRequest(obj: Record<string, unknown>): boolean {
  return obj.TYPE === undefined && typeof obj.type === 'string' && obj.type.toUpperCase() === 'CLOSE_REQUEST';
}

/** Parses and validates one text frame from a browser. Never throws. */
export function parseClientFrame(text: string): ParsedClientFrame {
  // Before JSON.parse, which takes about 0.75 µs a level: a tab's 64 KB frame of `[` held the
  // event loop for 25 ms, and a valid PING wrapped around one is not even an error.
  if (jsonNestsDeeperThan(text, MAX_JSON_DEPTH)) return fail(FrameError.BAD_JSON, `frame is nested deeper than ${MAX_JSON_DEPTH} levels`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail(FrameError.BAD_JSON, 'frame is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail(FrameError.NOT_AN_OBJECT, 'frame must be a JSON object with a TYPE');
  }
  const obj = value as Record<string, unknown>;
  switch (obj.TYPE) {
    case 'PING':
      return { ok: true, frame: { TYPE: 'PING' } };
    case 'PONG':
      return { ok: true, frame: { TYPE: 'PONG' } };
    case 'RESPONSE':
    case 'RESPONCE': {
      if (obj.SEQ === undefined) return { ok: true, frame: { TYPE: 'RESPONSE' } };
      if (!isSeq(obj.SEQ)) return fail(FrameError.BAD_FIELD, 'SEQ must be a non-negative integer');
      if (obj.STREAM !== undefined && obj.STREAM !== BROADCAST_STREAM) return fail(FrameError.BAD_FIELD, 'STREAM must be "*" or absent');
      if (obj.EPOCH !== undefined && typeof obj.EPOCH !== 'string') return fail(FrameError.BAD_FIELD, 'EPOCH must be a string');
      const ack: Extract<ClientFrame, { TYPE: 'RESPONSE' }> = { TYPE: 'RESPONSE', SEQ: obj.SEQ };
      if (obj.STREAM !== undefined) ack.STREAM = BROADCAST_STREAM;
      if (obj.EPOCH !== undefined) ack.EPOCH = obj.EPOCH;
      return { ok: true, frame: ack };
    }
    case 'CLOSE_REQUEST':
      return { ok: true, frame: { TYPE: 'CLOSE_REQUEST' } };
    case 'RESUME': {
      if (!isSeq(obj.SEQ)) return fail(FrameError.BAD_FIELD, 'RESUME needs SEQ, a non-negative integer');
      if (obj.EPOCH !== undefined && typeof obj.EPOCH !== 'string') return fail(FrameError.BAD_FIELD, 'EPOCH must be a string');
      const frame: Extract<ClientFrame, { TYPE: 'RESUME' }> = { TYPE: 'RESUME', SEQ: obj.SEQ };
      if (obj.EPOCH !== undefined) frame.EPOCH = obj.EPOCH;
      if (obj.BROADCAST !== undefined) {
        const b = obj.BROADCAST as Record<string, unknown> | null;
        if (typeof b !== 'object' || b === null || !isSeq(b.SEQ) || (b.EPOCH !== undefined && typeof b.EPOCH !== 'string')) {
          return fail(FrameError.BAD_FIELD, 'BROADCAST must be {SEQ, EPOCH}');
        }
        frame.BROADCAST = typeof b.EPOCH === 'string' ? { SEQ: b.SEQ, EPOCH: b.EPOCH } : { SEQ: b.SEQ };
      }
      return { ok: true, frame };
    }
    case 'COMMAND_CANCEL': {
      if (typeof obj.COMMAND_ID !== 'string' || obj.COMMAND_ID === '') return fail(FrameError.BAD_FIELD, 'COMMAND_CANCEL needs COMMAND_ID');
      return { ok: true, frame: { TYPE: 'COMMAND_CANCEL', COMMAND_ID: obj.COMMAND_ID } };
    }
    default:
      if (isOldCloseRequest(obj)) return { ok: true, frame: { TYPE: 'CLOSE_REQUEST' } };
      return fail(FrameError.UNKNOWN_TYPE, typeof obj.TYPE === 'string' ? `unknown TYPE ${quoted(obj.TYPE, 64)}` : 'frame has no TYPE');
  }
}
