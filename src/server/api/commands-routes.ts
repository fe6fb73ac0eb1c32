/**
 * `/api/v1/commands` (docs/http-api.md): start a background command for an
 * admin, look one up, list recent ones, cancel one. A thin adapter over the
 * CommandService, like every front door.
 *
 * Register it inside the `/api/v1` plugin, after the bearer-token hook, so
 * the routes share the API's authentication and error handling:
 * `registerCommandRoutes(api, { commands })`.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { NotificationPayload } from '../../protocol/frames.js';
import { pairStart } from '../../protocol/text-cut.js';
import type { CommandInfo, CommandRequest, CommandService, RefusedCommandRequest } from '../commands/command-service.js';
import { HeraldError, isHeraldError } from '../errors.js';
import { convertedScalar, FiniteInteger, FiniteNumber, jsonType, notificationTypeRefusal, schemaRefusal } from './schemas.js';
import { errorAnswer, missingAnswer, routeAnswers } from './openapi.js';

const Notification = Type.Union([
  Type.Object({ TYPE: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true }),
  Type.String({ maxLength: 65536 }),
], { description: 'A notification object with a TYPE, or a plain string (sent as a MESSAGE titled with the program).' });
const State = Type.Union(['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled'].map((s) => Type.Literal(s)));

export const StartCommandBody = Type.Object({
  aid: FiniteInteger({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The admin who is told about the run and may cancel it from a browser.' }),
  program: Type.String({ minLength: 1, maxLength: 4096, description: 'An allowed program: its name or an absolute path to the same file.' }),
  args: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 1024, description: 'The argument vector, passed as is: no shell, no word splitting.' })),
  timeout: Type.Optional(FiniteNumber({ exclusiveMinimum: 0, description: 'Seconds. Default and maximum: commandsTimeoutSec, commandsMaxTimeoutSec.' })),
  success: Type.Optional(Notification),
  error: Type.Optional(Notification),
  // Checked by the runner (a string of at most 256 characters, or a number): a schema union
  // would let Fastify's validator coerce 5 into "5" and hand the caller back another type.
  id: Type.Optional(Type.Unknown({ description: 'Your own id for the task (a string of at most 256 characters, or a number), returned in the notifications as ID.' })),
  door: Type.Optional(Type.Union([Type.Literal('http'), Type.Literal('cli')], { description: 'For the audit trail: `cli` when `herald run` asks. Default `http`.' })),
}, { additionalProperties: false });
export type StartCommandBody = Static<typeof StartCommandBody>;

export const CommandInfoReply = Type.Object({
  id: Type.String(),
  aid: Type.Integer(),
  program: Type.String(),
  path: Type.String({ description: 'The file that runs.' }),
  args: Type.Array(Type.String()),
  taskId: Type.Optional(Type.Unknown()),
  state: State,
  door: Type.String(),
  requestedBy: Type.Optional(Type.String()),
  queuedAt: Type.Number({ description: 'Epoch ms.' }),
  startedAt: Type.Optional(Type.Number()),
  endedAt: Type.Optional(Type.Number()),
  timeoutSec: Type.Number(),
  output: Type.String({ description: 'Captured stdout and stderr, interleaved (from `since` when given).' }),
  outputLength: Type.Optional(Type.Integer({ description: 'Length of the whole captured output, in characters (with `since`: the next `since`).' })),
  error: Type.Optional(Type.String()),
  COMMAND_ID: Type.String(),
  EXIT_CODE: Type.Union([Type.Integer(), Type.Null()]),
  SIGNAL: Type.Union([Type.String(), Type.Null()]),
  TIMED_OUT: Type.Boolean(),
  DURATION_MS: Type.Number(),
  TRUNCATED: Type.Boolean(),
  source: Type.Optional(Type.Literal('audit', { description: 'Present when the command ran before a restart (or has left commandsHistory): its final state from the audit trail, which does not keep the output (`output` is empty).' })),
  outputBytes: Type.Optional(Type.Integer({ description: 'With `source: "audit"`: the size in bytes of the output Herald kept for the run (as UTF-8, at most commandsOutputCap: not how much the program wrote), which the trail does not keep.' })),
}, { description: 'The command: its state, exit code and output.' });

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const GetQuery = Type.Object({
  since: Type.Optional(FiniteInteger({ minimum: 0, description: 'Return only the output after this many characters (for streaming by polling).' })),
  wait: Type.Optional(FiniteNumber({ minimum: 0, maximum: 60, description: 'Seconds to wait for the command to end before answering (long poll).' })),
});
const AuditQuery = Type.Object({
  limit: Type.Optional(FiniteInteger({ minimum: 1, maximum: 1000, default: 100 })),
  aid: Type.Optional(FiniteInteger({ minimum: 1, description: 'Only this admin\'s commands.' })),
  before: Type.Optional(FiniteInteger({ minimum: 1, description: 'Paging: only records older than this row.' })),
});
const ListQuery = Type.Object({
  limit: Type.Optional(FiniteInteger({ minimum: 1, maximum: 1000, default: 50 })),
  output: Type.Optional(Type.Boolean({ default: true, description: '`false`: leave each command\'s `output` out (GET /commands/{id} has it). Fifty outputs of up to commandsOutputCap each, as JSON up to six times that, come to hundreds of MB.' })),
});
/** A command as GET /commands lists it: with `?output=false`, without its output. */
const ListedCommand = Type.Object({ ...CommandInfoReply.properties, output: Type.Optional(CommandInfoReply.properties.output) }, { description: CommandInfoReply.description });

