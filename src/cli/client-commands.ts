/**
 * The `herald` commands that talk to a running server through the SDK
 * (send, online, ping, status) and the ones that only read the
 * configuration (token, config). Each prints its answer on stdout and
 * reports failure as a CliError (one line on stderr, a non-zero status).
 */
import { mintToken } from '../server/auth/token-resolver.js';
import { maskEnvEntries, maskUrlQuery, optionsMarkdownTable, SECRET_OPTION_KEYS, SECRET_QUERY_OPTION_KEYS, SECRET_VALUES_OPTION_KEYS } from '../server/options.js';
import { readSecrets, secretsFile } from '../server/secrets.js';
import { HeraldSdkError } from '../sdk/errors.js';
import type { Recipient, SendMessageInput, SendResult } from '../sdk/types.js';
import { MAX_CONNECT_TOKEN_TTL_SEC, toPayload } from '../sdk/browser-sender.js';
import { CliError, clientContext, Exit, loadCliOptions, personId, printable, type GlobalFlags } from './context.js';
import { parseDurationSec } from './duration.js';

/** One line of the answer on stdout (a reader gone away ends the command quietly: see program.ts). */
function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * Turns an SDK failure into the one line an operator needs. The message and
 * code may be a server's (whatever answers at the URL): printed only through
 * {@link printable}, so that no escape sequence of theirs reaches the terminal
 * and a 5 MB message is not printed whole.
 */
export function sdkFailure(e: unknown, url: string): never {
  if (e instanceof HeraldSdkError) {
    const said = printable(e.message);
    if (e.code === 'HERALD_ERR_UNREACHABLE') throw new CliError(`cannot reach Herald at ${url}: ${said} (is it running? --url / HERALD_URL)`);
    if (e.code === 'HERALD_ERR_CONNECTION_LOST') throw new CliError(`the connection to Herald at ${url} ended before its answer (is it restarting?): ${said}`);
    if (e.code === 'HERALD_ERR_UNAUTHORIZED') throw new CliError(`Herald at ${url} refused the API token (${e.code}): check HERALD_API_TOKEN / the data dir`);
    throw new CliError(`${said} (${printable(e.code, 100)}${e.status ? `, HTTP ${e.status}` : ''})`);
  }
  throw e;
}

function durationFlag(flag: string, value: string, examples = '0, 30s, 15m, 1h or 2d'): number {
  const sec = parseDurationSec(value);
  if (sec === undefined) throw new CliError(`${flag} must be a duration such as ${examples}; got ${JSON.stringify(value)}`, Exit.USAGE);
  return sec;
}

/**
 * A failure after which a request that is not safe to repeat may have been
 * carried out all the same: the connection ended before the answer, or no
 * answer came within --timeout-ms (the server may still be at it). The SDK
 * sends such a request again by itself only when it is safe to (docs/sdk.md, Retries).
 */
export function mayHaveRun(e: unknown): e is HeraldSdkError {
  return e instanceof HeraldSdkError && (e.code === 'HERALD_ERR_CONNECTION_LOST' || e.code === 'HERALD_ERR_TIMEOUT');
}

/** What happened, for a failure {@link mayHaveRun}: the start of the message that says what to do. */
export function lostAnswer(e: HeraldSdkError, url: string, timeoutMs: number): string {
  return e.code === 'HERALD_ERR_TIMEOUT'
    ? `Herald at ${url} did not answer within ${timeoutMs} ms (--timeout-ms)`
    : `the connection to Herald at ${url} ended before its answer (is it restarting?)`;
}

/**
 * A value as JSON, one line (or indented by `indent`), with nothing in it a terminal acts on:
 * JSON escapes C0 but leaves DEL and C1 (0x9b is a terminal's CSI) as they are.
 */
