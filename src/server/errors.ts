/**
 * Every error Herald reports to a client or operator has a stable string
 * code and, for the HTTP API, a status. The README's error table lists them
 * all (a test keeps the two in step).
 */
export const ErrorCodes = {
  HERALD_ERR_BAD_REQUEST: { status: 400, message: 'the request is malformed' },
  HERALD_ERR_VALIDATION: { status: 400, message: 'the request body does not match the schema' },
  HERALD_ERR_UNAUTHORIZED: { status: 401, message: 'missing or invalid credentials' },
  HERALD_ERR_FORBIDDEN: { status: 403, message: 'not allowed' },
  HERALD_ERR_ORIGIN: { status: 403, message: 'origin not allowed' },
  HERALD_ERR_NOT_FOUND: { status: 404, message: 'no such resource' },
  HERALD_ERR_REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive whole in time' },
  HERALD_ERR_CONFLICT: { status: 409, message: 'conflicting state' },
  HERALD_ERR_TOO_LARGE: { status: 413, message: 'the body is too large' },
  HERALD_ERR_EXPECTATION_FAILED: { status: 417, message: 'the Expect header cannot be met' },
  HERALD_ERR_UPGRADE_REQUIRED: { status: 426, message: 'this endpoint takes WebSocket upgrades only' },
  HERALD_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'the request headers are too large' },
  HERALD_ERR_RATE_LIMITED: { status: 429, message: 'too many requests' },
  HERALD_ERR_QUEUE_FULL: { status: 429, message: 'the queue is full' },
  HERALD_ERR_TOO_MANY_TABS: { status: 429, message: 'this person has too many tabs open' },
  HERALD_ERR_COMMAND_FORBIDDEN: { status: 403, message: 'the program is not allowed' },
  HERALD_ERR_COMMAND_NOT_FOUND: { status: 422, message: 'the allowed program is not installed' },
  HERALD_ERR_COMMANDS_DISABLED: { status: 501, message: 'commands are not enabled' },
  HERALD_ERR_UNAVAILABLE: { status: 503, message: 'a dependency is unavailable, try again later' },
  HERALD_ERR_SHUTTING_DOWN: { status: 503, message: 'the server is shutting down' },
  HERALD_ERR_INTERNAL: { status: 500, message: 'internal error' },
  HERALD_ERR_CONFIG: { status: 500, message: 'invalid configuration' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    super(message ?? ErrorCodes[code].message);
    this.name = 'HeraldError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.details = details;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: unknown } } {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

export function isHeraldError(e: unknown): e is HeraldError {
  return e instanceof HeraldError;
}