/**
 * The errors each route answers besides those of any route (schemas.ts,
 * routeAnswers), for openapi.json: POST /commands those of CommandService.start,
 * a lookup its 404, a cancel its 404 and 409 (the API cancels as no admin: no 403).
 */
const MISSING_COMMAND = missingAnswer('command', 'HERALD_ERR_NOT_FOUND with details {"resource":"command"}: no such command (unknown, or too old to be remembered).');
const START_ERRORS = {
  403: errorAnswer('HERALD_ERR_COMMAND_FORBIDDEN: the program, or its arguments, are not allowed.'),
  422: errorAnswer('HERALD_ERR_COMMAND_NOT_FOUND: the allowed program is not installed.'),
  429: errorAnswer('HERALD_ERR_QUEUE_FULL: as many commands wait as commandsQueueSize allows, or as many of this admin\'s as their share of it allows (docs/commands.md).'),
  501: errorAnswer('HERALD_ERR_COMMANDS_DISABLED: commandsEnabled is false.'),
};
/** The 503 of a route that reads the audit trail: any route's, and a trail that cannot be read now. */
const TRAIL_UNAVAILABLE = errorAnswer('HERALD_ERR_SHUTTING_DOWN: the server is stopping (with Retry-After when no route ran: send it again). HERALD_ERR_UNAVAILABLE with Retry-After: the audit trail cannot be read now (another process, a sqlite3 shell, holds a lock on its file): ask again; it does not mean the command is unknown.');
const CANCEL_ERRORS = {
  404: MISSING_COMMAND,
  409: errorAnswer('HERALD_ERR_CONFLICT: the command has already ended.'),
  503: TRAIL_UNAVAILABLE,
};
/** Seconds a caller is asked to wait (Retry-After) when the audit trail cannot be read: a reader's lock lasts milliseconds, a shell's as long as its person wants. */
const TRAIL_RETRY_AFTER_SEC = 1;

export interface CommandRoutesContext {
  commands: CommandService;
}

const ENDED = new Set(['succeeded', 'failed', 'timed_out', 'cancelled']);

