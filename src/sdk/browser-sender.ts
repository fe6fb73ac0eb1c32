/**
 * BrowserSender: the old `Abills::Sender::Browser` in TypeScript form, over
 * Herald's HTTP API (docs/http-api.md). A backend uses it to ask whether an
 * admin or user has a browser tab open, to push notifications to their tabs,
 * to run background commands for an admin, and to mint the tokens its pages
 * connect with.
 *
 * `enabled: false` is the seed's `$conf{WEBSOCKET_ENABLED}` switch turned
 * off: every method returns at once without touching the network — `false`
 * for yes/no questions and actions, `[]` for lists, `0` for a count of
 * tabs, `null` for lookups.
 */
import { isPersonId, type Principal, type PrincipalKind } from '../protocol/principal.js';
import type { NotificationObject, NotificationPayload } from '../protocol/frames.js';
import { mintConnectToken, secretFault } from './connect-token.js';
import { HeraldSdkError, shownValue } from './errors.js';
import { DEFAULT_MAX_ANSWER_BYTES, HttpTransport, MAX_ANSWER_BYTES_LIMIT, MAX_TIMEOUT_MS, type HttpAnswer } from './http-transport.js';
import type {
  CommandInfo, CommandStatusOptions, ConnectToken, LegacyAnswer, ListedCommand, MessageStatus, Person, PingResult, Recipient,
  RunInBackgroundOptions, SendMessageInput, SendResult, ServerStatus,
} from './types.js';

/** The SDK's version, sent in User-Agent. */
export const SDK_VERSION = '0.1.0';

export interface BrowserSenderOptions {
  /** Base URL of the Herald server: `http://127.0.0.1:19443` (a path prefix behind a proxy is kept). */
  url?: string;
  /** The server's API token (`HERALD_API_TOKEN`, or `apiToken` in DATA_DIR/secrets.json). Required when enabled. */
  apiToken?: string;
  /**
   * The seed's WEBSOCKET_ENABLED. `false`: every method is a no-op that
   * touches no network. Default true. The Perl switch's `1` and `0`, as
   * numbers or as the strings a configuration file or the environment
   * gives, are taken too; anything else is refused (`"false"` or `"off"`
   * would otherwise read as on).
   */
  enabled?: boolean | 0 | 1 | '0' | '1';
  /** Deadline of each HTTP request, in milliseconds (at most 2^31 - 1, what a Node timer holds). Default 5000. */
  timeoutMs?: number;
  /**
   * How long a call keeps trying, in milliseconds from its first attempt,
   * while the server is restarting: a request that did not run (connection
   * refused, 503 HERALD_ERR_SHUTTING_DOWN) is sent again, with full-jitter
   * backoff (waits up to 1 s); one that may have run (the connection ended
   * after it was sent) only when running it twice is harmless — a read, a
   * token, a `sendMessage` with an `idempotencyKey` and an explicit `ttl`
   * above 0, whose key the server keeps in its store. A request the server
   * closed on before taking it whole (HERALD_ERR_REQUEST_CUT: it did not run)
   * is sent again once, whatever its key; a timeout is never repeated. Never sooner than an answer's Retry-After asks.
   * `isConnected()`, `ping()` and `status()` try once. 0: never repeat.
   * Default 3000.
   */
  retryForMs?: number;
  /**
   * The most an answer's body may hold, in bytes (at most 256 MiB): a longer
   * one is refused as it arrives, with HERALD_ERR_BAD_RESPONSE, and not asked
   * for again. Raise it only for `commandStatus` on a server whose
   * `commandsOutputCap` is far above its 1 MiB default (a command's output is
   * up to six times that as JSON). Default 64 MiB.
   */
  maxAnswerBytes?: number;
  /**
   * The server's token-signing secret (`HERALD_SECRET`). With it,
   * {@link BrowserSender.createConnectToken} signs locally (no round trip);
   * without it, it asks the server (`POST /api/v1/tokens`).
   */
  secret?: string;
  /**
   * The admin {@link BrowserSender.runInBackground} notifies when the call
   * names none — the Perl client took the current `$admin` in its constructor.
   */
  aid?: number;
}

