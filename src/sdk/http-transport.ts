/**
 * The SDK's one way onto the network: global `fetch` with a deadline (a
 * timer that ends with the answer), the bearer token, JSON both ways, and
 * every failure turned into a {@link HeraldSdkError} with a `HERALD_ERR_*` code.
 */
import { ClientErrorCodes, HeraldSdkError, type HeraldErrorCode } from './errors.js';

export interface HttpTransportOptions {
  /** Base URL of the Herald server, e.g. `http://127.0.0.1:19443` (a path prefix is kept). */
  url: string;
  apiToken: string;
  /** Deadline of each request, in milliseconds (at most {@link MAX_TIMEOUT_MS}). */
  timeoutMs: number;
  /** Sent as User-Agent, so the server's logs tell the SDK (which the CLI uses too) from other callers. */
  userAgent: string;
  /**
   * How long, in milliseconds from the first attempt, a request that failed
   * in a way that is safe to repeat (see {@link RequestOptions.repeatable})
   * is sent again, with full-jitter backoff. 0: never.
   */
  retryForMs: number;
  /** The most an answer's body may hold, in bytes (see {@link DEFAULT_MAX_ANSWER_BYTES}). */
  maxAnswerBytes: number;
}

/** Per-request options of {@link HttpTransport.request}. */
export interface RequestOptions {
  /** Statuses besides 2xx that are an answer, not an error (404 for "no such message"). */
  allow?: readonly number[];
  /** How long the server may hold the answer on purpose (a long poll), in ms: added to the deadline. */
  holdMs?: number;
  /**
   * The request may run twice without harm (a read; a send with an
   * idempotency key the server keeps). Only such a request is sent again
   * after a connection lost once it was sent, or a gateway's 502/503/504.
   * Default: true for GET.
   */
  repeatable?: boolean;
  /**
   * How long after the first attempt a repeat of a `repeatable` request is
   * still harmless, in ms: a stored send's key is kept only as long as its
   * TTL, and a repeat the server takes after that is a second send. A repeat
   * that might reach the server later (its backoff plus timeoutMs) is not made.
   * Default: no limit.
   */
  repeatableForMs?: number;
  /** One attempt only, whatever failed: a health check answers for now. */
  once?: boolean;
}

/**
 * Full-jitter backoff between attempts (the AWS architecture blog's "Exponential
 * Backoff And Jitter"): a random wait in [0, min(cap, base × 2^n)), so that
 * many backends retrying against one restarting server do not come back in step.
 */
const RETRY_BASE_MS = 100;
const RETRY_CAP_MS = 1000;

/**
 * The longest deadline a Node timer holds (2^31 - 1 ms, about 24.8 days):
 * past it Node fires the timer after 1 ms instead, so every request would
 * time out at once.
 */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * The most an answer's body may hold by default, in bytes once fetch has
 * undone any gzip: 64 MiB. Herald's answers are small but for commands: a
 * command's status carries its output, up to the server's `commandsOutputCap`
 * (1 MiB by default; as JSON up to six times that, when it is control
 * characters written as \u0000); `listCommands` asks for none. Without a
 * bound an endless body (another service at that port, a broken proxy) was
 * buffered whole until the deadline, hundreds of MB a second on a local
 * network.
 */
export const DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * The highest `maxAnswerBytes` taken: 256 MiB. A longer body could not be
 * made into one string (V8 stops at 2^29 - 24 characters, and a
 * RangeError then looked like a lost connection).
 */
export const MAX_ANSWER_BYTES_LIMIT = 256 * 1024 * 1024;

/**
 * Errors that are never sent again, whatever their code and status: an
 * answer too large to read (a gateway's endless 503 would be downloaded
 * again on each attempt otherwise), an answer claiming one of the SDK's own codes.
 */
const NEVER_REPEATED = new WeakSet<HeraldSdkError>();

export interface HttpAnswer {
  status: number;
  /** The parsed JSON body, or undefined for an empty one (204). */
  body: unknown;
  /** How many times the request was sent: more than 1 when the SDK sent it again (see {@link HttpTransport.request}). */
  attempts: number;
  /**
   * The text with the API token replaced by `…`: for quoting this answer in
   * an error, since what answers may not be Herald and may echo the
   * request's headers back (an echo service, a debugging proxy).
   */
  redact(text: string): string;
}

export class HttpTransport {
  readonly #base: string;
  readonly #apiToken: string;
  readonly #timeoutMs: number;
  readonly #userAgent: string;
  readonly #retryForMs: number;
  readonly #maxAnswerBytes: number;
  readonly #redact: (text: string) => string;

