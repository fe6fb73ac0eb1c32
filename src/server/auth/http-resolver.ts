/**
 * The http resolver: ask the panel. Each handshake becomes a POST to a
 * configured URL carrying the tab's Cookie header and a chosen set of other
 * headers, so the panel can use its own session machinery unchanged.
 *
 *   200 {"kind":"admin","id":7}  admits (kind may be left out; it must match the endpoint)
 *   401 or 403                   refuses (HTTP 401 to the tab: stop retrying)
 *   anything else, or no answer
 *   within the timeout           unavailable (HTTP 503 to the tab: retry later)
 */
import type { Logger } from 'pino';
import type { PrincipalKind } from '../../protocol/principal.js';
import { toPersonId } from '../../protocol/principal.js';
import { HeraldError } from '../errors.js';
import type { CredentialResolver, Handshake, Refusal, Resolution } from './session-resolver.js';
import { headerValue } from './session-resolver.js';
import { LookUpFailureLog } from './look-up-failure-log.js';
import { LookUpGate } from './look-up-gate.js';

export interface HttpResolverOptions {
  /** Where to POST. */
  readonly url: string;
  /** Longest wait for the whole answer, in ms. */
  readonly timeoutMs: number;
  /** Handshake headers forwarded besides Cookie (case-insensitive names). */
  readonly headers: readonly string[];
  /** Look-ups at the panel at once at most (see LookUpGate); the others wait for a turn at most half of timeoutMs. Default 16. */
  readonly concurrency?: number;
  /** Look-ups waiting for a turn at most; past it a handshake is "unavailable" at once. Default 100 × concurrency. */
  readonly maxWaiting?: number;
  readonly logger?: Logger | undefined;
}

const DEFAULT_CONCURRENCY = 16;
/** Waiting look-ups per turn at most: the sql resolver's MySQL pool bounds its queue the same way. */
const WAITING_PER_TURN = 100;

/**
 * The share of httpResolverTimeoutMs the panel is always left: a look-up
 * that has not had its turn (LookUpGate) by the time only this much of its
 * deadline is left answers "unavailable" at once instead of asking. Turns go
 * oldest first, and under sustained overload each went to a look-up with a
 * few ms left, whose answer came after its deadline: 40 handshakes a second
 * at a panel that answers 20 (concurrency 2, 100 ms an answer, a 1 s
 * timeout) admitted nobody after the first second. The sql resolver keeps
 * its query the same share (sql-pool.ts).
 */
const PANEL_SHARE = 0.5;

/**
 * Loads node's fetch (undici, which node loads at its first use) now, at
 * start-up. The first look-up paid for it inside its own timeout: 30-45 ms
 * on an idle machine here, 90-130 ms beside a benchmark, and in a CI run a
 * first look-up with a 1 s timeout never reached the panel (its tab got
 * 503). Touching Headers loads the module fetch runs on, and sends nothing.
 */
function loadFetch(): void {
  new Headers();
}

/** Larger answers are not a `{kind, id}`: the panel is misbehaving. */
const MAX_ANSWER_BYTES = 16 * 1024;
/** Hop-by-hop and framing headers must not be copied onto our own request. */
const NEVER_FORWARD = new Set(['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding', 'keep-alive', 'te', 'trailer', 'expect']);

export class HttpResolver implements CredentialResolver {
  readonly name = 'http';
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #forward: readonly string[];
  readonly #failures: LookUpFailureLog | undefined;
  readonly #gate: LookUpGate;
  /** Longest wait for a turn at the panel, in ms (PANEL_SHARE). */
  readonly #maxWaitMs: number;
  /** The look-ups at the panel now: close() aborts them. */
  readonly #inFlight = new Set<AbortController>();
  #closed = false;

  constructor(options: HttpResolverOptions) {
    this.#url = usableUrl(options.url);
    this.#timeoutMs = options.timeoutMs;
    const names = ['cookie', ...options.headers.map((h) => h.trim().toLowerCase()).filter((h) => h !== '')];
    for (const h of names) {
      if (NEVER_FORWARD.has(h)) throw new HeraldError('HERALD_ERR_CONFIG', `option "httpResolverHeaders" must not forward the ${h} header`);
    }
    this.#forward = [...new Set(names)].sort();
    this.#failures = options.logger && new LookUpFailureLog(options.logger, 'http');
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#maxWaitMs = options.timeoutMs * (1 - PANEL_SHARE);
    this.#gate = new LookUpGate(concurrency, options.maxWaiting ?? concurrency * WAITING_PER_TURN, this.#maxWaitMs);
    loadFetch();
  }

