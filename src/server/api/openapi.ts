/** What the routes answer, as the OpenAPI document declares it: the document's, not the serialiser's. */
import { Type, type TSchema } from '@sinclair/typebox';
import type { FastifySchema, RouteOptions } from 'fastify';
import { ErrorReply, KindParam } from './schemas.js';

/**
 * A route's answers by HTTP status, as the OpenAPI document declares them. A
 * route names them in its `config.answers` and documentAnswers puts them into
 * the document; they are not its `schema.response`, through which Fastify
 * would serialise every answer: a field the schema does not name would be
 * dropped without a word, and POST /send, the hot path, would run a second
 * serialiser. (GET /ping and the command routes do serialise through theirs.)
 */
export type RouteAnswers = Readonly<Record<number, TSchema>>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's answers, for the OpenAPI document only (RouteAnswers). */
    answers?: RouteAnswers;
  }
}

/** Herald's error shape, with a description of when a route answers it (the document's description of the status). */
export function errorAnswer(description: string): TSchema {
  return Type.Object(ErrorReply.properties, { description });
}

/**
 * The 404 of a route's own missing item (`resource`: `message`, `command`):
 * `details.resource` names it, so that a client tells it from the 404 of a
 * route that does not exist (a wrong path prefix), which has no details.
 */
export function missingAnswer(resource: string, description: string): TSchema {
  return Type.Object({
    error: Type.Object({
      code: Type.Literal('HERALD_ERR_NOT_FOUND'), message: Type.String(), details: Type.Object({ resource: Type.Literal(resource) }),
    }),
  }, { description });
}

/**
 * What a route answers: its successes, the errors any route answers (400,
 * 401, 500, 503; 413 too for a route with a body) and its own.
 */
export function routeAnswers(success: RouteAnswers, options: { body?: boolean; errors?: RouteAnswers } = {}): RouteAnswers {
  return { ...success, ...ANY_ROUTE_ERRORS, ...(options.body ? BODY_ERRORS : {}), ...options.errors };
}

const ANY_ROUTE_ERRORS: RouteAnswers = {
  400: errorAnswer('HERALD_ERR_VALIDATION: a path, query or body its schema refuses, naming the part. HERALD_ERR_BAD_REQUEST: a URL that is not valid percent-encoding or has a path part over 100 characters, a Host header missing (HTTP/1.1), doubled or malformed; with a body, one that is not JSON in UTF-8 (docs/http-api.md).'),
  401: errorAnswer('HERALD_ERR_UNAUTHORIZED: the API token is missing or wrong.'),
  500: errorAnswer('HERALD_ERR_INTERNAL: a failure inside Herald, logged with the request id.'),
  503: errorAnswer('HERALD_ERR_SHUTTING_DOWN: the server is stopping (with Retry-After when no route ran: send it again). HERALD_ERR_UNAVAILABLE: the store cannot write now (the disk full), or it is full (details.reason "store full": past maxRetainedBytes; a live-only send, ttl 0, still goes).'),
};

const BODY_ERRORS: RouteAnswers = {
  413: errorAnswer('HERALD_ERR_TOO_LARGE: the body is over maxBodyBytes, or (a send) its notifications, counted once per recipient, are over maxSendBytes (details: option, bytes, maxSendBytes).'),
};

const Count = (description?: string) => Type.Integer({ minimum: 0, ...(description === undefined ? {} : { description }) });

/** The stored copy of a send: absent when nothing was stored (ttl 0, a duplicate of one that was not). */
const StoredFields = {
  messageId: Type.Optional(Type.String({ description: 'The stored notification\'s id, for GET /messages/{id}.' })),
  seq: Type.Optional(Type.Integer({ description: 'Its place in its stream.' })),
  epoch: Type.Optional(Type.String({ description: 'Its stream\'s epoch.' })),
};

