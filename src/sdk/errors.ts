/**
 * The SDK's one error type. A failure the server answered carries the
 * server's own `HERALD_ERR_*` code and HTTP status (docs/http-api.md); a
 * failure on the way there carries one of the SDK's client-side codes, with
 * status 0, except an answer that is not Herald's (`HERALD_ERR_BAD_RESPONSE`),
 * which keeps the status it came with. Callers branch on `code`, never on
 * the message.
 */

/** Codes the SDK produces itself: no answer came back, the answer was not Herald's, or nothing was sent. */
export const ClientErrorCodes = {
  /** No connection was made (refused, DNS, TLS): nothing was sent, so the request did not run. Retry later. */
  HERALD_ERR_UNREACHABLE: 'the Herald server could not be reached',
  /**
   * The connection ended after the request was sent and before the answer
   * came (reset, closed by a server that is restarting): the server may have
   * carried it out. Sending it again is safe only for a request that can run
   * twice (a read, a send with an idempotency key that the server stores).
   */
  HERALD_ERR_CONNECTION_LOST: 'the connection to the Herald server ended before its answer',
  /**
   * The server closed the connection while the request's body was still
   * being written (EPIPE): it never had the whole request, so it did not
   * carry it out. Herald does so when it refuses a request before reading
   * its body (a wrong API token, 401; a wrong URL, 404; a body over its
   * `maxBodyBytes`, 413), and fetch may report only the failed write; a
   * kept-alive connection the server was closing ends so too. The SDK sends
   * such a request again once (within `retryForMs`); this is the repeat's
   * failure too.
   */
  HERALD_ERR_REQUEST_CUT: 'the Herald server closed the connection before it had taken the whole request',
  /**
   * No answer within the SDK's `timeoutMs`. Not the server's `HERALD_ERR_REQUEST_TIMEOUT`
   * (status 408: the server did not receive the request whole in time).
   */
  HERALD_ERR_TIMEOUT: 'the Herald server did not answer in time',
  /** The server answered something that is not Herald's JSON (a proxy's error page, say), or a redirect (never followed). */
  HERALD_ERR_BAD_RESPONSE: 'the server answered something that is not Herald JSON',
  /** The call's arguments are wrong; nothing was sent. */
  HERALD_ERR_BAD_ARGUMENT: 'invalid argument',
} as const;

export type ClientErrorCode = keyof typeof ClientErrorCodes;

/**
 * A server code (`HERALD_ERR_UNAUTHORIZED`, `HERALD_ERR_VALIDATION`, …) or a
 * client-side one. Typed as an open string so that codes a newer server adds
 * still arrive intact.
 */
export type HeraldErrorCode = ClientErrorCode | `HERALD_ERR_${string}`;

export class HeraldSdkError extends Error {
  /** `HERALD_ERR_*`: the server's code, or one of {@link ClientErrorCodes}. */
  readonly code: HeraldErrorCode;
  /** The HTTP status of the server's answer; 0 when no answer came. */
  readonly status: number;
  /** The server's `details`, when it gave any: on a 404 of a lookup, `{ resource: 'message' }` (or `'command'`), which a route that does not exist never gives. */
  readonly details: unknown;
  /**
   * When the answer carried `Retry-After` (seconds), that wait in ms, whoever
   * answered (a proxy's 503 or 429 page too). Herald sends it with the 503
   * HERALD_ERR_SHUTTING_DOWN by which a stopping server refuses a request
   * before any route has run (docs/sdk.md, Retries). The
   * SDK waits at least that long before it asks again, and the error it
   * throws when it gives up still carries it.
   */
  readonly retryAfterMs: number | undefined;

  constructor(code: HeraldErrorCode, message: string, status = 0, details?: unknown, options?: { cause?: unknown; retryAfterMs?: number | undefined }) {
    super(message, options);
    this.name = 'HeraldSdkError';
    this.code = code;
    this.status = status;
    this.details = details;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export function isHeraldSdkError(e: unknown): e is HeraldSdkError {
  return e instanceof HeraldSdkError;
}

/** The most of a caller's value an error message echoes, in characters. */
const SHOWN_VALUE_CHARS = 120;

/**
 * A value a caller gave, as an error message shows it. A string as JSON, so
 * that `"1"` given for the number 1 reads as what it is (`String` showed both
 * as `1`), cut to {@link SHOWN_VALUE_CHARS} characters, so that a megabyte
 * given by mistake does not end up whole in a log; other primitives as
 * themselves. Of an object, array or function only what it is: one given in
 * the wrong place is often a config or a session, whose secrets the message
 * (and the caller's log) must not carry.
 */
export function shownValue(value: unknown): string {
  switch (typeof value) {
    case 'string': {
      const text = JSON.stringify(value);
      return text.length > SHOWN_VALUE_CHARS ? `${text.slice(0, SHOWN_VALUE_CHARS)}…` : text;
    }
    case 'bigint':
      return `${value}n`;
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    case 'object':
      if (value === null) return 'null';
      return Array.isArray(value) ? `an array of ${value.length}` : 'an object';
    default:
      // number (NaN and Infinity as such: JSON has them as null), boolean, undefined
      return String(value);
  }
}