  constructor(options: HttpTransportOptions) {
    this.#base = `${options.url.replace(/\/+$/, '')}/api/v1`;
    this.#apiToken = options.apiToken;
    this.#timeoutMs = options.timeoutMs;
    this.#userAgent = options.userAgent;
    this.#retryForMs = options.retryForMs;
    this.#maxAnswerBytes = options.maxAnswerBytes;
    this.#redact = tokenRedactor(options.apiToken);
  }

  /**
   * Sends one request, and sends it again while it failed in a way that is
   * safe to repeat and `retryForMs` has not run out (a server restarting:
   * refused, then 503 HERALD_ERR_SHUTTING_DOWN). Resolves with the status and
   * parsed body for 2xx and, when `allow` lists it, for that status too, and
   * how many attempts it took; every other outcome rejects with a
   * HeraldSdkError, the last attempt's.
   */
  async request(method: 'GET' | 'POST', path: string, body?: unknown, options: RequestOptions = {}): Promise<HttpAnswer> {
    const repeatable = options.repeatable ?? method === 'GET';
    const started = performance.now();
    let cutRepeated = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await this.#attempt(method, path, body, options.allow ?? [], options.holdMs ?? 0);
        answer.attempts = attempt;
        return answer;
      } catch (e) {
        if (options.once || !(e instanceof HeraldSdkError)) throw e;
        // At least what the server asked for (Retry-After: 1 from a Herald shutting down):
        // asked sooner, it would only refuse again. A wait that would end past retryForMs is
        // not made: the call gives up with this error instead.
        const jitterMs = Math.random() * Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** (attempt - 1));
        const waitMs = Math.max(jitterMs, e.retryAfterMs ?? 0);
        const elapsed = performance.now() - started;
        // Measured from our first attempt, which the server took no earlier: its key lives at least that long.
        const harmless = repeatable && (options.repeatableForMs === undefined || elapsed + waitMs + this.#timeoutMs < options.repeatableForMs);
        // A cut request did not run, whatever its key: sent again once, since a wrong token or
        // URL (Herald answers 401/404 before it reads the body, and closes) and a kept-alive
        // connection the server was closing meet the same failed write as a body over maxBodyBytes.
        // The failed connection is gone, so the repeat goes on another. Cut twice: given up.
        const cut = e.code === 'HERALD_ERR_REQUEST_CUT' && e.status === 0 && !NEVER_REPEATED.has(e);
        if (cut ? cutRepeated : !mayRepeat(e, harmless)) throw cut ? gaveUp(e, attempt, elapsed) : e;
        if (elapsed + waitMs >= this.#retryForMs) throw attempt === 1 ? e : gaveUp(e, attempt, elapsed);
        if (cut) cutRepeated = true;
        await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    }
  }

  /**
   * One attempt. `holdMs`: how long the server may hold the answer on
   * purpose (a long poll), added to the deadline so that the server's wait
   * is not taken for silence.
   */
  async #attempt(method: 'GET' | 'POST', path: string, body: unknown, allow: readonly number[], holdMs: number): Promise<HttpAnswer> {
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
    let bodyBytes = 0;
    if (body !== undefined) {
      headers['content-type'] = 'application/json; charset=utf-8';
      try {
        const json = JSON.stringify(body);
        bodyBytes = Buffer.byteLength(json);
        init.body = json;
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
      text = await readCapped(response, this.#maxAnswerBytes, controller, method, url);
    } catch (e) {
      // Our own refusal of a body too large; anything else is the network's.
      if (e instanceof HeraldSdkError) throw e;
      throw networkError(e, method, url, deadlineMs, bodyBytes);
    } finally {
      clearTimeout(timer);
    }
    if (response.status >= 300 && response.status < 400) {
      throw new HeraldSdkError(
        'HERALD_ERR_BAD_RESPONSE',
        `${method} ${url}: HTTP ${response.status} redirected to ${this.#redact(redirectTarget(response.headers.get('location'), url))}: set the SDK's url to the address Herald answers at`,
        response.status,
      );
    }
    // Whoever answered: a proxy's 503 or 429 page asks for its wait too, and a repeat sooner
    // would only meet it again (request() waits at least this long).
    const retryAfterMs = response.ok ? undefined : retryAfter(response.headers.get('retry-after'));
    let parsed: unknown;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        // Cut after the token is taken out: a cut through it would leave part of it.
        throw new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', `${method} ${url}: HTTP ${response.status} with a body that is not JSON: ${this.#redact(text).slice(0, 120)}`, response.status, undefined, { retryAfterMs });
      }
    }
    if (response.ok || allow.includes(response.status)) return { status: response.status, body: parsed, attempts: 1, redact: this.#redact };
    throw serverError(parsed, response.status, method, url, retryAfterMs, this.#redact);
  }
}

/**
 * The body as text, read as it arrives and counted: past `maxBytes` (or when
 * Content-Length says it will be) the request is aborted at once and
 * HERALD_ERR_BAD_RESPONSE thrown, with the answer's status. Decoded as
 * `response.text()` does (UTF-8, a bad sequence as U+FFFD, a leading BOM dropped).
 */
async function readCapped(response: Response, maxBytes: number, controller: AbortController, method: string, url: string): Promise<string> {
  const tooLarge = (what: string): never => {
    // Stops the download (the socket is closed), so that nothing more of it is read.
    controller.abort(new DOMException('answer too large', 'AbortError'));
    const e = new HeraldSdkError(
      'HERALD_ERR_BAD_RESPONSE',
      `${method} ${url}: HTTP ${response.status} with ${what}, more than the ${maxBytes} bytes an answer may hold (option maxAnswerBytes): not Herald's answer`,
      response.status,
    );
    NEVER_REPEATED.add(e);
    throw e;
  };
  const declared = response.headers.get('content-length');
  if (declared !== null && /^\s*\d+\s*$/.test(declared) && Number(declared) > maxBytes) tooLarge(`a body of ${declared.trim()} bytes (Content-Length)`);
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let bytes = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    bytes += value.byteLength;
    if (bytes > maxBytes) tooLarge('a longer body');
    text += decoder.decode(value, { stream: true });
  }
}