const PersonSendReply = Type.Object({
  kind: KindParam,
  id: Type.Integer(),
  delivered: Count('Tabs that had it pushed now.'),
  queued: Type.Boolean({ description: 'Stored for tabs that connect or resume later.' }),
  duplicate: Type.Boolean({ description: 'The idempotency key was seen before: nothing new was sent.' }),
  dropped: Count('Older notifications dropped from the stream by its cap.'),
  ...StoredFields,
});

const SendToPeopleReply = Type.Object({
  delivered: Count('Tabs that had it pushed now, in all.'),
  queued: Type.Boolean({ description: 'At least one person\'s copy was stored.' }),
  results: Type.Array(PersonSendReply, { description: 'One per person, in the order of the request\'s first mention of each.' }),
}, { description: 'A send to people (aid, uid, aids, uids).' });

const BroadcastReply = Type.Object({
  delivered: Count('People online who had it pushed now.'),
  queued: Type.Boolean({ description: 'Stored for tabs that connect later.' }),
  duplicate: Type.Boolean({ description: 'The idempotency key was seen before: nothing new was sent.' }),
  dropped: Count('Older notifications dropped from the broadcast stream by its cap.'),
  ...StoredFields,
}, { description: 'A broadcast (all).' });

/** POST /send's answer: to people, or a broadcast. */
export const SendReply = Type.Union([SendToPeopleReply, BroadcastReply], { description: 'The outcome: per person for a send to people, one for a broadcast.' });

/** POST /send/batch's answer: one /send answer per item, or (`"answer":"summary"`) the totals. */
export const SendBatchReply = Type.Union([
  Type.Object({ results: Type.Array(SendReply, { description: 'One /send answer per item, in order.' }) }, { description: '`"answer":"full"` (the default).' }),
  Type.Object({
    items: Count('Items in the batch.'),
    delivered: Count('Tabs (people, for a broadcast) that had a notification pushed now.'),
    queued: Count('Items stored for later tabs.'),
    duplicates: Count('Sends whose idempotency key was seen before.'),
    dropped: Count('Older notifications dropped by stream caps.'),
  }, { description: '`"answer":"summary"`: totals.' }),
], { description: 'One answer per item, or the totals.' });

const ResolverFailures = Type.Object({
  failing: Type.Boolean({ description: 'The latest look-up failed: tabs are refused with 503 until one answers again.' }),
  reason: Type.String(),
  since: Type.Integer({ description: 'Epoch ms: the first failure of the latest run of failures.' }),
  lastAt: Type.Integer({ description: 'Epoch ms: the latest failure.' }),
  count: Count('Look-ups failed in that run.'),
  total: Count('Look-ups failed since the start.'),
});