function jsonLine(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// ---- send ------------------------------------------------------------------

export interface SendFlags extends GlobalFlags {
  aid?: string;
  uid?: string;
  aids?: string;
  uids?: string;
  allAdmins?: boolean;
  allUsers?: boolean;
  title?: string;
  text?: string;
  type?: string;
  json?: string;
  ttl?: string;
  idempotencyKey?: string;
  printJson?: boolean;
}

/**
 * The exit status of a `send` that sent nothing because every recipient's
 * copy was a repeat of a live-only send (its idempotency key seen within the
 * last 5 minutes): apart from 1 ("reached nobody: try again"), so that a
 * script that resends on 1 does not resend a repeat until the key is
 * forgotten and the notification arrives twice; and not 0, since the answer
 * cannot say whether the first send reached anyone.
 */
export const REPEATED_EXIT = 4;

/** The longest idempotency key the server takes, in characters (code points). */
const MAX_KEY_CHARS = 200;

function idList(flag: string, value: string): number[] {
  return value.split(',').map((s) => personId(flag, s.trim()));
}

export function recipientFromFlags(flags: SendFlags): { to: Recipient; label: string } {
  const given: Array<{ to: Recipient; label: string }> = [];
  if (flags.aid !== undefined) given.push({ to: { aid: personId('--aid', flags.aid) }, label: `admin ${flags.aid}` });
  if (flags.uid !== undefined) given.push({ to: { uid: personId('--uid', flags.uid) }, label: `user ${flags.uid}` });
  if (flags.aids !== undefined) given.push({ to: { aids: idList('--aids', flags.aids) }, label: `admins ${flags.aids}` });
  if (flags.uids !== undefined) given.push({ to: { uids: idList('--uids', flags.uids) }, label: `users ${flags.uids}` });
  if (flags.allAdmins) given.push({ to: { all: 'admins' }, label: 'every admin' });
  if (flags.allUsers) given.push({ to: { all: 'users' }, label: 'every user' });
  if (given.length !== 1) throw new CliError('give exactly one of --aid, --uid, --aids, --uids, --all-admins, --all-users', Exit.USAGE);
  return given[0]!;
}

export function messageFromFlags(flags: SendFlags): SendMessageInput['message'] {
  if (flags.json !== undefined) {
    if (flags.title !== undefined || flags.text !== undefined || flags.type !== undefined) throw new CliError('--json replaces --title/--text/--type: give one or the other', Exit.USAGE);
    let parsed: unknown;
    try {
      parsed = JSON.parse(flags.json);
    } catch (e) {
      throw new CliError(`--json is not valid JSON: ${(e as Error).message}`, Exit.USAGE);
    }
    if (typeof parsed === 'string') return parsed;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError('--json must be a JSON object (or a JSON string)', Exit.USAGE);
    try {
      return toPayload(parsed);
    } catch (e) {
      throw new CliError(`--json: ${(e as Error).message}`, Exit.USAGE);
    }
  }
  if (flags.title === undefined && flags.text === undefined) throw new CliError('give --title and/or --text, or --json', Exit.USAGE);
  const message: Record<string, unknown> = { TYPE: flags.type ?? 'MESSAGE' };
  if (flags.title !== undefined) message.TITLE = flags.title;
  if (flags.text !== undefined) message.TEXT = flags.text;
  return message as SendMessageInput['message'];
}

/**
 * The stored message's id, to look it up by (GET /api/v1/messages/:id, the
 * SDK's messageStatus): ` (message ID)` for a broadcast or one person. For a
 * list each person's copy is a message of its own, with its own id:
 * ` (message ID for admin 7, message ID for admin 8)` (the first one alone
 * left the others unknown). Empty when nothing was stored.
 */
function storedIds(result: SendResult): string {
  const isId = (id: unknown): id is string => typeof id === 'string' && id !== '';
  const people = result.results ?? [];
  if (isId(result.messageId) || people.length <= 1) {
    const id = result.messageId ?? people[0]?.messageId;
    return isId(id) ? ` (message ${printable(id, 300)})` : '';
  }
  // Kind and id are the server's answer too: printed only through printable.
  const stored = people.flatMap((r) => (isId(r.messageId) ? [`message ${printable(r.messageId, 300)} for ${printable(`${r.kind} ${r.id}`, 100)}`] : []));
  return stored.length === 0 ? '' : ` (${stored.join(', ')})`;
}

function describeSend(result: SendResult, label: string, broadcast: boolean): string {
  const parts: string[] = [];
  const duplicates = result.results?.filter((r) => r.duplicate).length ?? 0;
  const allDuplicate = broadcast ? result.duplicate === true : result.results !== undefined && duplicates > 0 && duplicates === result.results.length;
  if (result.retried && allDuplicate) {
    // The SDK sent it again after its first attempt's answer was lost: the answer is the repeat's,
    // whose "0 tabs, duplicate" alone read as "not sent" when the first attempt had sent it.
    parts.push('sent by the first attempt, whose answer was lost (the automatic repeat was recognised by its --idempotency-key and not delivered again)');
    if (result.queued) parts.push(`queued for tabs that connect later${storedIds(result)}`);
    return `${label}: ${parts.join('; ')}`;
  }
  parts.push(broadcast ? `delivered to ${result.delivered} ${result.delivered === 1 ? 'person' : 'people'} online` : `delivered to ${result.delivered} ${result.delivered === 1 ? 'tab' : 'tabs'}`);
  if (result.queued) parts.push(`queued for tabs that connect later${storedIds(result)}`);
  if (result.duplicate || result.results?.some((r) => r.duplicate)) parts.push('duplicate idempotency key: not sent again');
  return `${label}: ${parts.join('; ')}`;
}

/**
 * What became of one recipient's copy: `reached` (pushed to a tab now, or
 * kept for later tabs: this send's copy or, for a repeat of a stored send,
 * the first one's), `missed` (no tab open, nothing kept), or `repeat` (a
 * live-only send's key seen before: nothing sent, and nothing kept to say
 * whether the first send reached anyone).
 */
type Fate = 'reached' | 'missed' | 'repeat';

function fateOf(r: { delivered: number; queued: boolean; duplicate?: boolean | undefined }): Fate {
  if (r.delivered > 0 || r.queued) return 'reached';
  return r.duplicate ? 'repeat' : 'missed';
}

/** Each recipient of the answer, by its label: one for a person or a broadcast, one per person of a list. */
function recipientFates(result: SendResult, label: string): Array<{ label: string; fate: Fate }> {
  if (result.results === undefined || result.results.length === 0) return [{ label, fate: fateOf(result) }];
  // Kind and id are the server's answer: printed only through printable, as storedIds prints them.
  return result.results.map((r) => ({ label: printable(`${r.kind} ${r.id}`, 100), fate: fateOf(r) }));
}

const REPEAT_WHY = 'a live-only send with this --idempotency-key was taken within the last 5 minutes, and the answer cannot tell whether that send reached anyone (Herald keeps the key of a live-only send only when it reached a tab; a Herald older than this rule kept it for every send); a new key sends it again';

export async function runSend(flags: SendFlags): Promise<void> {
  const { to, label } = recipientFromFlags(flags);
  const message = messageFromFlags(flags);
  const ttl = flags.ttl === undefined ? undefined : durationFlag('--ttl', flags.ttl);
  // The server keeps a TTL in whole milliseconds, rounded (POST /api/v1/send): under half of one
  // it is 0, a live-only send, and the CLI's summary and resend advice spoke of a stored one.
  // Refused below 1 ms, as `token --ttl` is below 1 s, its own unit.
  if (ttl !== undefined && ttl > 0 && ttl < 0.001) {
    throw new CliError(`--ttl ${flags.ttl} is under a millisecond, the unit Herald keeps a TTL in: it would be taken as 0, a send to the tabs open now only; give --ttl 0 for that, or at least 1ms`, Exit.USAGE);
  }
  const plainString = typeof message === 'string';
  if (plainString && ttl !== undefined && ttl > 0) {
    // The server would take it and ignore the TTL: the operator would think it waits for tabs.
    throw new CliError(`--ttl ${flags.ttl} does not apply to a plain-string message (--json '"…"'): Herald delivers a string to the tabs open now only and never keeps it (it cannot carry SEQ: docs/delivery.md, "Sending"); send a JSON object to have it wait for tabs, or leave --ttl out`, Exit.USAGE);
  }
  // The server's bounds: refused here, with the flag's name, rather than as a 400 after the round trip.
  // Counted in characters (code points), as the server's schema counts a string's length:
  // 200 emoji are 400 UTF-16 units, and the server takes them.
  if (flags.idempotencyKey !== undefined) {
    const chars = [...flags.idempotencyKey].length;
    if (chars === 0 || chars > MAX_KEY_CHARS) throw new CliError(`--idempotency-key must be 1 to ${MAX_KEY_CHARS} characters, got ${chars}`, Exit.USAGE);
  }
  const { sender, url, timeoutMs } = clientContext(flags);
  let result: SendResult | false;
  try {
    result = await sender.sendMessage({
      ...to, message,
      ...(ttl === undefined ? {} : { ttl }),
      ...(flags.idempotencyKey === undefined ? {} : { idempotencyKey: flags.idempotencyKey }),
    } as SendMessageInput);
  } catch (e) {
    if (mayHaveRun(e)) {
      // The failures after which the notification may have gone out: say so, and how to resend safely.
      const again = resendAdvice(flags.idempotencyKey !== undefined, ttl, plainString);
      throw new CliError(`${lostAnswer(e, url, timeoutMs)}: the notification to ${label} may or may not have been sent; ${again}`);
    }
    sdkFailure(e, url);
  }
  if (result === false) throw new CliError('sending is disabled');
  if (flags.printJson) out(jsonLine(result));
  const fates = recipientFates(result, label);
  const notKept = ttl === 0 ? ' (--ttl 0)' : plainString ? ' (a plain-string message)' : '';
  if (fates.length > 1) {
    // The summary adds the tabs up: say who of the list it did not reach, one line each.
    for (const f of fates) {
      if (f.fate === 'missed') process.stderr.write(`herald: ${f.label}: not delivered: no tab open, and the message was not kept${notKept}\n`);
      else if (f.fate === 'repeat') process.stderr.write(`herald: ${f.label}: not sent again: ${REPEAT_WHY}\n`);
    }
  }
  if (!fates.some((f) => f.fate === 'reached')) {
    if (fates.every((f) => f.fate === 'repeat')) throw new CliError(`${label}: not sent again: ${REPEAT_WHY}`, REPEATED_EXIT);
    const who = 'all' in to ? `no ${to.all === 'admins' ? 'admin' : 'user'} is online` : fates.length > 1 ? `nobody of ${label} was reached` : `${label} has no tab open`;
    throw new CliError(`not delivered: ${who} and the message was not kept${notKept}`);
  }
  if (!flags.printJson) out(describeSend(result, label, 'all' in to));
}

/**
 * What a resend does after a lost answer. A key makes it safe only while the
 * server still keeps it: a stored send's for its TTL, in the store (the
 * memory store forgets it when the server restarts, and a lost answer is
 * most often a restart); a live-only send's (--ttl 0, a plain-string
 * message) only in the memory of the node that took it, for 5 minutes.
 */
function resendAdvice(keyed: boolean, ttl: number | undefined, plainString: boolean): string {
  if (!keyed) return 'sending it again may deliver it twice (give --idempotency-key to make a resend safe)';
  if (ttl === 0 || plainString) {
    return `its --idempotency-key does not survive a restart for a send that is not stored (${plainString ? 'a plain-string message' : '--ttl 0'}): the server keeps it only in memory, for 5 minutes; sent again with the same key it is delivered once only if the server has not restarted since`;
  }
  const kept = ttl === undefined ? 'for the server\'s defaultTtlMs (not at all if that is 0)' : 'for its --ttl';
  return `send it again with the same --idempotency-key: it is delivered once while the server keeps the key (${kept}; with the memory store, not across a restart)`;
}

// ---- online / ping / status ------------------------------------------------

export interface OnlineFlags extends GlobalFlags {
  users?: boolean;
  json?: boolean;
}

export async function runOnline(flags: OnlineFlags): Promise<void> {
  const { sender, url } = clientContext(flags);
  const kind = flags.users ? 'user' : 'admin';
  let ids: number[];
  try {
    ids = flags.users ? await sender.connectedUsers() : await sender.connectedAdmins();
  } catch (e) {
    sdkFailure(e, url);
  }
  // The ids are the server's answer (numbers from Herald; whatever answers at --url may send
  // text): nothing of them acts on the terminal.
  if (flags.json) {
    out(jsonLine({ kind, ids }));
    return;
  }
  // One id a line, so that scripts can read it; the empty case says so on stderr only.
  for (const id of ids) out(printable(String(id), 100));
  if (ids.length === 0) process.stderr.write(`no ${kind}s online\n`);
}

/**
 * The exit status of `ping` and `status` when Herald answers but is not
 * healthy (its `/healthz` answers 503: the store can store nothing more, or
 * its writes fail): apart from 1, so that a monitor tells "down" from "up but
 * refusing every stored send".
 */
export const UNHEALTHY_EXIT = 3;

/** The answer's health verdict: a problem, or undefined while healthy (a server too old to say counts as healthy). */
function unhealthy(answer: object | null): string | undefined {
  const verdict = answer as { healthy?: unknown; problem?: unknown } | null;
  if (verdict?.healthy !== false) return undefined;
  return typeof verdict.problem === 'string' ? verdict.problem : 'no reason given';
}

export async function runPing(flags: GlobalFlags): Promise<void> {
  const { sender, url } = clientContext(flags);
  const started = performance.now();
  let pong;
  try {
    pong = await sender.ping();
  } catch (e) {
    sdkFailure(e, url);
  }
  out(`pong from Herald ${printable(pong?.version ?? '?', 100)} at ${url} in ${Math.round(performance.now() - started)} ms`);
  // The ping's answer says only that Herald answers; whether it can do its work (the verdict of
  // /healthz) is in the status, asked once more: a pong read as "all is well" while every stored
  // send was refused. A status that cannot be had now leaves the pong as it is.
  let status;
  try {
    status = await sender.status();
  } catch {
    return;
  }
  const problem = unhealthy(status);
  if (problem !== undefined) throw new CliError(`Herald at ${url} answers but is not healthy: ${printable(problem, 2000)} (herald status says more)`, UNHEALTHY_EXIT);
}

export async function runStatus(flags: GlobalFlags & { json?: boolean }): Promise<void> {
  const { sender, url } = clientContext(flags);
  let status;
  try {
    status = await sender.status();
  } catch (e) {
    sdkFailure(e, url);
  }
  const problem = unhealthy(status);
  if (flags.json || status === null) {
    out(jsonLine(status));
  } else {
    out(`Herald ${printable(status.version, 100)} at ${url}`);
    out(`  uptime       ${formatDuration(status.uptimeMs)}`);
    const most = typeof status.maxTabs === 'number' && status.maxTabs > 0 ? ` (at most ${status.maxTabs} in all)` : '';
    out(`  connections  ${status.connections.admin} admin tabs, ${status.connections.user} user tabs${most}`);
    if (status.healthy !== undefined) out(`  health       ${problem === undefined ? 'healthy' : `NOT HEALTHY: ${printable(problem, 2000)}`}`);
    const failures = resolverFailures(status.resolverFailures);
    for (const key of Object.keys(status)) {
      if (['version', 'healthy', 'problem', 'uptimeMs', 'connections', 'maxTabs'].includes(key)) continue;
      // Said on the resolver's line: `resolver     sql; FAILING since …`.
      if (key === 'resolverFailures' && failures !== undefined) continue;
      const value = status[key];
      const also = key === 'resolver' && failures !== undefined ? `; ${failures}` : '';
      out(`  ${printable(key, 100).padEnd(12)} ${printable(typeof value === 'string' ? value : JSON.stringify(value) ?? String(value), 2000)}${also}`);
    }
  }
  // After the answer, which says more: the status on stdout, the verdict on stderr and in the exit status.
  if (problem !== undefined) throw new CliError(`Herald at ${url} is not healthy: ${printable(problem, 2000)}`, UNHEALTHY_EXIT);
}

/**
 * The status's resolverFailures, said on the resolver's line (`look-ups
 * FAILING since 2026-…Z: 42 failed (session database unavailable); …`), or
 * undefined to print it as the server gave it (a shape this version does not know).
 */
function resolverFailures(value: unknown): string | undefined {
  if (value === null) return 'no look-up failed';
  const v = value as { failing?: unknown; reason?: unknown; since?: unknown; lastAt?: unknown; count?: unknown; total?: unknown } | undefined;
  if (typeof v !== 'object' || typeof v.reason !== 'string' || typeof v.since !== 'number' || typeof v.lastAt !== 'number' || typeof v.count !== 'number' || typeof v.total !== 'number') return undefined;
  const when = (ms: number) => (Number.isFinite(new Date(ms).getTime()) ? new Date(ms).toISOString() : String(ms));
  const reason = printable(v.reason, 500);
  if (v.failing === true) return `look-ups FAILING since ${when(v.since)}: ${v.count} failed (${reason}); tabs are refused with 503 until one answers`;
  return `look-ups answer; the last failures, ${v.count}, from ${when(v.since)} to ${when(v.lastAt)} (${reason}); ${v.total} since the start`;
}

function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${d ? `${d}d ` : ''}${h ? `${h}h ` : ''}${m ? `${m}m ` : ''}${s % 60}s`;
}

// ---- token / config --------------------------------------------------------

export interface TokenFlags extends GlobalFlags {
  aid?: string;
  uid?: string;
  ttl?: string;
}

/** Prints only the token, so that `TOKEN=$(herald token --aid 1)` works. */
export async function runToken(flags: TokenFlags): Promise<void> {
  if ((flags.aid === undefined) === (flags.uid === undefined)) throw new CliError('give exactly one of --aid N or --uid N', Exit.USAGE);
  const principal = flags.aid !== undefined ? { kind: 'admin' as const, id: personId('--aid', flags.aid) } : { kind: 'user' as const, id: personId('--uid', flags.uid!) };
  const options = loadCliOptions(flags);
  const ttlMs = flags.ttl === undefined ? options.tokenTtlMs : durationFlag('--ttl', flags.ttl, '90s, 15m, 1h or 2d') * 1000;
  if (ttlMs < 1000) throw new CliError('--ttl must be at least 1s', Exit.USAGE);
  // The bound of the SDK and of POST /api/v1/tokens: a token made here is no different.
  if (flags.ttl !== undefined && ttlMs > MAX_CONNECT_TOKEN_TTL_SEC * 1000) throw new CliError(`--ttl must be at most 31d (${MAX_CONNECT_TOKEN_TTL_SEC}s), got ${JSON.stringify(flags.ttl)}`, Exit.USAGE);
  const secret = options.secret || readSecrets(options.dataDir).secret;
  if (!secret) {
    throw new CliError(`no token-signing secret: set HERALD_SECRET or "secret" in the config file, or start the server once so that it generates ${secretsFile(options.dataDir)}`, Exit.USAGE);
  }
  if (options.authResolver !== 'token') {
    // Still printed (the operator may be about to switch), but said plainly: this server would refuse it.
    process.stderr.write(`herald: warning: authResolver is ${options.authResolver}: the server admits tabs by the panel's session, not by this token\n`);
  }
  out(await mintToken(secret, principal, ttlMs));
}

export function runConfig(flags: GlobalFlags & { markdown?: boolean }): void {
  if (flags.markdown) {
    out(optionsMarkdownTable());
    return;
  }
  // The effective configuration, secrets masked: what `herald start` would run with,
  // which includes the secrets a first start wrote to DATA_DIR/secrets.json (read, never generated here).
  const loaded = loadCliOptions(flags);
  const stored = readSecrets(loaded.dataDir);
  const options: Record<string, unknown> = { ...loaded, secret: loaded.secret || stored.secret || '', apiToken: loaded.apiToken || stored.apiToken || '' };
  const shown: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    shown[k] = SECRET_OPTION_KEYS.includes(k) ? (v === '' ? '' : '(set)')
      : SECRET_VALUES_OPTION_KEYS.includes(k) ? maskEnvEntries(v as string[])
      : SECRET_QUERY_OPTION_KEYS.includes(k) ? maskUrlQuery(v as string)
      : v;
  }
  // The operator's own values, but from files and variables that may hold anything: as the server's answers are printed.
  out(jsonLine(shown, 2));
}