/** The `enabled` option as a boolean: true, false, or the Perl switch's 1 and 0 (as numbers or strings). */
function switchValue(v: unknown): boolean {
  if (v === undefined || v === true || v === 1 || v === '1') return true;
  if (v === false || v === 0 || v === '0') return false;
  throw new TypeError(`option "enabled" must be true or false (or 1 or 0), got ${shownValue(v)}`);
}

/** Default lifetime of a locally minted browser token, seconds (the server's `tokenTtlMs` default, 12 h). */
export const DEFAULT_CONNECT_TOKEN_TTL_SEC = 43200;
/** The longest a browser token may live, in seconds: 31 days, as POST /api/v1/tokens allows. */
export const MAX_CONNECT_TOKEN_TTL_SEC = 31 * 86400;

export class BrowserSender {
  /** False when constructed with `enabled: false`. */
  readonly enabled: boolean;
  /** The server's base URL (empty when disabled and none was given). */
  readonly url: string;
  readonly #http: HttpTransport | undefined;
  readonly #secret: string | undefined;
  readonly #aid: number | undefined;

  /**
   * Validates the options and builds the sender; opens no connection (each
   * call is one HTTP request). Throws a TypeError naming the bad option.
   */
  constructor(options: BrowserSenderOptions) {
    this.enabled = switchValue(options.enabled);
    this.url = options.url ?? '';
    this.#secret = options.secret === '' ? undefined : options.secret;
    if (options.aid !== undefined && !isPersonId(options.aid)) throw new TypeError(`option "aid" must be a positive integer, got ${shownValue(options.aid)}`);
    this.#aid = options.aid;
    const timeoutMs = options.timeoutMs ?? 5000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new TypeError(`option "timeoutMs" must be a positive number of milliseconds up to ${MAX_TIMEOUT_MS}, got ${shownValue(options.timeoutMs)}`);
    }
    const retryForMs = options.retryForMs ?? 3000;
    if (!Number.isFinite(retryForMs) || retryForMs < 0 || retryForMs > MAX_TIMEOUT_MS) {
      throw new TypeError(`option "retryForMs" must be a number of milliseconds from 0 to ${MAX_TIMEOUT_MS}, got ${shownValue(options.retryForMs)}`);
    }
    const maxAnswerBytes = options.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES;
    if (!Number.isInteger(maxAnswerBytes) || maxAnswerBytes < 1 || maxAnswerBytes > MAX_ANSWER_BYTES_LIMIT) {
      throw new TypeError(`option "maxAnswerBytes" must be a whole number of bytes from 1 to ${MAX_ANSWER_BYTES_LIMIT}, got ${shownValue(options.maxAnswerBytes)}`);
    }
    const secretProblem = this.#secret === undefined ? undefined : secretFault(this.#secret);
    if (secretProblem !== undefined) throw new TypeError(`option "secret" ${secretProblem}`);
    if (!this.enabled) {
      this.#http = undefined;
      return;
    }
    if (!options.url) throw new TypeError('option "url" is required when "enabled" is true');
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      // `http://::1:19443`: a bare IPv6 address reads as a host with several ports (RFC 3986 §3.2.2).
      const hint = /^[a-z][a-z0-9+.-]*:\/\/[0-9a-f]*:[0-9a-f]*:/i.test(options.url) ? ' (an IPv6 address goes in brackets: http://[::1]:19443)' : '';
      throw new TypeError(`option "url" is not a URL: ${withoutUserInfo(options.url)}${hint}`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`option "url" must be http: or https:, got ${parsed.protocol}`);
    // fetch refuses a URL with credentials on every call, and its error quotes
    // the URL: the password would reach every error message and log, while
    // the failure looked like an unreachable server. The API token is the
    // credential; a proxy in front of Herald must pass Authorization through.
    if (parsed.username !== '' || parsed.password !== '') throw new TypeError('option "url" must not carry a user name or password (user:pass@): the API token is the credential');
    // Paths are appended to the URL as text: /api/v1/send would land after a ?query or #fragment.
    if (parsed.search !== '' || parsed.hash !== '') throw new TypeError(`option "url" must not carry a query or fragment (${parsed.search}${parsed.hash}): it is the base the API's paths are appended to`);
    if (!options.apiToken) throw new TypeError('option "apiToken" is required when "enabled" is true');
    // A header holds bytes: fetch refused every call, and the error read as a lost connection.
    if (!/^[\x21-\x7e]+$/.test(options.apiToken)) throw new TypeError('option "apiToken" must be printable ASCII without spaces, as Herald requires of it (it is sent in the Authorization header)');
    this.#http = new HttpTransport({ url: options.url, apiToken: options.apiToken, timeoutMs, retryForMs, maxAnswerBytes, userAgent: `herald-sdk/${SDK_VERSION}` });
  }

  // ---- presence ------------------------------------------------------------

  /**
   * Is the Herald server reachable and does it accept our API token? The
   * seed's `is_connected()`. Never throws: any failure is `false` (use
   * {@link ping} to learn why). Disabled: false.
   */
  async isConnected(): Promise<boolean> {
    if (!this.#http) return false;
    try {
      return (await this.ping())?.ok === true;
    } catch {
      return false;
    }
  }

  /**
   * `GET /api/v1/ping`: the server's version. Throws a HeraldSdkError
   * (`HERALD_ERR_UNREACHABLE`, `HERALD_ERR_TIMEOUT`, `HERALD_ERR_UNAUTHORIZED`…).
   * Disabled: null.
   */
  async ping(): Promise<PingResult | null> {
    if (!this.#http) return null;
    return heraldAnswer<PingResult>(await this.#http.request('GET', '/ping', undefined, { once: true }), 'GET /ping', { ok: 'boolean', version: 'string' });
  }

  /** `GET /api/v1/status`: version, uptime, connections, store and its counts, broker, commands. Disabled: null. */
  async status(): Promise<ServerStatus | null> {
    if (!this.#http) return null;
    const answer = await this.#http.request('GET', '/status', undefined, { once: true });
    // What `herald status` prints of it (a `{}` from another service made it print a TypeError).
    return heraldAnswer<ServerStatus>(answer, 'GET /status', { version: 'string', uptimeMs: 'number', 'connections.admin': 'number', 'connections.user': 'number' });
  }

  /** Has this admin at least one browser tab open (anywhere in the cluster)? The seed's `has_connected_admin($aid)`. Disabled: false. */
  async hasConnectedAdmin(aid: number): Promise<boolean> {
    return (await this.connectedTabs({ aid })) > 0;
  }

  /** Has this user (subscriber) at least one browser tab open? Disabled: false. */
  async hasConnectedUser(uid: number): Promise<boolean> {
    return (await this.connectedTabs({ uid })) > 0;
  }

  /** How many tabs this person has open now. Disabled: 0. */
  async connectedTabs(person: Person): Promise<number> {
    if (!this.#http) return 0;
    const { kind, id } = toPrincipal(person);
    return heraldAnswer<{ tabs: number }>(await this.#http.request('GET', `/online/${kind}/${id}`), 'GET /online/:kind/:id', { tabs: 'number' }).tabs;
  }

  /** The AIDs of every admin with a tab open now (the legacy `REQUEST_LIST` of ADMINS). Disabled: []. */
  async connectedAdmins(): Promise<number[]> {
    return this.#online('admin');
  }

  /** The UIDs of every user with a tab open now. Disabled: []. */
  async connectedUsers(): Promise<number[]> {
    return this.#online('user');
  }

  async #online(kind: PrincipalKind): Promise<number[]> {
    if (!this.#http) return [];
    return heraldAnswer<{ ids: number[] }>(await this.#http.request('GET', `/online?kind=${kind}`), 'GET /online', { ids: 'array' }).ids;
  }

  // ---- sending -------------------------------------------------------------

  /**
   * Pushes a notification to every tab of one admin or user, a list of them,
   * or everyone of a kind: the seed's `send_message({AID, MESSAGE})`.
   * Returns how many tabs got it and whether it was stored for tabs that
   * connect later (`ttl`). Throws a HeraldSdkError on failure. Disabled: false.
   *
   * @example
   * await sender.sendMessage({ aid: 1, message: { TYPE: 'MESSAGE', TITLE: 'Test notification', TEXT: 'Just<br/>some<br/>text' } });
   */
  async sendMessage(input: SendMessageInput): Promise<SendResult | false> {
    if (!this.#http) return false;
    if (typeof input !== 'object' || input === null) throw badArgument('sendMessage takes { aid | uid | aids | uids | all, message }');
    const body: Record<string, unknown> = { to: toRecipient(input), message: toPayload(input.message, input.title) };
    if (input.ttl !== undefined) {
      if (!Number.isFinite(input.ttl) || input.ttl < 0) throw badArgument(`ttl must be a non-negative number of seconds, got ${shownValue(input.ttl)}`);
      body.ttl = input.ttl;
    }
    if (input.idempotencyKey !== undefined) {
      // The server's bounds (1 to 200 characters, counted as code points, as its validator
      // counts them): an empty key was a 400 after the round trip, and 150 emoji were refused here.
      const chars = typeof input.idempotencyKey === 'string' ? [...input.idempotencyKey].length : 0;
      if (typeof input.idempotencyKey !== 'string' || chars === 0 || chars > 200) {
        throw badArgument(`idempotencyKey must be a string of 1 to 200 characters, got ${typeof input.idempotencyKey === 'string' ? `${chars} characters` : shownValue(input.idempotencyKey)}`);
      }
      body.idempotencyKey = input.idempotencyKey;
    }
    // Sent again after a lost answer only when the server keeps the key in its store: for a send
    // it stores (an object with a TTL above 0), and only for that TTL, so a repeat that may reach
    // it later is not made (the transport's repeatableForMs). A string or a TTL of 0 goes to the
    // tabs open now only, and its key lives in one node's memory: a restart, the usual reason
    // for a lost answer, forgets it and a repeat would reach the tabs again. So does a send
    // without `ttl`: the server's defaultTtlMs may be 0, which the SDK cannot see.
    const ttlMs = input.ttl === undefined ? undefined : Math.round(input.ttl * 1000);
    const repeatable = input.idempotencyKey !== undefined && typeof body.message === 'object' && ttlMs !== undefined && ttlMs > 0;
    const options = ttlMs === undefined ? { repeatable } : { repeatable, repeatableForMs: ttlMs };
    const answer = await this.#http.request('POST', '/send', body, options);
    // What a caller (and `herald send`) reads: `{}` from another service read as "delivered to undefined tabs".
    const result = heraldAnswer<SendResult>(answer, 'POST /send', { delivered: 'number', queued: 'boolean' });
    if (result.results !== undefined && !(Array.isArray(result.results) && result.results.every(isPersonResult))) {
      badResponse(`POST /send: HTTP ${answer.status} with "results" that is not a list of per-person results: not Herald's answer`, answer.status);
    }
    // The answer is the last attempt's: after a repeat whose first copy went through (its answer
    // lost), it says `duplicate` and 0 tabs, which alone read as "not sent".
    if (answer.attempts > 1) result.retried = true;
    return result;
  }

  /**
   * Sends a raw legacy-protocol request (docs/legacy.md, "Requests and
   * answers") and returns what the old daemon would have answered:
   * `{TYPE:"PONG"}`, `{TYPE:"RESULT",…}`,
   * `0`, `1`, or `{TYPE:"ERROR",ERROR:…}` — and `null` for a `SILENT` one
   * that was done (one refused or failed still gives its `{TYPE:"ERROR",…}`).
   * The seed's `json_request`: like the Perl client, it also accepts the
   * request wrapped as `{ MESSAGE: { TYPE: 'COMMAND', … } }`. Disabled: false.
   */
  async jsonRequest(request: Record<string, unknown>): Promise<LegacyAnswer | false> {
    if (!this.#http) return false;
    if (typeof request !== 'object' || request === null || Array.isArray(request)) throw badArgument('jsonRequest takes a request object');
    // The Perl client's json_request({ MESSAGE => {...} }) put the request under MESSAGE;
    // a real legacy request always has TYPE at the top (even PROXY, whose MESSAGE is its payload).
    const wrapped = request.TYPE === undefined && typeof request.MESSAGE === 'object' && request.MESSAGE !== null && !Array.isArray(request.MESSAGE);
    const payload = wrapped ? (request.MESSAGE as Record<string, unknown>) : request;
    const answer = await this.#http.request('POST', '/legacy', payload);
    return answer.status === 204 ? null : (answer.body as LegacyAnswer);
  }

  /**
   * Closes every tab of one person, telling them `reason` (a logout, a
   * kick). Returns how many tabs were open. Disabled: false.
   */
  async disconnect(input: Person & { reason?: string }): Promise<number | false> {
    if (!this.#http) return false;
    const body = { to: personBody(input), reason: input.reason ?? 'disconnected by the server' };
    return heraldAnswer<{ tabs: number }>(await this.#http.request('POST', '/disconnect', body), 'POST /disconnect', { tabs: 'number' }).tabs;
  }

  /**
   * Delivery status of a stored notification (its id is `messageId` in the
   * send result): acknowledged by a tab, expired, or still waiting. `null`
   * when the server knows no such message (an id over 100 characters, which
   * it never hands out, without asking). Any other 404, a wrong path prefix
   * in `url`, throws. Disabled: null.
   */
  async messageStatus(id: string): Promise<MessageStatus | null> {
    if (!this.#http) return null;
    const path = `/messages/${pathId(id)}`;
    if (id.length > MAX_ID_LENGTH) return null;
    const answer = await missingAsNull(this.#http.request('GET', path), 'message');
    return answer === null ? null : heraldAnswer<MessageStatus>(answer, 'GET /messages/:id', { acknowledged: 'boolean', expired: 'boolean' });
  }

  // ---- background commands -------------------------------------------------

  /**
   * Runs `program` for an admin in the background and returns at once with
   * the command's id; the admin's tabs get live progress and a notification
   * when it ends (`success` on exit status 0, `error` otherwise). The seed's
   * `run_in_background(program, {timeout}, {PROGRAM_ARGS})`, except that
   * `args` is a real argument vector: `['-c', '3']`, not `'-c 3'`.
   * Throws a HeraldSdkError (`HERALD_ERR_COMMAND_FORBIDDEN`, …). Disabled: false.
   */
  async runInBackground(program: string, options: RunInBackgroundOptions = {}): Promise<string | false> {
    if (!this.#http) return false;
    const aid = options.aid ?? this.#aid;
    if (aid === undefined) throw badArgument('runInBackground needs an admin: pass { aid } or the constructor\'s "aid"');
    if (!isPersonId(aid)) throw badArgument(`aid must be a positive integer, got ${shownValue(aid)}`);
    if (typeof program !== 'string' || program === '') throw badArgument('program must be a non-empty string');
    // A string was spread into its characters ('-c 1' ran the program with - c ' ' 1), a valid
    // vector the server could not tell from one meant: the Perl habit refused here instead.
    const args = options.args ?? [];
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
      throw badArgument(`args must be an array of strings (an argument vector such as ['-c', '3'], not a command line), got ${shownValue(args)}`);
    }
    const body: Record<string, unknown> = { aid, program, args: [...args] };
    if (options.timeout !== undefined) body.timeout = options.timeout;
    if (options.success !== undefined) body.success = options.success;
    if (options.error !== undefined) body.error = options.error;
    if (options.id !== undefined) body.id = options.id;
    if (options.door !== undefined) body.door = options.door;
    return heraldAnswer<CommandInfo>(await this.#http.request('POST', '/commands', body), 'POST /commands', { id: 'string' }).id;
  }

  /**
   * A command's state, exit code and output so far; `null` when the server
   * knows no such command (an id over 100 characters without asking; any other
   * 404, a wrong path prefix in `url`, throws). `since` asks for the output after that many
   * characters only, `wait` lets the server hold the answer until the
   * command ends (at most that many seconds; the request's deadline is then
   * `timeoutMs` plus that wait). Disabled: null.
   */
  async commandStatus(id: string, options: CommandStatusOptions = {}): Promise<CommandInfo | null> {
    if (!this.#http) return null;
    const path = `/commands/${pathId(id)}`;
    if (id.length > MAX_ID_LENGTH) return null;
    const query = new URLSearchParams();
    if (options.since !== undefined) query.set('since', String(options.since));
    if (options.wait !== undefined) query.set('wait', String(options.wait));
    const qs = query.size > 0 ? `?${query.toString()}` : '';
    // The server may hold the answer for `wait` seconds: that is on top of our deadline.
    const answer = await missingAsNull(this.#http.request('GET', `${path}${qs}`, undefined, { holdMs: (options.wait ?? 0) * 1000 }), 'command');
    if (answer === null) return null;
    // Its state and its output (a string, '' when the server kept none) are what a caller reads.
    return heraldAnswer<CommandInfo>(answer, 'GET /commands/:id', { output: 'string', state: 'string' });
  }

  /**
   * Recent commands, newest first, without their output (`commandStatus`
   * gives it): the server's fifty outputs of up to `commandsOutputCap` each,
   * as JSON up to six times that, came to more than `maxAnswerBytes`, and the
   * call failed for good. Disabled: [].
   */
  async listCommands(limit?: number): Promise<ListedCommand[]> {
    if (!this.#http) return [];
    const answer = await this.#http.request('GET', `/commands?output=false${limit === undefined ? '' : `&limit=${limit}`}`);
    return heraldAnswer<{ commands: ListedCommand[] }>(answer, 'GET /commands', { commands: 'array' }).commands;
  }

  /** Cancels a queued or running command (its process group is killed). Returns its state after. Disabled: false. */
  async cancelCommand(id: string): Promise<CommandInfo | false> {
    if (!this.#http) return false;
    return heraldAnswer<CommandInfo>(await this.#http.request('POST', `/commands/${pathId(id)}/cancel`), 'POST /commands/:id/cancel', { state: 'string' });
  }

  // ---- tokens --------------------------------------------------------------

  /**
   * A token a page uses to connect its tab: `ws://HOST/ws/admin?token=…`.
   * `ttl` in seconds (default: 12 h locally, the server's `tokenTtlMs`
   * through the API). Signed locally when the sender has the `secret`,
   * otherwise minted by the server. Disabled: false.
   */
  async createConnectToken(input: Person & { ttl?: number }): Promise<ConnectToken | false> {
    if (!this.enabled) return false;
    const principal = toPrincipal(input);
    // The server's bounds (POST /api/v1/tokens: 1 s to 31 days), kept when signing locally too:
    // a ttl of 0.5 gave a 1 s token signed locally and a refusal from the server.
    if (input.ttl !== undefined && (!Number.isFinite(input.ttl) || input.ttl < 1 || input.ttl > MAX_CONNECT_TOKEN_TTL_SEC)) {
      throw badArgument(`ttl must be a number of seconds from 1 up to ${MAX_CONNECT_TOKEN_TTL_SEC} (31 days), got ${shownValue(input.ttl)}`);
    }
    if (this.#secret !== undefined) return mintConnectToken(this.#secret, principal, input.ttl ?? DEFAULT_CONNECT_TOKEN_TTL_SEC);
    if (!this.#http) return false;
    const body: Record<string, unknown> = { kind: principal.kind, id: principal.id };
    if (input.ttl !== undefined) body.ttl = input.ttl;
    return heraldAnswer<ConnectToken>(await this.#http.request('POST', '/tokens', body, { repeatable: true }), 'POST /tokens', { token: 'string' });
  }
}

// ---- argument shaping ------------------------------------------------------

/**
 * The longest id a lookup asks about, in characters: the server's router
 * refuses a path part over 100 characters with 400 before any route, and no
 * id it hands out (a message's, a command's UUID) comes near.
 */
const MAX_ID_LENGTH = 100;

/**
 * A lookup's answer, or null when the server answered that it has no such
 * `resource`: 404 HERALD_ERR_NOT_FOUND with `details.resource` naming it.
 * Any other 404 (no such route: a wrong path prefix in the SDK's url, a
 * proxy's page) still throws: read as "no such message" it hid the mistake.
 */
async function missingAsNull(request: Promise<HttpAnswer>, resource: 'message' | 'command'): Promise<HttpAnswer | null> {
  try {
    return await request;
  } catch (e) {
    if (e instanceof HeraldSdkError && e.status === 404 && e.code === 'HERALD_ERR_NOT_FOUND' && isPlainObject(e.details) && e.details.resource === resource) return null;
    throw e;
  }
}

type FieldType = 'string' | 'number' | 'boolean' | 'array';

/**
 * The body of a 2xx answer, when it is what Herald answers on that route: a
 * JSON object whose `fields` (the ones the caller reads; `a.b` for one inside
 * an object) have the types given. Anything else came from something that is
 * not Herald (an empty 200 or a `[]` from a proxy, another service at that
 * URL): HERALD_ERR_BAD_RESPONSE, not a TypeError later or a quietly wrong
 * answer (`{}` read as 0 tabs).
 */
function heraldAnswer<T>(answer: HttpAnswer, route: string, fields: Readonly<Record<string, FieldType>> = {}): T {
  const body = answer.body;
  const isObject = isPlainObject(body);
  const misfit = isObject ? Object.entries(fields).find(([path, type]) => !fits(valueAt(body, path), type)) : undefined;
  if (isObject && misfit === undefined) return body as T;
  // Without the API token, which something echoing the request back would show; taken out before the cut.
  const shown = body === undefined ? 'an empty body' : answer.redact(JSON.stringify(body)).slice(0, 120);
  const wanted = misfit === undefined ? 'a JSON object' : `a JSON object with "${misfit[0]}" (${misfit[1] === 'array' ? 'a list' : `a ${misfit[1]}`})`;
  return badResponse(`${route}: HTTP ${answer.status} with ${shown}, not Herald's answer (${wanted})`, answer.status);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function valueAt(body: Record<string, unknown>, path: string): unknown {
  let value: unknown = body;
  for (const key of path.split('.')) value = isPlainObject(value) ? value[key] : undefined;
  return value;
}

function fits(value: unknown, type: FieldType): boolean {
  return type === 'array' ? Array.isArray(value) : typeof value === type;
}

/** One person's outcome in a send's `results`, as much of it as callers read. */
function isPersonResult(r: unknown): boolean {
  return isPlainObject(r) && typeof r.delivered === 'number' && typeof r.queued === 'boolean';
}

/**
 * An id as one segment of the path. `.` and `..` are path steps, not
 * segments (the URL parser resolves `/commands/..` to `/api/v1`, another
 * route), and an empty one names the collection: refused before the network.
 */
function pathId(id: unknown): string {
  if (typeof id !== 'string' || id === '' || id === '.' || id === '..') {
    throw badArgument(`id must be a non-empty string other than "." and "..", got ${shownValue(id)}`);
  }
  return encodeURIComponent(id);
}

function badResponse(message: string, status: number): never {
  throw new HeraldSdkError('HERALD_ERR_BAD_RESPONSE', message, status);
}

function badArgument(message: string): HeraldSdkError {
  return new HeraldSdkError('HERALD_ERR_BAD_ARGUMENT', message);
}

const RECIPIENT_KEYS = ['aid', 'uid', 'aids', 'uids', 'all'] as const;

function toPrincipal(person: Person): Principal {
  if (typeof person !== 'object' || person === null) throw badArgument('give { aid } or { uid }');
  const p = person as { aid?: unknown; uid?: unknown };
  if (p.aid !== undefined && p.uid !== undefined) throw badArgument('give aid or uid, not both');
  if (p.aid !== undefined) {
    if (!isPersonId(p.aid)) throw badArgument(`aid must be a positive integer, got ${shownValue(p.aid)}`);
    return { kind: 'admin', id: p.aid };
  }
  if (p.uid !== undefined) {
    if (!isPersonId(p.uid)) throw badArgument(`uid must be a positive integer, got ${shownValue(p.uid)}`);
    return { kind: 'user', id: p.uid };
  }
  throw badArgument('give aid or uid');
}

function personBody(person: Person): { aid: number } | { uid: number } {
  const p = toPrincipal(person);
  return p.kind === 'admin' ? { aid: p.id } : { uid: p.id };
}

/** Exactly one recipient key, checked here so that a typo fails before the network. */
function toRecipient(input: Recipient): Recipient {
  const given = RECIPIENT_KEYS.filter((k) => (input as Record<string, unknown>)[k] !== undefined);
  if (given.length !== 1) throw badArgument(`give exactly one recipient (${RECIPIENT_KEYS.join(', ')}), got ${given.length === 0 ? 'none' : given.join(' and ')}`);
  const key = given[0]!;
  const value = (input as Record<string, unknown>)[key];
  switch (key) {
    case 'aid':
    case 'uid':
      return personBody(input as Person);
    case 'aids':
    case 'uids': {
      if (!Array.isArray(value) || !value.every(isPersonId)) throw badArgument(`${key} must be a list of positive integers`);
      return key === 'aids' ? { aids: [...value] } : { uids: [...value] };
    }
    case 'all':
      if (value !== 'admins' && value !== 'users') throw badArgument(`all must be "admins" or "users", got ${JSON.stringify(value)}`);
      return { all: value };
  }
}

/** The message as the API takes it (see SendMessageInput.message for the rules). */
export function toPayload(message: unknown, title?: string): NotificationPayload {
  if (typeof message === 'string') return title === undefined ? message : { TYPE: 'MESSAGE', TITLE: title, TEXT: message };
  if (typeof message !== 'object' || message === null || Array.isArray(message)) throw badArgument('message must be an object or a string');
  const obj = { ...(message as Record<string, unknown>) };
  if (obj.TYPE === undefined) obj.TYPE = 'MESSAGE';
  if (typeof obj.TYPE !== 'string') throw badArgument('message.TYPE must be a string');
  if (title !== undefined && obj.TITLE === undefined) obj.TITLE = title;
  return obj as NotificationObject;
}

/**
 * A URL that did not parse, quoted without what may be a password
 * (`http://bob:pw@host:99999` does not parse either): everything from after
 * `//` (or from the start) to the last `@`. A password may itself hold `@`
 * or `/` (`bob:p@ss/w@host`), which a cut at the first `@`, or at a `/`,
 * showed in part.
 */
function withoutUserInfo(url: string): string {
  const at = url.lastIndexOf('@');
  if (at < 0) return url;
  const slashes = url.indexOf('//');
  return slashes >= 0 && slashes < at ? `${url.slice(0, slashes + 2)}(user info)${url.slice(at)}` : `(user info)${url.slice(at)}`;
}
