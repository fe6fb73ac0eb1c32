/**
 * Parses one legacy-protocol request (docs/legacy.md, "Requests and answers") into a discriminated
 * union, once, at the edge (STYLE.md §6): the handler then deals in typed
 * values only. Every compatibility quirk of the old Perl clients is resolved
 * here, with the reason next to it.
 */
import type { NotificationObject, NotificationPayload } from '../../protocol/frames.js';
import { LegacyErrorText, type LegacyErrorAnswer } from '../../protocol/legacy.js';
import type { PrincipalKind } from '../../protocol/principal.js';
import { toPersonId } from '../../protocol/principal.js';
import { jsonNestsDeeperThan, MAX_JSON_DEPTH } from '../../protocol/json-depth.js';
import { quoted } from '../../protocol/text-cut.js';
import type { ErrorCode } from '../errors.js';
import { ttlMsFromSeconds } from '../notifier.js';

/** The body of a request, by `TYPE`. */
export type LegacyRequestBody =
  | { readonly type: 'PING' }
  | {
    readonly type: 'MESSAGE';
    readonly to: PrincipalKind;
    /** A person's id, or `'*'` for everyone of that kind. */
    readonly target: number | '*';
    readonly data: NotificationPayload;
    /** Herald's extension `TTL` (seconds), in ms; absent → the configured default. */
    readonly ttlMs?: number;
  }
  | { readonly type: 'REQUEST_LIST'; readonly kind: PrincipalKind }
  | {
    readonly type: 'COMMAND';
    readonly aid: number;
    readonly program: string;
    readonly args: string[];
    readonly timeoutSec?: number;
    readonly success?: NotificationPayload;
    readonly error?: NotificationPayload;
    readonly taskId?: string | number;
  }
  | { readonly type: 'PROXY'; readonly plugin: string; readonly echo?: unknown };

/** A parsed request: its body plus what travels beside it. */
export interface LegacyRequest {
  readonly body: LegacyRequestBody;
  /** `SILENT` was set: the sender wants no answer at all. */
  readonly silent: boolean;
  /**
   * `TOKEN`, when the request carried one: a string, or a number or boolean
   * as text (the old daemon compared it with Perl's `eq`). `null` for an
   * object or a list, which the old daemon compared as its Perl name
   * (`HASH(0x…)`): it equals no configured token.
   */
  readonly token?: string | null;
}

/** The fields of a COMMAND the parser refused, as they came: an attempt to run a program, for the audit trail. */
export interface RefusedLegacyCommand {
  readonly aid: unknown;
  readonly program: unknown;
  readonly args: unknown;
  readonly taskId: unknown;
}

export type ParsedLegacyRequest =
  | { readonly ok: true; readonly request: LegacyRequest }
  /**
   * Even an invalid request may be SILENT: then the error is not sent either. A refused
   * COMMAND also carries what it held and its TOKEN (see LegacyRequest.token), so that the
   * handler can audit it once the token is checked.
   */
  | {
    readonly ok: false; readonly error: LegacyErrorAnswer; readonly silent: boolean;
    readonly command?: RefusedLegacyCommand; readonly token?: string | null;
  };

/** Bound on `DATA.TEXT` unwrapping, so a hostile nesting cannot loop for long. */
const MAX_UNWRAP_DEPTH = 8;

export function legacyError(error: string, code?: ErrorCode): LegacyErrorAnswer {
  return code === undefined ? { TYPE: 'ERROR', ERROR: error } : { TYPE: 'ERROR', ERROR: error, CODE: code };
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Perl truthiness, as the old daemon tested `$request->{SILENT}`. */
export function perlTrue(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '' || v === '0') return false;
  return true;
}

