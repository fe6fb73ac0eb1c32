/**
 * The SDK's one way onto the network: global `fetch` with a deadline (a
 * timer that ends with the answer), the bearer token, JSON both ways, and
 * every failure turned into a {@link HeraldSdkError} with a `HERALD_ERR_*` code.
 */
import { HeraldSdkError, type HeraldErrorCode } from './errors.js';

export interface HttpTransportOptions {
  /** Base URL of the Herald server, e.g. `http://127.0.0.1:19443` (a path prefix is kept). */
  url: string;
  apiToken: string;
  /** Deadline of each request, in milliseconds (at most {@link MAX_TIMEOUT_MS}). */
  timeoutMs: number;
  /** Sent as User-Agent, so the server's logs tell the SDK (which the CLI uses too) from other callers. */
  userAgent: string;
}

/**
 * The longest deadline a Node timer holds (2^31 - 1 ms, about 24.8 days):
 * past it Node fires the timer after 1 ms instead, so every request would
 * time out at once.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export interface HttpAnswer {
  status: number;
  /** The parsed JSON body, or undefined for an empty one (204). */
  body: unknown;
}

export class HttpTransport {
  readonly #base: string;
  readonly #apiToken: string;
  readonly #timeoutMs: number;
  readonly #userAgent: string;

  constructor(options: HttpTransportOptions) {
    this.#base = `${options.url.replace(/\/+$/, '')}/api/v1`;
    this.#apiToken = options.apiToken;
    this.#timeoutMs = options.timeoutMs;
    this.#userAgent = options.userAgent;
  }

  /**
   * Sends one request. Resolves with the status and parsed body for 2xx and,
   * when `allow` lists it, for that status too (404 for "no such message");
   * every other outcome rejects with a HeraldSdkError. `holdMs`: how long
   * the server may hold the answer on purpose (a long poll), added to the
   * deadline so that the server's wait is not taken for silence.
   */
  async request(method: 'GET' | 'POST', path: string, body?: unknown, allow: readonly number[] = [], holdMs = 0): Promise<HttpAnswer> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.#apiToken}`,
      accept: 'application/json',
      'user-agent': this.#userAgent,
    };
    // redirect 'manual': fetch would follow a 301/302 by turning the POST into
    // a GET without its body, and drop the API token on the way to another
    // origin (http → https), so the error would say "no route" or "wrong API
    // token" when the url is what is wrong. A redirect is reported instead.
    const controller = new AbortController();
    const init: RequestInit = { method, headers, signal: controller.signal, redirect: 'manual' };
    const url = this.#base + path;
    if (body !== undefined) {
      headers['content-type'] = 'application/json; charset=utf-8';
      try {
        init.body = JSON.stringify(body);
      } catch (e) {
        // A BigInt or a cycle in a notification: the caller's mistake, and nothing was sent.
        throw new HeraldSdkError('HERALD_ERR_BAD_ARGUMENT', `${method} ${url}: the request cannot be sent as JSON: ${(e as Error).message}`, 0, undefined, { cause: e });
      }
    }
    // Not AbortSignal.timeout(): its timer (and the signal it holds) lives
    // for the whole timeoutMs after the answer came, so a backend sending at
    // rate r keeps r × timeoutMs of them; and it throws a RangeError for a
    // deadline that is not a whole number of milliseconds (0.1 * 3 * 1000).
    // A timer of our own, started once there is something to send, is
    // cleared as soon as the answer is in.
    const deadlineMs = Math.min(this.#timeoutMs + (Number.isFinite(holdMs) && holdMs > 0 ? holdMs : 0), MAX_TIMEOUT_MS);
    const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${deadlineMs} ms`, 'TimeoutError')), deadlineMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, init);
      // The deadline covers the body too: a server that sends headers and then stalls still times out.
      text = await response.text();
    } catch (e) {
      throw networkError(e, method, url, deadlineMs);
    } finally {
      clearTimeout(timer);
    }
    if (response.status >= 300 && response.status < 400) {
      throw new HeraldSdkError(
        'HERALD_ERR_BAD_RESPONSE',
        `${method} ${url}: HTTP ${response.status} redirected to ${redirectTarget(response.headers.get('location'), url)}: set the SDK's url to the address Herald answers at`,
        response.status,
      );
    }
    let parsed: unknown;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', `${method} ${url}: HTTP ${response.status} with a body that is not JSON: ${text.slice(0, 120)}`, response.status);
      }
    }
    if (response.ok || allow.includes(response.status)) return { status: response.status, body: parsed };
    throw serverError(parsed, response.status, method, url);
  }
}

/** Where a redirect points, resolved against the request's URL (a relative Location is allowed, RFC 9110 §10.2.2). */
function redirectTarget(location: string | null, url: string): string {
  if (location === null) return '(no Location header)';
  try {
    return new URL(location, url).href;
  } catch {
    return JSON.stringify(location.slice(0, 200));
  }
}

/**
 * Socket errors that come before a request is sent: the connection was never
 * made, so the server did not see the request. Any other failure (a reset,
 * "other side closed" on a kept-alive connection the server has just closed)
 * may come after the server received the request, and is reported as such.
 */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function notConnected(code: string | undefined): boolean {
  if (code === undefined) return false;
  // TLS refused the server (a certificate error): nothing was sent either.
  return NOT_CONNECTED.has(code) || code.startsWith('ERR_TLS_') || code.includes('CERT') || code.includes('SSL');
}

function networkError(e: unknown, method: string, url: string, timeoutMs: number): HeraldSdkError {
  const name = (e as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new HeraldSdkError('HERALD_ERR_TIMEOUT', `${method} ${url}: no answer within ${timeoutMs} ms`, 0, undefined, { cause: e });
  }
  // fetch wraps the socket error (ECONNREFUSED…) in `cause`; name it, it is what an operator needs.
  const cause = (e as { cause?: { code?: string; message?: string } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const text = cause?.message ?? (e as Error | null)?.message ?? String(e);
  if (notConnected(code)) return new HeraldSdkError('HERALD_ERR_UNREACHABLE', `${method} ${url}: ${code ?? text}`, 0, undefined, { cause: e });
  const why = code === undefined || text.includes(code) ? text : `${code}: ${text}`;
  return new HeraldSdkError(
    'HERALD_ERR_CONNECTION_LOST',
    `${method} ${url}: the connection ended before the answer (${why}): the server may have carried the request out`,
    0, undefined, { cause: e },
  );
}

function serverError(body: unknown, status: number, method: string, url: string): HeraldSdkError {
  const err = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (err && typeof err.code === 'string' && err.code.startsWith('HERALD_ERR_')) {
    const message = typeof err.message === 'string' ? err.message : err.code;
    return new HeraldSdkError(err.code as HeraldErrorCode, message, status, err.details);
  }
  return new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', `${method} ${url}: HTTP ${status} without a Herald error body`, status, body);
}
