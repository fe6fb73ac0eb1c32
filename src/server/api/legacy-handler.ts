/**
 * The legacy control protocol (docs/legacy.md, "Requests and answers") as a pure adapter over the
 * Notifier: one parsed JSON value in, one answer out (or none, for SILENT).
 * Both the TCP listener (legacy-server.ts, which parses the request itself
 * and calls handleParsedLegacyRequest) and the HTTP API's
 * `POST /api/v1/legacy` (handleLegacyRequest) go through the one parser and
 * the one handler, so the two cannot drift.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { LegacyAnswer, LegacyErrorAnswer } from '../../protocol/legacy.js';
import { quoted } from '../../protocol/text-cut.js';
import type { CommandService } from '../commands/command-service.js';
import { HeraldError, isHeraldError, type ErrorCode } from '../errors.js';
import type { Notifier } from '../notifier.js';
import { legacyError, parseLegacyRequest, type LegacyRequestBody, type ParsedLegacyRequest } from './legacy-request.js';

export type { LegacyAnswer } from '../../protocol/legacy.js';

export interface LegacyContext {
  notifier: Notifier;
  /** A running server always has one (commandsEnabled false refuses in the runner); absent only where a caller builds the handler without one: COMMAND then answers a clear error. */
  commands: CommandService | undefined;
  /** The configured legacy token (`legacyToken`); empty = none configured. */
  token: string;
  /**
   * True when the listener is not on loopback: then every request must carry
   * the token. On loopback only MESSAGE must (see checkToken).
   */
  requireToken: boolean;
  /** Who asked (`127.0.0.1:53422`, or `http:<token name>`), for the command audit trail. */
  peer: string;
  /** Where a failure of Herald's own (not the request's) is logged; the answer says only "internal error". */
  logger?: Pick<Logger, 'error'>;
  /**
   * Says a refused request in the listener's bounded log (LegacyServer.requestRefusals), under
   * `why`: a missing or wrong TOKEN, or the error code of a SILENT request refused for its
   * shape. Neither left a line at any level, and a panel whose token was rotated on one side
   * only lost every NON_SAFE notification without a trace. Never given the token itself.
   * Absent for the HTTP API's route, whose caller reads every answer.
   */
  refused?(why: string, fields: object, message: string): void;
  /**
   * True for the HTTP API's route: a SILENT request that is refused or fails is answered with
   * its error all the same, and only one that was done answers nothing (204). An HTTP caller
   * reads an answer to every request, so a 204 for a refused send told it the send was made.
   */
  answerSilentErrors?: boolean;
}

/** Constant-time comparison of two secrets of any length (hashing first hides the length too). */
export function tokensEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/**
 * The TOKEN rule. The old client sends the token only with MESSAGE requests
 * (not with PING, REQUEST_LIST or COMMAND), so the trust boundary of this
 * protocol is its listening address (docs/legacy.md, "Requests and answers"):
 * - `requireToken` (a non-loopback listener): every request must carry the
 *   configured token.
 * - loopback, no token configured: a TOKEN is accepted and ignored.
 * - loopback, a token configured: MESSAGE requests must carry it (the old
 *   client does), and any request that carries a TOKEN must carry the right
 *   one (a wrong token is a misconfiguration worth reporting).
 */
function checkToken(given: string | null | undefined, type: LegacyRequestBody['type'], ctx: LegacyContext): boolean {
  if (ctx.requireToken) return ctx.token !== '' && typeof given === 'string' && tokensEqual(given, ctx.token);
  if (ctx.token === '') return true;
  if (given !== undefined) return given !== null && tokensEqual(given, ctx.token);
  return type !== 'MESSAGE';
}

function errorAnswer(e: unknown, ctx: LegacyContext, type: string, fallback: ErrorCode = 'HERALD_ERR_INTERNAL'): LegacyAnswer {
  if (isHeraldError(e)) return legacyError(e.message, e.code);
  // Herald's own failure: the client is told "internal error" and nothing more, so the log
  // is where an operator learns what it was (the HTTP routes log theirs as "request failed").
  ctx.logger?.error({ err: e, peer: ctx.peer, type }, 'legacy request failed');
  return legacyError(fallback === 'HERALD_ERR_INTERNAL' ? 'internal error' : String(e), fallback);
}

/**
 * Handles one request, already parsed from JSON (any value). Resolves to the
 * answer, or `undefined` when the request was SILENT (no answer at all).
 * Never rejects: every failure becomes an error answer.
 */
export function handleLegacyRequest(request: unknown, ctx: LegacyContext): Promise<LegacyAnswer | undefined> {
  return handleParsedLegacyRequest(parseLegacyRequest(request), ctx);
}

/**
 * Handles one request parseLegacyRequest has parsed: for a caller that reads
 * the parse itself (the TCP listener needs `silent` to know what a request
 * past its deadline is answered, and how to order it). Never rejects.
 */