/** GET /status's answer (docs/http-api.md). */
export const StatusReply = Type.Object({
  version: Type.String(),
  healthy: Type.Boolean({ description: '/healthz\'s verdict: false while the store cannot store (its file lost, its writes failing).' }),
  problem: Type.Optional(Type.String({ description: 'Why it is not healthy; absent while it is.' })),
  uptimeMs: Count(),
  connections: Type.Object({ admin: Count(), user: Count() }, { description: 'Tabs connected to this server.' }),
  maxTabs: Count('The most tabs this server holds at once; 0: no limit.'),
  online: Type.Object({ admin: Count(), user: Count() }, { description: 'People with a tab open.' }),
  store: Type.String({ description: '`sqlite` or `memory`.' }),
  storeCounts: Type.Object({
    streams: Count('Streams with state.'),
    retained: Count('Notifications held for tabs.'),
    retainedBytes: Count('What their JSON comes to (its length: a byte a character for ASCII), as maxRetainedBytes counts it.'),
    maxRetainedBytes: Count('The cap on retainedBytes (the option maxRetainedBytes): a stored send past it is refused with 503; 0: no cap.'),
    retainedMemoryBytes: Count('The memory their JSON takes (the arena\'s 1 MiB chunks, and the texts too long for it); a send to a list of people holds its JSON once, and it counts once here (retainedBytes counts each person\'s).'),
    keys: Count('Idempotency keys held.'),
    transactions: Type.Optional(Count('SQLite: write transactions.')),
    writeFailures: Type.Optional(Count('SQLite: writes refused because their transaction failed, since the start.')),
    writesFailing: Type.Optional(Type.Boolean({ description: 'SQLite: its writes fail now (or for good: the file lost).' })),
    wal: Type.Optional(Type.Object({ checkpoints: Count(), catchUps: Count(), holds: Count(), syncs: Count(), syncFailures: Count() }, { description: 'SQLite: background work on its write-ahead log.' })),
  }),
  broker: Type.String(),
  resolver: Type.String(),
  resolverFailures: Type.Union([ResolverFailures, Type.Null()], { description: 'null until a session look-up fails.' }),
  commands: Type.Object({
    enabled: Type.Boolean(),
    running: Type.Optional(Count()),
    queued: Type.Optional(Count()),
    allowed: Type.Optional(Type.Array(Type.Object({ entry: Type.String(), path: Type.Union([Type.String(), Type.Null()]) }), { description: 'The allowlist and what each entry resolved to at start (null: not installed).' })),
  }),
  memory: Type.Object({ rss: Type.Union([Count('Resident set size, bytes.'), Type.Null()], { description: 'Resident set size, bytes; null when it could not be read (the process out of file descriptors).' }) }),
}, { description: 'The server\'s health, counts and parts.' });

/** GET /messages/{id}'s answer: what every MessageStore reports (protocol/delivery.ts). */
export const MessageStatusReply = Type.Object({
  id: Type.String(),
  stream: Type.String(),
  seq: Type.Integer(),
  epoch: Type.String(),
  expiresAt: Type.Integer({ description: 'Epoch ms.' }),
  acknowledged: Type.Boolean({ description: 'A tab acknowledged it (or a later one of its stream).' }),
  expired: Type.Boolean(),
}, { description: 'The stored notification\'s delivery status.' });

/**
 * @fastify/swagger's `transform` (herald.ts): a route's `config.answers`
 * become its answers in the document, beside any `schema.response` it has
 * (which the document shows as well, and which wins for a status both name).
 */
export function documentAnswers({ schema, url, route }: { schema: FastifySchema | undefined; url: string; route: RouteOptions }): { schema: FastifySchema; url: string } {
  const answers = route.config?.answers;
  if (answers === undefined) return { schema: schema ?? {}, url };
  return { schema: { ...schema, response: { ...answers, ...(schema?.response as object | undefined) } }, url };
}

/**
 * @fastify/swagger's `transformObject` (herald.ts): the document as OpenAPI
 * 3.0 writes a schema, a copy. The validator reads JSON Schema draft 7, whose
 * `exclusiveMinimum` and `exclusiveMaximum` are numbers (a command's
 * `timeout` > 0); OpenAPI 3.0's are booleans beside `minimum` and `maximum`
 * (OpenAPI 3.0.3, Schema Object), and a number there made the document invalid.
 */
export function asOpenApi30<T>(document: T): T {
  return openApi30Value(document) as T;
}

function openApi30Value(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(openApi30Value);
  if (typeof value !== 'object' || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = openApi30Value(v);
  for (const [exclusive, bound, stricter] of [['exclusiveMinimum', 'minimum', Math.max], ['exclusiveMaximum', 'maximum', Math.min]] as const) {
    const limit = out[exclusive];
    if (typeof limit !== 'number') continue;
    const inclusive = out[bound];
    // Both given (draft 7 applies both): the stricter one stays.
    if (typeof inclusive === 'number' && stricter(inclusive, limit) === inclusive && inclusive !== limit) {
      delete out[exclusive];
    } else {
      out[bound] = limit;
      out[exclusive] = true;
    }
  }
  return out;
}