/** Registers the command routes on `api` (already prefixed with `/api/v1` and authenticated). */
export function registerCommandRoutes(api: FastifyInstance, ctx: CommandRoutesContext): void {
  const { commands } = ctx;

  api.post('/commands', {
    // A body the schema refuses reaches the handler, which records the attempt before refusing it.
    attachValidation: true,
    // Before the validator converts `null` and booleans (convertedCommandField); audited as any refusal.
    preValidation: async (req) => {
      const refusal = convertedCommandField(req.body);
      if (refusal === undefined) return;
      const error = new HeraldError('HERALD_ERR_VALIDATION', refusal);
      commands.refused(attempted(req.body, `api ${req.ip}`), error);
      throw error;
    },
    schema: {
      summary: 'Run an allowed program for an admin in the background; the admin is notified when it ends',
      tags: ['commands'], body: StartCommandBody, response: { 201: CommandInfoReply },
    },
    config: { answers: routeAnswers({}, { body: true, errors: START_ERRORS }) },
  }, async (req, reply) => {
    const requestedBy = `api ${req.ip}`;
    if (req.validationError) {
      // The same 400 as any schema refusal, but an attempt to run a program is audited
      // whichever layer refuses it (docs/commands.md): 1025 args, a timeout of -1.
      const error = schemaRefusal(req.validationError);
      commands.refused(attempted(req.body, requestedBy), error);
      throw error;
    }
    const body = req.body as StartCommandBody;
    const request: CommandRequest = {
      aid: body.aid, program: body.program, args: body.args ?? [], door: body.door ?? 'http', requestedBy,
    };
    if (body.timeout !== undefined) request.timeoutSec = body.timeout;
    if (body.success !== undefined) request.success = body.success as NotificationPayload;
    if (body.error !== undefined) request.error = body.error as NotificationPayload;
    if (body.id !== undefined) request.taskId = body.id as string | number;
    const info = await commands.start(request);
    return reply.status(201).send(info);
  });

  api.get('/commands', {
    schema: { summary: 'Queued, running and recent commands, newest first', tags: ['commands'], querystring: ListQuery, response: { 200: Type.Object({ commands: Type.Array(ListedCommand) }, { description: 'The commands, newest first.' }) } },
    config: { answers: routeAnswers({}) },
  }, async (req) => {
    const { limit, output } = req.query as Static<typeof ListQuery>;
    const listed = commands.list(limit ?? 50);
    return { commands: output === false ? listed.map(({ output: _left, ...info }) => info) : listed };
  });

  api.get('/commands/audit', {
    schema: {
      summary: 'The persisted audit trail of commands, newest first: every run and every refused request',
      tags: ['commands'], querystring: AuditQuery,
      response: { 200: Type.Object({ persisted: Type.Boolean(), records: Type.Array(Type.Object({ row: Type.Integer() }, { additionalProperties: true })) }, { description: 'The audit records, newest first (persisted: false without an audit trail).' }) },
    },
    config: { answers: routeAnswers({}, { errors: { 503: TRAIL_UNAVAILABLE } }) },
  }, async (req, reply) => {
    const q = req.query as Static<typeof AuditQuery>;
    const query: { limit: number; aid?: number; before?: number } = { limit: q.limit ?? 100 };
    if (q.aid !== undefined) query.aid = q.aid;
    if (q.before !== undefined) query.before = q.before;
    const records = await fromTrail(reply, () => commands.audit?.(query));
    return { persisted: records !== undefined, records: records ?? [] };
  });

  api.get('/commands/:id', {
    schema: { summary: 'A command\'s state and output (after a restart: its final state from the audit trail, without output)', tags: ['commands'], params: IdParams, querystring: GetQuery, response: { 200: CommandInfoReply } },
    config: { answers: routeAnswers({}, { errors: { 404: MISSING_COMMAND, 503: TRAIL_UNAVAILABLE } }) },
  }, async (req, reply) => {
    const { id } = req.params as Static<typeof IdParams>;
    const { since, wait } = req.query as Static<typeof GetQuery>;
    let info = commands.get(id);
    if (!info) {
      // Not in memory: it ran before a restart, or has left commandsHistory. The audit trail
      // has its final record (an ended command: a long poll has nothing to wait for).
      const recorded = await fromTrail(reply, () => commands.recorded?.(id));
      // `details` tells this 404 from a route's that does not exist (the SDK's commandStatus reads it).
      if (!recorded) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no command ${id} (unknown, or too old to be remembered)`, { resource: 'command' });
      return since === undefined ? recorded : sliceOutput(recorded, since);
    }
    if (wait !== undefined && wait > 0 && !ENDED.has(info.state) && commands.wait) {
      // A client that goes away stops its wait: nobody would read the answer, and a command
      // may run for days (commandsMaxTimeoutSec) while a client that gave up polls again.
      const gone = new AbortController();
      const abort = (): void => gone.abort();
      reply.raw.once('close', abort);
      if (req.raw.socket?.destroyed) gone.abort();
      try {
        info = (await commands.wait(id, { timeoutMs: wait * 1000, signal: gone.signal })) ?? info;
      } finally {
        reply.raw.off('close', abort);
      }
    }
    return since === undefined ? info : sliceOutput(info, since);
  });

  api.post('/commands/:id/cancel', {
    schema: { summary: 'Stop a queued or running command (SIGTERM to its process group, then SIGKILL)', tags: ['commands'], params: IdParams, response: { 200: CommandInfoReply } },
    config: { answers: routeAnswers({}, { body: true, errors: CANCEL_ERRORS }) },
  }, async (req, reply) => {
    const { id } = req.params as Static<typeof IdParams>;
    try {
      return await fromTrail(reply, () => commands.cancel(id));
    } catch (e) {
      // The same 404 as a lookup's, naming what is missing.
      if (isHeraldError(e) && e.code === 'HERALD_ERR_NOT_FOUND') throw new HeraldError(e.code, e.message, { resource: 'command' });
      throw e;
    }
  });
}

/**
 * What `ask` answers, from the audit trail: a trail that cannot be read now (HERALD_ERR_UNAVAILABLE,
 * its file locked by another process) is answered 503 with Retry-After, "ask again", as the
 * shutdown's refusal is (http-api.ts); not 404, which says the command is unknown.
 */
async function fromTrail<T>(reply: FastifyReply, ask: () => T | Promise<T>): Promise<T> {
  try {
    return await ask();
  } catch (e) {
    if (isHeraldError(e) && e.code === 'HERALD_ERR_UNAVAILABLE') reply.header('retry-after', String(TRAIL_RETRY_AFTER_SEC));
    throw e;
  }
}

/** What a body the schema refused held, for the audit trail: any JSON value, fields as they came. */
/**
 * As a send's own fields (http-api.ts, convertedField): the validator would turn `null` and
 * booleans into values that mean something else, and run the program so. `"aid":true` ran it
 * for admin 1, `"timeout":true` gave it one second, `"args":null` one empty argument and
 * `[null,true]` the arguments "" and "true", and `"success":null` (a Perl backend's undef)
 * told the admin an empty text instead of the output. Refused, naming the field; a one-item
 * array of them too (the validator takes it for its item). Returns the refusal, or undefined.
 */
function convertedCommandField(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const converted = (v: unknown): boolean => v === null || typeof v === 'boolean';
  const scalar = convertedScalar(b, 'body', [['aid', 'integer'], ['timeout', 'number']]);
  if (scalar !== undefined) return scalar;
  // `"program":true` ran /usr/bin/true (where commandsAllow has it), `["true"]` too.
  if ('program' in b && typeof b.program !== 'string') return `body/program must be string, not ${jsonType(b.program)}`;
  // A string too: the validator wrapped the seed's command line `"-c 3 127.0.0.1"` into one
  // argument and ran the program with it (only the legacy door splits words: docs/commands.md).
  if (b.args !== undefined && !Array.isArray(b.args)) return `body/args must be an array of strings, not ${jsonType(b.args)}`;
  if (Array.isArray(b.args)) {
    // An argument that is an array: the validator takes `[null]` for its item, one empty argument.
    const i = b.args.findIndex((a) => converted(a) || Array.isArray(a));
    if (i >= 0) return `body/args/${i} must be string, not ${jsonType(b.args[i])}`;
  }
  for (const k of ['success', 'error'] as const) {
    // A number too: it would become a text ("5"), as on /send.
    // An array too: `[true]` told the admin the text "true", `[null]` an empty one.
    if (converted(b[k]) || typeof b[k] === 'number' || Array.isArray(b[k])) return `body/${k} must be a notification object (with a TYPE) or a string, not ${jsonType(b[k])}`;
    const type = notificationTypeRefusal(b[k], `body/${k}`);
    if (type !== undefined) return type;
  }
  return undefined;
}

function attempted(body: unknown, requestedBy: string): RefusedCommandRequest {
  const b: Record<string, unknown> = typeof body === 'object' && body !== null && !Array.isArray(body) ? body as Record<string, unknown> : {};
  const request: RefusedCommandRequest = { door: b.door === 'cli' ? 'cli' : 'http', requestedBy, aid: b.aid, program: b.program, args: b.args };
  if (b.id !== undefined) request.taskId = b.id;
  return request;
}

function sliceOutput<I extends CommandInfo>(info: I, since: number): I & { outputLength: number } {
  // `since` counts UTF-16 units (outputLength's); one inside a pair starts at the pair, not at half an emoji.
  return { ...info, output: info.output.slice(pairStart(info.output, since)), outputLength: info.output.length };
}