/** `Retry-After` in delay-seconds (RFC 9110 §10.2.3), as ms; an HTTP-date or anything else: undefined. */
function retryAfter(value: string | null): number | undefined {
  if (value === null || !/^\d{1,9}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

/**
 * Whether a failed attempt may be sent again. Always, when the server did not
 * run it: no connection was made, or Herald refused it at the door because it
 * is shutting down (503 HERALD_ERR_SHUTTING_DOWN with Retry-After, before any route runs).
 * Only for a repeatable request when it may have run: the connection ended
 * after it was sent, or a gateway in front (502/503/504 without Herald's
 * body) lost Herald at some point of it. Never after a timeout: the server
 * may still be at it, and the caller has already waited timeoutMs.
 */
function mayRepeat(e: HeraldSdkError, repeatable: boolean): boolean {
  if (NEVER_REPEATED.has(e)) return false;
  // Only the SDK's own (status 0): a server's answer never carries these codes (serverError).
  if (e.code === 'HERALD_ERR_UNREACHABLE') return e.status === 0;
  // The door's refusal, not a route's: only it carries Retry-After. A route can answer
  // SHUTTING_DOWN too (POST /commands whose body was still arriving when the runner
  // stopped), after it ran and audited the request: that one is not sent again.
  if (e.code === 'HERALD_ERR_SHUTTING_DOWN' && e.status === 503 && e.retryAfterMs !== undefined) return true;
  if (e.code === 'HERALD_ERR_CONNECTION_LOST') return repeatable && e.status === 0;
  if (e.code === 'HERALD_ERR_BAD_RESPONSE') return repeatable && (e.status === 502 || e.status === 503 || e.status === 504);
  return false;
}

/** The last attempt's error, saying how long the SDK kept trying (and still saying when the server asked to be asked again). */
function gaveUp(e: HeraldSdkError, attempts: number, elapsedMs: number): HeraldSdkError {
  return new HeraldSdkError(e.code, `${e.message} (${attempts} attempts in ${Math.round(elapsedMs)} ms)`, e.status, e.details, { cause: e.cause ?? e, retryAfterMs: e.retryAfterMs });
}

/**
 * Replaces the API token with `…` in text taken from an answer. Whatever
 * answers at the URL may echo the request back, Authorization header
 * included (an echo service, a debugging proxy), and an error's message and
 * details end up in logs. The token as sent, as JSON writes it inside a
 * string, and as a URL carries it.
 */
function tokenRedactor(token: string): (text: string) => string {
  const forms = [...new Set([token, JSON.stringify(token).slice(1, -1), encodeURIComponent(token)])];
  return (text) => (forms.some((f) => text.includes(f)) ? forms.reduce((t, f) => t.split(f).join('…'), text) : text);
}

/** A parsed answer with the token taken out of every string in it (see {@link tokenRedactor}). */
function redactValue(value: unknown, redact: (text: string) => string): unknown {
  if (value === undefined) return value;
  let json: string;
  try {
    json = JSON.stringify(value);
  } catch {
    return undefined;
  }
  const cleaned = redact(json);
  if (cleaned === json) return value;
  try {
    return JSON.parse(cleaned);
  } catch {
    return cleaned;
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

/**
 * The least `maxBodyBytes` a Herald server takes (its option's minimum): a
 * smaller body is never refused for its size.
 */
const LEAST_MAX_BODY_BYTES = 1024;

function networkError(e: unknown, method: string, url: string, timeoutMs: number, bodyBytes: number): HeraldSdkError {
  const name = (e as { name?: string } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new HeraldSdkError('HERALD_ERR_TIMEOUT', `${method} ${url}: no answer within ${timeoutMs} ms`, 0, undefined, { cause: e });
  }
  // fetch wraps the socket error (ECONNREFUSED…) in `cause`; name it, it is what an operator needs.
  const cause = (e as { cause?: { code?: string; message?: string; syscall?: string } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  const text = cause?.message ?? (e as Error | null)?.message ?? String(e);
  if (notConnected(code)) return new HeraldSdkError('HERALD_ERR_UNREACHABLE', `${method} ${url}: ${code ?? text}`, 0, undefined, { cause: e });
  // A write that failed (EPIPE, or a reset met while writing): bytes of the request were
  // still to be handed to the socket when the server closed it, so the server never had the
  // whole request and ran nothing. Herald closes so on a request it answers before reading the
  // body: 413 for a body over its maxBodyBytes (as soon as it reads Content-Length), and 401 for
  // a wrong API token or 404 for a wrong URL just the same; fetch, still writing the body, often
  // reports the failed write without the answer (node gives no way to read it then). A kept-alive
  // connection the server was closing ends the same way. Which one it was cannot be told, so the
  // message ranks none first; request() sends it again once. A body under the least maxBodyBytes
  // (which the socket takes at once) stays a lost connection.
  if (bodyBytes >= LEAST_MAX_BODY_BYTES && cause?.syscall === 'write' && (code === 'EPIPE' || code === 'ECONNRESET')) {
    return new HeraldSdkError(
      'HERALD_ERR_REQUEST_CUT',
      `${method} ${url}: the server closed the connection before it had taken the whole request (${text}), so it did not carry it out. Herald does so, without an answer fetch could read, when it refuses a request before reading its body: the API token refused (401), no such route at this URL (404), or the body, ${bodyBytes} bytes, over its maxBodyBytes (413); a kept-alive connection the server was closing ends so too`,
      0, undefined, { cause: e },
    );
  }
  // fetch never connects to a port on the Fetch standard's list of bad ports (6000, 6666, 10080, …):
  // nothing was sent, so not CONNECTION_LOST ("the server may have carried it out").
  if (code === undefined && text === 'bad port') {
    return new HeraldSdkError('HERALD_ERR_UNREACHABLE', `${method} ${url}: fetch refuses to connect to this port (one of the Fetch standard's "bad ports"): run Herald on another port`, 0, undefined, { cause: e });
  }
  const why = code === undefined || text.includes(code) ? text : `${code}: ${text}`;
  return new HeraldSdkError(
    'HERALD_ERR_CONNECTION_LOST',
    `${method} ${url}: the connection ended before the answer (${why}): the server may have carried the request out`,
    0, undefined, { cause: e },
  );
}

/**
 * The error a non-2xx answer stands for. Its message and details are the
 * answer's, with the API token taken out (`redact`): whatever answered may
 * not be Herald, and may echo the request's headers.
 */
function serverError(body: unknown, status: number, method: string, url: string, retryAfterMs: number | undefined, redact: (text: string) => string): HeraldSdkError {
  const err = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (err && typeof err.code === 'string' && err.code.startsWith('HERALD_ERR_')) {
    // The SDK's own codes say what happened on the way (nothing was sent, the connection
    // ended…), and the retry rules trust them: an answer claiming one (a 500 that says
    // HERALD_ERR_UNREACHABLE, which Herald never answers) was sent again, a POST 7 times.
    // Not sent again either, whatever its status: such an answer is not a gateway's 503 but nonsense.
    if (Object.hasOwn(ClientErrorCodes, err.code)) {
      const e = new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', `${method} ${url}: HTTP ${status} answered ${err.code}, a code only the SDK gives: not Herald's answer`, status, redactValue(body, redact));
      NEVER_REPEATED.add(e);
      return e;
    }
    const message = typeof err.message === 'string' ? redact(err.message) : err.code;
    return new HeraldSdkError(err.code as HeraldErrorCode, message, status, redactValue(err.details, redact), { retryAfterMs });
  }
  return new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', `${method} ${url}: HTTP ${status} without a Herald error body`, status, redactValue(body, redact), { retryAfterMs });
}