/** Perl falsiness of a required field (the old daemon tested `!$data->{ID}`). */
function missing(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

/**
 * `{"MESSAGE":{...},"SILENT":1}` — the envelope Abills::Backend::API writes
 * for a NON_SAFE (fire-and-forget) request: no TYPE at the top, the request
 * inside. Unwrapped so that such requests are carried out (and stay silent).
 */
function unwrapEnvelope(raw: Obj): Obj {
  if (raw.TYPE !== undefined) return raw;
  // MESSAGE is an object, or (json_request documents it so) a JSON string of one.
  const message = typeof raw.MESSAGE === 'string' ? jsonObjectIn(raw.MESSAGE) : raw.MESSAGE;
  if (isObject(message) && typeof message.TYPE === 'string') {
    const inner: Obj = { ...message };
    if (raw.SILENT !== undefined && inner.SILENT === undefined) inner.SILENT = raw.SILENT;
    if (raw.TOKEN !== undefined && inner.TOKEN === undefined) inner.TOKEN = raw.TOKEN;
    return inner;
  }
  return raw;
}

export interface ParseLegacyOptions {
  /**
   * The value was read by a reader that already refused anything nested
   * deeper than MAX_JSON_DEPTH (the TCP listener's framer counts the depth as
   * the bytes arrive): the parser's own walk over the whole value, a second
   * pass over every object in it, is skipped. Default false: a caller that
   * hands over any value gets the walk.
   */
  readonly depthChecked?: boolean;
}

/** Parses and validates one request. Never throws. */
export function parseLegacyRequest(value: unknown, options: ParseLegacyOptions = {}): ParsedLegacyRequest {
  if (!isObject(value)) return { ok: false, error: legacyError(LegacyErrorText.INCORRECT_REQUEST), silent: false };
  const raw = unwrapEnvelope(value);
  const silent = perlTrue(raw.SILENT) || (raw.TYPE === 'MESSAGE' && silentInData(raw.DATA));
  const fail = (error: LegacyErrorAnswer): ParsedLegacyRequest => {
    if (raw.TYPE !== 'COMMAND') return { ok: false, error, silent };
    const token = tokenOf(raw.TOKEN);
    const command = refusedCommand(raw);
    return token === undefined ? { ok: false, error, silent, command } : { ok: false, error, silent, command, token };
  };
  if (options.depthChecked !== true && nestsDeeperThan(value, MAX_JSON_DEPTH)) {
    return fail(legacyError(`${LegacyErrorText.INCORRECT_REQUEST}: nested deeper than ${MAX_JSON_DEPTH} levels`, 'HERALD_ERR_BAD_REQUEST'));
  }
  if (raw.TYPE === undefined || raw.TYPE === null || raw.TYPE === '') return fail(legacyError(LegacyErrorText.INCORRECT_REQUEST));
  if (typeof raw.TYPE !== 'string') return fail(legacyError(LegacyErrorText.INCORRECT_REQUEST));
  const body = parseBody(raw.TYPE, raw);
  if ('error' in body) return fail(body.error);
  const token = tokenOf(raw.TOKEN);
  return { ok: true, request: token === undefined ? { body: body.body, silent } : { body: body.body, silent, token } };
}

/** See LegacyRequest.token. Never String() on an object: a hostile one throws (`{"toString":0}`). */
function tokenOf(v: unknown): string | null | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** Whether `value` has arrays or objects nested more than `limit` deep. Iterative: the value may be deeper than the stack. */
function nestsDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** A field's value in an error message: short, and never throws (JSON.stringify of a hostile value can). */
function shown(v: unknown): string {
  if (typeof v === 'string') return quoted(v, 40);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object' && v !== null) return 'an object';
  return String(v);
}

type BodyResult = { body: LegacyRequestBody } | { error: LegacyErrorAnswer };

const bad = (message: string): BodyResult => ({ error: legacyError(message, 'HERALD_ERR_BAD_REQUEST') });
/** A notification the HTTP API refuses too: the Notifier's code for its own refusals (a too long TYPE). */
const invalid = (message: string): BodyResult => ({ error: legacyError(message, 'HERALD_ERR_VALIDATION') });

/**
 * A notification object the legacy door refuses, and why: one whose TYPE is
 * there, and not empty, but not a string.
 */
export class RefusedNotification {
  constructor(readonly reason: string) {}
}

function parseBody(type: string, raw: Obj): BodyResult {
  switch (type) {
    case 'PING':
      return { body: { type: 'PING' } };
    case 'MESSAGE':
      return parseMessage(raw);
    case 'REQUEST_LIST':
      return parseList(raw);
    case 'COMMAND':
      return parseCommand(raw);
    case 'PROXY':
      return parseProxy(raw);
    default:
      return { error: legacyError(LegacyErrorText.UNKNOWN_TYPE) };
  }
}

/**
 * `TO`: `ADMIN` or `USER`, as the old daemon knew them; `CLIENT` is what
 * Abills::Sender::Browser's send_message writes for a UID, so it means USER.
 * Absent means ADMIN (every old client call that omits it targets admins).
 */
function recipientKind(to: unknown): PrincipalKind | undefined {
  if (to === undefined || to === null || to === '') return 'admin';
  if (typeof to !== 'string') return undefined;
  switch (to.toUpperCase()) {
    case 'ADMIN': case 'ADMINS': return 'admin';
    case 'USER': case 'USERS': case 'CLIENT': case 'CLIENTS': return 'user';
    default: return undefined;
  }
}

function parseMessage(raw: Obj): BodyResult {
  if (missing(raw.ID)) return bad('MESSAGE without ID: say who gets it (an AID or UID, or "*")');
  if (missing(raw.DATA)) return bad('MESSAGE without DATA: nothing to send');
  const to = recipientKind(raw.TO);
  if (!to) return bad(`MESSAGE with unknown TO ${shown(raw.TO)}: expected ADMIN or USER`);
  let target: number | '*';
  if (raw.ID === '*') target = '*';
  else {
    const id = toPersonId(raw.ID);
    if (id === undefined) return bad(`MESSAGE with a bad ID ${shown(raw.ID)}: expected a positive integer or "*"`);
    target = id;
  }
  const data = normaliseData(raw.DATA);
  if (data === undefined) return bad('MESSAGE with bad DATA: expected an object or a string');
  if (data instanceof RefusedNotification) return invalid(`MESSAGE with bad DATA: ${data.reason}`);
  let ttlMs: number | undefined;
  if (raw.TTL !== undefined && raw.TTL !== null) {
    const ttl = typeof raw.TTL === 'string' && raw.TTL.trim() !== '' ? Number(raw.TTL) : raw.TTL;
    if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) return bad('MESSAGE with a bad TTL: expected seconds, a number ≥ 0');
    ttlMs = ttlMsFromSeconds(ttl);
  }
  const body: LegacyRequestBody = ttlMs === undefined ? { type: 'MESSAGE', to, target, data } : { type: 'MESSAGE', to, target, data, ttlMs };
  return { body };
}

