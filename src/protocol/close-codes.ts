/**
 * WebSocket close codes Herald uses. Application codes live in the 4000–4999
 * range (RFC 6455 §7.4.2) and mirror the HTTP status of the same meaning, so
 * that a client can tell a rejected credential (stop retrying) from a server
 * that is unavailable (retry with backoff).
 */
export const CloseCode = {
  /** RFC 6455: normal closure (client asked, or logout). */
  NORMAL: 1000,
  /** RFC 6455: the server is going away (shutdown). Clients reconnect. */
  GOING_AWAY: 1001,
  /** RFC 6455: a frame type we do not accept (binary). */
  UNSUPPORTED_DATA: 1003,
  /** RFC 6455: message too big: `ws` closes with this itself, past twice maxFrameBytes (gateway.ts's payloadCeiling). */
  MESSAGE_TOO_BIG: 1009,
  /** RFC 6455: unexpected server condition. Clients reconnect. */
  INTERNAL_ERROR: 1011,
  /** The credential no longer admits this person (session ended, token revoked). Do not retry. */
  UNAUTHORIZED: 4401,
  /**
   * The credential that admitted this tab has expired (a signed token past its
   * `exp`). Not terminal: reconnect with a fresh credential (the browser
   * library calls its token function again); a stale one is then refused (401).
   */
  CREDENTIAL_EXPIRED: 4419,
  /** Forbidden (origin, policy, kicked by an operator). Do not retry. */
  FORBIDDEN: 4403,
  /** The tab stopped answering heartbeats. */
  TIMEOUT: 4408,
  /** A frame exceeded maxFrameBytes (up to twice it; past that `ws` closes with MESSAGE_TOO_BIG). */
  TOO_LARGE: 4413,
  /** Too many frames or too many errors in a short time. */
  TOO_MANY: 4429,
  /** The server is overloaded or a dependency is down; try again later. */
  TRY_AGAIN: 4503,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Codes after which a client must stop reconnecting and ask for a new credential. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN]);

/** The reason strings Herald sends in `{"TYPE":"close","REASON":...}` and in the close frame. */
export const CloseReason = {
  CLIENT_REQUEST: 'by client request',
  SHUTDOWN: 'server shutdown',
  HEARTBEAT_TIMEOUT: 'heartbeat timeout',
  SESSION_ENDED: 'session ended',
  CREDENTIAL_EXPIRED: 'credential expired',
  TOO_LARGE: 'frame too large',
  TOO_MANY: 'too many frames',
  BINARY: 'binary frames are not accepted',
  SLOW_CONSUMER: 'slow consumer',
} as const;