  /** Look-ups at the panel now, and waiting for a turn. */
  get load(): { active: number; waiting: number } {
    return { active: this.#gate.active, waiting: this.#gate.waiting };
  }

  /** The forwarded headers, as a canonical JSON object: the same session always gives the same credential. */
  credentialOf(handshake: Handshake): string | Refusal {
    const picked: Record<string, string> = {};
    for (const name of this.#forward) {
      const v = headerValue(handshake.headers, name);
      if (v !== undefined && v !== '') picked[name] = v;
    }
    if (Object.keys(picked).length === 0) return { outcome: 'refused', reason: 'no session credentials' };
    return JSON.stringify(picked);
  }

  async resolve(handshake: Handshake): Promise<Resolution> {
    const credential = this.credentialOf(handshake);
    return typeof credential === 'string' ? this.recheck(handshake.kind, credential) : credential;
  }

  async recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    let headers: Record<string, string>;
    try {
      headers = JSON.parse(credential) as Record<string, string>;
    } catch {
      return { outcome: 'refused', reason: 'malformed credential' };
    }
    const unavailable = (why: string, status?: number): Resolution => {
      // Aborted by close(): the shutdown is no failure of the panel's.
      if (!this.#closed) this.#failures?.failed(why + (status === undefined ? '' : ` (${status})`), { resolver: 'http', kind, status }, `session look-up failed: ${why}`);
      return { outcome: 'unavailable', reason: 'session service unavailable' };
    };
    if (this.#closed) return unavailable('closed');
    let response: Response;
    let text: string;
    // Not AbortSignal.timeout(): its timer, and with it 200-300 bytes a
    // look-up (measured: 954-1,006 against 661-804 bytes retained a look-up
    // over 2,000), lives for the whole timeout after the panel has answered;
    // under a burst of handshakes that is rate × timeout of them.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${this.#timeoutMs} ms`, 'TimeoutError')), this.#timeoutMs);
    const signal = controller.signal;
    this.#inFlight.add(controller);
    let turn = false;
    try {
      // The deadline covers the wait for a turn and the panel's answer; the
      // wait ends when the panel's share of it is all that is left (PANEL_SHARE).
      const entered = this.#gate.enter(signal);
      turn = await entered;
      if (!turn) {
        if (signal.aborted) return unavailable(`no answer within ${this.#timeoutMs} ms`);
        return unavailable(entered === false ? 'too many look-ups waiting for the panel' : `no turn at the panel within ${this.#maxWaitMs} ms`);
      }
      response = await fetch(this.#url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ kind }),
        // A redirect is "anything else": the panel's login page must not look like an answer.
        redirect: 'manual',
        signal,
      });
      if (response.status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        if (response.status === 401 || response.status === 403) return { outcome: 'refused', reason: 'session refused by the panel' };
        return unavailable('unexpected status', response.status);
      }
      const body = await readBounded(response, MAX_ANSWER_BYTES);
      // Said as such: it read "request failed", as a network error does.
      if (body === undefined) return unavailable(`the answer is longer than ${MAX_ANSWER_BYTES} bytes`, 200);
      text = body;
    } catch (e) {
      const name = (e as Error).name;
      return unavailable(name === 'TimeoutError' || name === 'AbortError' ? `no answer within ${this.#timeoutMs} ms` : `request failed${failureCode(e)}`);
    } finally {
      clearTimeout(timer);
      this.#inFlight.delete(controller);
      if (turn) this.#gate.leave();
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      return unavailable('the answer is not JSON', 200);
    }
    const { kind: answeredKind, id: rawId } = (typeof answer === 'object' && answer !== null ? answer : {}) as { kind?: unknown; id?: unknown };
    const id = toPersonId(rawId);
    if (id === undefined || (answeredKind !== undefined && answeredKind !== 'admin' && answeredKind !== 'user')) {
      return unavailable('the answer is not {"kind","id"}', 200);
    }
    // A user's session must not open an admin's endpoint (and the reverse).
    if (answeredKind !== undefined && answeredKind !== kind) return { outcome: 'refused', reason: `the session belongs to a ${answeredKind}` };
    return { outcome: 'admitted', principal: { kind, id }, credential };
  }

  /**
   * Ends the look-ups in flight (each answered "unavailable" at once) instead
   * of letting them run their timeout: at a panel that stopped answering that
   * is httpResolverTimeoutMs, and its timer kept an embedding process alive
   * that long after Herald's close().
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const controller of this.#inFlight) controller.abort(new DOMException('the resolver is closed', 'AbortError'));
    this.#failures?.flush();
  }
}


/** The body as text, or undefined when it passes `max` bytes (the rest is not read). */
async function readBounded(response: Response, max: number): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The panel's URL as fetch will take it, or a configuration error at start.
 * fetch refuses a URL with a user name or password in it ("Request cannot be
 * constructed from a URL that includes credentials"), and one it cannot
 * parse: each handshake was then answered 503, for ever, and the log said
 * only "request failed". Neither message quotes the URL: it may hold a password.
 */
function usableUrl(url: string): string {
  if (!/^https?:\/\//i.test(url)) throw new HeraldError('HERALD_ERR_CONFIG', 'option "httpResolverUrl" must be an http:// or https:// URL');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HeraldError('HERALD_ERR_CONFIG', 'option "httpResolverUrl" is not a valid URL');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new HeraldError('HERALD_ERR_CONFIG', 'option "httpResolverUrl" must not hold a user name or password (fetch refuses such a URL): let the panel\'s endpoint trust Herald by its address, e.g. on loopback, instead');
  }
  return url;
}

/** The system error under a failed fetch (ECONNREFUSED, ENOTFOUND, …), for the log: " (ECONNREFUSED)", or "". */
function failureCode(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown } }).cause;
  return typeof cause?.code === 'string' && /^[A-Z_]+$/.test(cause.code) ? ` (${cause.code})` : '';
}