/** Bound on undoing UTF-8 read as Latin-1 (perlBytesDecoded): twice is the most a seed client does. */
const MAX_BYTE_DECODES = 3;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * `s` with UTF-8 taken for Latin-1 undone, as often as it was done (at most
 * MAX_BYTE_DECODES times). Abills::Sender::Browser's send_message JSON-encodes
 * a hash MESSAGE with `JSON->new->utf8`, which yields UTF-8 bytes in a Perl
 * string, and then encodes the whole request with utf8 again: the DATA string
 * Herald reads holds each of those bytes as a character of its own
 * ("Ð\x9DÐ¾" for "Но"), and twice over when the hash held Perl byte strings
 * (no `use utf8`). The old daemon wrote that string to the browser as bytes,
 * so the panel showed the text right. A string is taken for such bytes only
 * when it has no character past U+00FF (text that has one is text already),
 * has one past U+007F, and those characters are valid UTF-8 as bytes, which
 * Latin-1 text all but never is ("Café": an é alone is not).
 */
function perlBytesDecoded(s: string): string {
  let t = s;
  for (let i = 0; i < MAX_BYTE_DECODES && /[\x80-\xff]/.test(t) && !/[^\x00-\xff]/.test(t); i++) {
    try {
      t = strictUtf8.decode(Buffer.from(t, 'latin1'));
    } catch {
      break;
    }
  }
  return t;
}

/**
 * A string that holds a JSON object with a TYPE (any JSON object when
 * `anyObject`), else undefined. One nested deeper than MAX_JSON_DEPTH is
 * left a string (as text that is not JSON is): a request's own depth was
 * checked, but a string in it may hold 1 MB of `[`. UTF-8 bytes read as
 * Latin-1 in it are decoded first (perlBytesDecoded).
 */