export async function handleParsedLegacyRequest(parsed: ParsedLegacyRequest, ctx: LegacyContext): Promise<LegacyAnswer | undefined> {
  if (!parsed.ok) {
    // A COMMAND refused for its shape (no AID, a bad ARGS.timeout) is still an attempt to
    // run a program: audited like the runner's refusals, when its sender may ask for one.
    if (parsed.command && ctx.commands && checkToken(parsed.token, 'COMMAND', ctx)) {
      ctx.commands.refused({ ...parsed.command, door: 'legacy', requestedBy: ctx.peer }, new HeraldError('HERALD_ERR_BAD_REQUEST', parsed.error.ERROR));
    }
    if (!parsed.silent || ctx.answerSilentErrors) return parsed.error;
    // No answer says it: the log is the only trace.
    ctx.refused?.(parsed.error.CODE ?? parsed.error.ERROR, { code: parsed.error.CODE, error: parsed.error.ERROR, silent: true }, 'legacy request refused: SILENT, so unanswered (see error)');
    return undefined;
  }
  const { request: req } = parsed;
  if (!checkToken(req.token, req.body.type, ctx)) {
    const why = req.token === undefined ? 'no TOKEN' : 'wrong TOKEN';
    ctx.refused?.(why, { type: req.body.type, silent: req.silent }, `legacy request refused: ${why} (it must be the configured legacyToken)`);
    return req.silent && !ctx.answerSilentErrors ? undefined : legacyError('INCORRECT TOKEN: this request must carry the configured legacy token as TOKEN', 'HERALD_ERR_UNAUTHORIZED');
  }
  let answer: LegacyAnswer;
  try {
    answer = await perform(req.body, ctx);
  } catch (e) {
    answer = errorAnswer(e, ctx, req.body.type);
  }
  return req.silent && !(ctx.answerSilentErrors && isErrorAnswer(answer)) ? undefined : answer;
}

function isErrorAnswer(answer: LegacyAnswer): answer is LegacyErrorAnswer {
  return typeof answer === 'object' && answer !== null && !Array.isArray(answer) && answer.TYPE === 'ERROR';
}

async function perform(body: LegacyRequestBody, ctx: LegacyContext): Promise<LegacyAnswer> {
  switch (body.type) {
    case 'PING':
      // Abills::Backend::API's is_connected() compares exactly this.
      return { TYPE: 'PONG' };
    case 'MESSAGE': {
      // A PING in DATA is is_admin_connected()'s liveness probe: live only,
      // never queued for a later tab (it would replay stale PINGs).
      const probe = typeof body.data === 'object' && body.data.TYPE === 'PING';
      const options = probe ? { ttlMs: 0 } : body.ttlMs === undefined ? {} : { ttlMs: body.ttlMs };
      if (body.target === '*') {
        const r = await ctx.notifier.broadcast(body.to, body.data, options);
        return r.people > 0 ? 1 : 0;
      }
      const r = await ctx.notifier.send({ kind: body.to, id: body.target }, body.data, options);
      // One entry per tab that got it; 0 when none (it is still queued under its TTL).
      return r.delivered > 0 ? { TYPE: 'RESULT', RESULT: new Array<number>(r.delivered).fill(1) } : 0;
    }
    case 'REQUEST_LIST':
      return { TYPE: 'RESULT', LIST: await ctx.notifier.online(body.kind) };
    case 'COMMAND':
      return runCommand(body, ctx);
    case 'PROXY':
      if (body.plugin.toLowerCase() !== 'internal') {
        return legacyError(`PROXY to unknown plugin ${quoted(body.plugin, 40)}: only Internal is available`, 'HERALD_ERR_NOT_FOUND');
      }
      return body.echo === undefined ? 1 : (body.echo as LegacyAnswer);
  }
}

async function runCommand(body: Extract<LegacyRequestBody, { type: 'COMMAND' }>, ctx: LegacyContext): Promise<LegacyAnswer> {
  if (!ctx.commands) return legacyError('commands are not enabled on this server', 'HERALD_ERR_COMMANDS_DISABLED');
  try {
    await ctx.commands.start({
      aid: body.aid,
      program: body.program,
      args: body.args,
      // docs/commands.md, "Running, safely": "-c 3" becomes -c 3, quotes honoured, no shell.
      splitArgs: true,
      door: 'legacy',
      requestedBy: ctx.peer,
      ...(body.timeoutSec === undefined ? {} : { timeoutSec: body.timeoutSec }),
      ...(body.success === undefined ? {} : { success: body.success }),
      ...(body.error === undefined ? {} : { error: body.error }),
      ...(body.taskId === undefined ? {} : { taskId: body.taskId }),
    });
    return 1;
  } catch (e) {
    if (isHeraldError(e) && (e.code === 'HERALD_ERR_COMMAND_FORBIDDEN' || e.code === 'HERALD_ERR_COMMAND_NOT_FOUND')) {
      // The answer must name the program, whatever the runner's wording.
      const message = e.message.includes(body.program) ? e.message : `${e.message}: ${body.program}`;
      return legacyError(message, e.code);
    }
    return errorAnswer(e, ctx, 'COMMAND');
  }
}