function jsonObjectIn(s: string, anyObject = false): Obj | undefined {
  const t = s.trim();
  if (!t.startsWith('{') || jsonNestsDeeperThan(t, MAX_JSON_DEPTH)) return undefined;
  try {
    const v: unknown = JSON.parse(perlBytesDecoded(t));
    return isObject(v) && (anyObject || typeof v.TYPE === 'string') ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether a MESSAGE's DATA asks for no answer: Abills::Sender::Browser's
 * send_message with NON_SAFE puts `SILENT => 1` in the MESSAGE hash it
 * JSON-encodes into DATA, then writes without reading. Answered all the
 * same, the answer would wait in the socket and be read as the answer to
 * the client's next request (has_connected_admin then reads a RESULT
 * where it expects a LIST). normaliseData leaves SILENT out of what the
 * tabs get.
 */
function silentInData(data: unknown): boolean {
  if (isObject(data)) return perlTrue(data.SILENT);
  if (typeof data !== 'string' || !data.includes('"SILENT"')) return false;
  const inner = jsonObjectIn(data, true);
  return inner !== undefined && perlTrue(inner.SILENT);
}

/**
 * Turns `DATA` into what the tabs get:
 * - Abills::Sender::Browser JSON-encodes a hash MESSAGE before putting it in
 *   DATA, so a string that holds a JSON object is that object, with or
 *   without a TYPE (`send_message({AID, MESSAGE => {TITLE, TEXT}})`); any
 *   other string is delivered as that string (docs/browser.md, "The dispatcher's rules").
 * - An object without TYPE gets `TYPE: "MESSAGE"`.
 * - A Perl-true `SILENT` is the client's NON_SAFE flag (silentInData), not
 *   part of the notification: left out.
 * - send_message({AID, MESSAGE, TITLE}) writes DATA
 *   `{"TYPE":"MESSAGE","TITLE":<TITLE>,"TEXT":<MESSAGE>}` (docs/legacy.md, "Requests and answers"),
 *   and the seed's example passes a whole notification as MESSAGE
 *   (`{"TYPE":"MESSAGE","TITLE":null,"TEXT":{"TYPE":"MESSAGE",...}}`): the
 *   seed promises the inner notification, never one whose text is an
 *   object, so an object (or JSON string of one) with a TYPE in `TEXT`
 *   replaces its wrapper, and so does an object without a TYPE
 *   (`MESSAGE => {TITLE, TEXT}`) in a MESSAGE's `TEXT`: it is the
 *   notification, and gets TYPE MESSAGE. Fields the wrapper has and the inner
 *   lacks (a TITLE given beside the MESSAGE object) are kept. A string
 *   without a TYPE in `TEXT` may be text that looks like JSON, and another
 *   TYPE's object `TEXT` may be that type's own data: both stay as they are.
 */
export function normaliseData(data: unknown): NotificationPayload | RefusedNotification | undefined {
  let current: Obj;
  if (typeof data === 'string') {
    const inner = jsonObjectIn(data, true);
    if (!inner) return data;
    current = inner;
  } else if (isObject(data)) {
    current = data;
  } else {
    return undefined;
  }
  // Before unwrapping, too: a wrapper's TYPE 5 is not the MESSAGE that lets a TEXT object replace it.
  const refused = typeRefusal(current);
  if (refused) return refused;
  for (let depth = 0; depth < MAX_UNWRAP_DEPTH; depth++) {
    const text = current.TEXT;
    const inner = isObject(text) ? (typeof text.TYPE === 'string' || isMessage(current) ? text : undefined) : typeof text === 'string' ? jsonObjectIn(text) : undefined;
    if (!inner) break;
    const merged: Obj = { ...inner };
    for (const [k, v] of Object.entries(current)) {
      if (k === 'TYPE' || k === 'TEXT' || v === null || v === undefined) continue;
      if (!(k in merged)) merged[k] = v;
    }
    current = merged;
  }
  if (perlTrue(current.SILENT)) {
    const { SILENT: _flag, ...notification } = current;
    current = notification;
  }
  return withType(current);
}

/** A notification that is (or will be, by withType) a MESSAGE. */
function isMessage(o: Obj): boolean {
  return missing(o.TYPE) || o.TYPE === 'MESSAGE';
}

/**
 * Refuses a TYPE that is there but not a string (5, true, ["Payment"], {"x":1}), as the
 * HTTP API does (400 HERALD_ERR_VALIDATION): made a MESSAGE, the tab got a notification of
 * a kind the panel never sent. Only a missing TYPE (or null, Perl's undef, or "") is a
 * MESSAGE (docs/legacy.md, "Requests and answers").
 */
function typeRefusal(o: Obj): RefusedNotification | undefined {
  return missing(o.TYPE) || typeof o.TYPE === 'string' ? undefined : new RefusedNotification(`a notification's TYPE must be a string, not ${shown(o.TYPE)}`);
}

/** `o` as a notification: a missing TYPE becomes MESSAGE; one that is not a string is refused. */
function withType(o: Obj): NotificationObject | RefusedNotification {
  const refused = typeRefusal(o);
  if (refused) return refused;
  return typeof o.TYPE === 'string' && o.TYPE !== '' ? (o as NotificationObject) : { ...o, TYPE: 'MESSAGE' };
}

/** What notificationOrUndefined answers for a value that is neither (a symbol: any string is a valid notification). */
const BAD_NOTIFICATION: unique symbol = Symbol('bad notification');

/** SUCCESS / ERROR of a COMMAND: a string or a notification object (or its TYPE refused). */
function notificationOrUndefined(v: unknown): NotificationPayload | RefusedNotification | undefined | typeof BAD_NOTIFICATION {
  if (missing(v)) return undefined;
  if (typeof v === 'string') return v;
  if (isObject(v)) return withType(v);
  return BAD_NOTIFICATION;
}

function parseList(raw: Obj): BodyResult {
  if (missing(raw.LIST_TYPE)) return bad('REQUEST_LIST without LIST_TYPE: expected ADMINS or USERS');
  const kind = typeof raw.LIST_TYPE === 'string' ? recipientKind(raw.LIST_TYPE) : undefined;
  if (!kind) return bad(`REQUEST_LIST with unknown LIST_TYPE ${shown(raw.LIST_TYPE)}: expected ADMINS or USERS`);
  return { body: { type: 'REQUEST_LIST', kind } };
}

function parseCommand(raw: Obj): BodyResult {
  if (missing(raw.AID)) return bad('COMMAND without AID: say which admin is told the result');
  if (missing(raw.PROGRAM)) return bad('COMMAND without PROGRAM: say what to run');
  const aid = toPersonId(raw.AID);
  if (aid === undefined) return bad(`COMMAND with a bad AID ${shown(raw.AID)}: expected a positive integer`);
  if (typeof raw.PROGRAM !== 'string') return bad('COMMAND with a bad PROGRAM: expected a string');
  const program = raw.PROGRAM;
  let args: string[];
  const pa = raw.PROGRAM_ARGS;
  if (pa === undefined || pa === null) args = [];
  // A single string is one element; it is split into words like every element.
  else if (typeof pa === 'string') args = [pa];
  else if (Array.isArray(pa) && pa.every((a) => typeof a === 'string' || typeof a === 'number')) args = pa.map(String);
  else return bad('COMMAND with bad PROGRAM_ARGS: expected a list of strings');
  let timeoutSec: number | undefined;
  if (raw.ARGS !== undefined && raw.ARGS !== null) {
    if (!isObject(raw.ARGS)) return bad('COMMAND with bad ARGS: expected an object such as {"timeout":5}');
    const t = raw.ARGS.timeout;
    if (t !== undefined && t !== null && t !== '') {
      const n = typeof t === 'string' ? Number(t) : t;
      if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return bad('COMMAND with a bad ARGS.timeout: expected seconds, a number > 0');
      timeoutSec = n;
    }
  }
  const success = notificationOrUndefined(raw.SUCCESS);
  const error = notificationOrUndefined(raw.ERROR);
  if (success === BAD_NOTIFICATION || error === BAD_NOTIFICATION) return bad('COMMAND with bad SUCCESS or ERROR: expected a string or a notification object');
  if (success instanceof RefusedNotification) return invalid(`COMMAND with bad SUCCESS: ${success.reason}`);
  if (error instanceof RefusedNotification) return invalid(`COMMAND with bad ERROR: ${error.reason}`);
  let taskId: string | number | undefined;
  if (typeof raw.ID === 'string' || typeof raw.ID === 'number') taskId = raw.ID;
  const body: { -readonly [K in keyof Extract<LegacyRequestBody, { type: 'COMMAND' }>]: Extract<LegacyRequestBody, { type: 'COMMAND' }>[K] } = {
    type: 'COMMAND', aid, program, args,
  };
  if (timeoutSec !== undefined) body.timeoutSec = timeoutSec;
  if (success !== undefined) body.success = success;
  if (error !== undefined) body.error = error;
  if (taskId !== undefined && taskId !== '') body.taskId = taskId;
  return { body };
}

/** A refused COMMAND's fields, read as parseCommand would have read them where it could. */
function refusedCommand(raw: Obj): RefusedLegacyCommand {
  const pa = raw.PROGRAM_ARGS;
  return {
    aid: toPersonId(raw.AID) ?? raw.AID,
    program: raw.PROGRAM,
    args: pa === null ? undefined : typeof pa === 'string' ? [pa] : pa,
    taskId: raw.ID === '' || raw.ID === null ? undefined : raw.ID,
  };
}

function parseProxy(raw: Obj): BodyResult {
  if (missing(raw.PROXY_TO) || typeof raw.PROXY_TO !== 'string') return bad('PROXY without PROXY_TO: say which plugin (Internal)');
  const message = raw.MESSAGE;
  // The Internal plugin answered MESSAGE.ECHO when it had one, else 1.
  const echo = isObject(message) && message.ECHO !== undefined && message.ECHO !== null ? message.ECHO : undefined;
  return { body: echo === undefined ? { type: 'PROXY', plugin: raw.PROXY_TO } : { type: 'PROXY', plugin: raw.PROXY_TO, echo } };
}
