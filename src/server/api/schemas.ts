/** JSON schemas of the HTTP API (TypeBox: the same object is the type and the validator, and feeds OpenAPI). */
import { Type, type IntegerOptions, type NumberOptions, type Static, type TInteger, type TNumber } from '@sinclair/typebox';
import type { FastifyRequest, FastifyServerOptions } from 'fastify';
import { _, type KeywordCxt } from 'ajv';
import { HeraldError } from '../errors.js';

type AjvPlugin = Extract<NonNullable<NonNullable<FastifyServerOptions['ajv']>['plugins']>[number], (...args: never[]) => unknown>;

/**
 * The schema keyword `x-finite` (finiteNumbers): the value, if a number, must be finite.
 * Fastify's validator converts types (Ajv's coerceTypes: a path's and a
 * query's values are strings), and Ajv turns the strings "Infinity",
 * "-Infinity" and "1e400" into ±Infinity without checking the type again,
 * and skips minimum and maximum for a number that is not finite: `"aid":
 * "Infinity"` was stored for admin Infinity, whom no tab can be, and a token's
 * `"ttl":"Infinity"` failed with 500. Every number a request carries is
 * declared with it (FiniteInteger, FiniteNumber; test/http-api-coercion.test.ts
 * walks the routes' schemas for one without). `x-`: OpenAPI's prefix for a
 * keyword of one's own, so openapi.json stays valid.
 *
 * A keyword Ajv writes into each validator as code (one `isFinite` inline):
 * as a function, called once per number, it cost 0.05 µs a notification of
 * a W2 batch, a quarter of what validating the whole item took.
 */
export const finiteNumbers: AjvPlugin = (ajv) => ajv.addKeyword({
  keyword: 'x-finite',
  schemaType: 'boolean',
  error: { message: 'must be a finite number' },
  code(cxt: KeywordCxt) {
    if (cxt.schema === true) cxt.fail(_`typeof ${cxt.data} == "number" && !isFinite(${cxt.data})`);
  },
});

/** An integer a request carries (a path's, a query's or a body's): see finiteNumbers. */
export function FiniteInteger(options: IntegerOptions = {}): TInteger {
  return Type.Integer({ ...options, 'x-finite': true });
}

/** A number a request carries: see finiteNumbers. */
export function FiniteNumber(options: NumberOptions = {}): TNumber {
  return Type.Number({ ...options, 'x-finite': true });
}

const PersonId = FiniteInteger({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });
const PersonIds = Type.Array(PersonId, { minItems: 1, maxItems: 10000 });

// One object with exactly one of these keys, rather than a union of five
// objects: the same rule, checked in one pass instead of trying each branch
// (this schema runs once per notification in a batch).
export const Recipient = Type.Object({
  aid: Type.Optional(PersonId),
  uid: Type.Optional(PersonId),
  aids: Type.Optional(PersonIds),
  uids: Type.Optional(PersonIds),
  all: Type.Optional(Type.Union([Type.Literal('admins'), Type.Literal('users')])),
}, { additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'Exactly one of: one admin, one user, a list of either, or everyone of a kind.' });
export type Recipient = Static<typeof Recipient>;

export const Notification = Type.Union([
  Type.Object({ TYPE: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: true }),
  Type.String({ maxLength: 65536 }),
], { description: 'A notification object with a TYPE (TITLE, TEXT and other fields pass through untouched), or a plain string.' });

export const SendBody = Type.Object({
  to: Recipient,
  message: Notification,
  ttl: Type.Optional(FiniteNumber({ minimum: 0, description: 'Seconds the notification waits for a tab; 0 = only tabs open now. Default: server configuration.' })),
  idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'The same key for the same recipient is delivered once: within the TTL for a stored send; for a live-only one (ttl 0, a string message), within 5 minutes on the node that took it, while it runs (docs/delivery.md).' })),
}, { additionalProperties: false });
export type SendBody = Static<typeof SendBody>;

export const SendBatchBody = Type.Object({
  messages: Type.Array(SendBody, { minItems: 1, maxItems: 10000, description: 'Each item is the body of POST /send.' }),
  answer: Type.Optional(Type.Union([Type.Literal('full'), Type.Literal('summary')], {
    description: '`full` (default): one /send answer per item. `summary`: totals only, for a backend that does not keep message ids.',
  })),
}, { additionalProperties: false });
export type SendBatchBody = Static<typeof SendBatchBody>;

export const DisconnectBody = Type.Object({
  // One object with exactly one key, as Recipient: a union of two objects answered a
  // misspelt key with three refusals, one per branch tried.
  to: Type.Object({ aid: Type.Optional(PersonId), uid: Type.Optional(PersonId) }, {
    additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'Exactly one of: one admin, one user.',
  }),
  reason: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false });
export type DisconnectBody = Static<typeof DisconnectBody>;

export const TokenBody = Type.Object({
  kind: Type.Union([Type.Literal('admin'), Type.Literal('user')]),
  id: PersonId,
  ttl: Type.Optional(FiniteNumber({ minimum: 1, maximum: 31 * 86400, description: 'Seconds.' })),
}, { additionalProperties: false });
export type TokenBody = Static<typeof TokenBody>;

export { PersonId };

export const KindParam = Type.Union([Type.Literal('admin'), Type.Literal('user')]);

export const ErrorReply = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String(), details: Type.Optional(Type.Unknown()) }),
});

/** What a JSON value is, as a refusal names it. */
export function jsonType(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'boolean' ? String(v) : typeof v;
}

/**
 * The refusal of a notification object's TYPE that is not a string, else undefined. The
 * validator made `true` the TYPE "true", `5` "5" and `["X"]` "X", and the tab got a TYPE
 * the panel never sent, where the rest of a notification reaches it as sent.
 */
export function notificationTypeRefusal(m: unknown, at: string): string | undefined {
  if (typeof m !== 'object' || m === null || !('TYPE' in m)) return undefined;
  const type = (m as { TYPE: unknown }).TYPE;
  return typeof type === 'string' ? undefined : `${at}/TYPE must be string, not ${jsonType(type)}`;
}

/** A body's own scalar field and the type a refusal says it must be: `['ttl', 'number']`. */
export type ScalarField = readonly [name: string, type: string];

/**
 * The refusal of the first of `fields` in body `b` that holds `null`, a
 * boolean, or a one-item array of either (`body/ttl must be number, not
 * null`, `body/ttl/0 …`); undefined when none does. The validator converts
 * them (Fastify's coerceTypes 'array') into values that mean something else:
 * `null` into 0 or "", `true` into 1 (`"id":true` was a token for admin 1),
 * and takes a one-item array for its item. A number's string that spells no
 * decimal number (`" "`, `"0x10"`: undecimalRefusal) is refused too. What
 * keeps its meaning (`"7"`, `[60]`) still converts. http-api.ts,
 * convertedField, says more.
 */
export function convertedScalar(b: Record<string, unknown>, at: string, fields: readonly ScalarField[]): string | undefined {
  for (const [k, type] of fields) {
    const v = b[k];
    if (v === null || typeof v === 'boolean') return `${at}/${k} must be ${type}, not ${jsonType(v)}`;
    if (Array.isArray(v) && v.length === 1 && (v[0] === null || typeof v[0] === 'boolean')) return `${at}/${k}/0 must be ${type}, not ${jsonType(v[0])}`;
    if (type !== 'number' && type !== 'integer') continue;
    const refusal = Array.isArray(v) && v.length === 1 ? undecimalRefusal(v[0], `${at}/${k}/0`, type) : undecimalRefusal(v, `${at}/${k}`, type);
    if (refusal !== undefined) return refusal;
  }
  return undefined;
}

/** A number as JSON writes one, but for an optional `+`: no white space, no other base. */
const DECIMAL = /^[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
/**
 * An integer as JSON writes one that is not negative (no integer Herald takes
 * is): digits alone, no leading zero, as an id must be written everywhere else
 * (principal.ts, toPersonId: the legacy door refuses `"07"`, `"7.0"`, `"7e0"`).
 */
const DIGITS = /^(?:0|[1-9]\d*)$/;

/**
 * The refusal of a string in a number field (`type`: `number` or `integer`)
 * that the validator would take for a number it does not spell, else
 * undefined. Ajv converts a string whenever `data == +data`: white space
 * (`" "`, `"\t"`) became 0, and so did `"1e-400"`, so a send meant to be
 * stored was not; `"0x10"` was admin 16 and `"0b111"` admin 7. A number
 * written in decimal still converts (`"7"`, `"60"`, `"1.5"`, `"2e3"`), an
 * integer only in digits (`"7"`, not `"07"` or `"7.0"`: DIGITS); a string
 * that is no number at all the schema refuses itself (`must be number`), and
 * one past every bound (`"Infinity"`, `"1e400"`) is x-finite's (finiteNumbers).
 */
export function undecimalRefusal(v: unknown, at: string, type: string): string | undefined {
  if (typeof v !== 'string') return undefined;
  const number = Number(v);
  if (!Number.isFinite(number)) return undefined;
  if (!DECIMAL.test(v)) return `${at} must be ${type}, not the string ${JSON.stringify(v.slice(0, 40))}: a number in a string must be written in decimal (60, 1.5, 2e3), without white space`;
  if (type === 'integer' && !DIGITS.test(v)) return `${at} must be integer, not the string ${JSON.stringify(v.slice(0, 40))}: an integer in a string must be written in digits alone (7, 60), without a sign, a leading zero, a fraction or an exponent`;
  // Digits other than 0 before the exponent, and yet 0: past the smallest number there is.
  if (number === 0 && /[1-9]/.test(v.split(/[eE]/)[0]!)) return `${at} must be ${type}, not ${JSON.stringify(v.slice(0, 40))}: too small to be told from 0`;
  return undefined;
}

/** A route's schema for its path's or its query's values: the properties the validator converts. */
type PartSchema = { properties?: Record<string, { type?: unknown }> } | undefined;

/**
 * preValidation of every `/api/v1` route (http-api.ts): a path's or a query's
 * number (`/online/admin/0x10`, `?limit=%20`) that is a string the validator
 * would take for a number it does not spell (undecimalRefusal) is refused with
 * 400 HERALD_ERR_VALIDATION, naming it. Every value there is a string; a
 * repeated query parameter (`?limit=1&limit=0x2`) is a list of them.
 */
export async function refuseUndecimalParts(req: FastifyRequest): Promise<void> {
  const schema = req.routeOptions.schema;
  if (schema === undefined) return;
  const refusal = undecimalIn(req.params, schema.params as PartSchema, 'params') ?? undecimalIn(req.query, schema.querystring as PartSchema, 'querystring');
  if (refusal !== undefined) throw new HeraldError('HERALD_ERR_VALIDATION', refusal);
}

function undecimalIn(values: unknown, schema: PartSchema, at: string): string | undefined {
  const properties = schema?.properties;
  if (properties === undefined || typeof values !== 'object' || values === null) return undefined;
  for (const k in properties) {
    const type = properties[k]!.type;
    if (type !== 'number' && type !== 'integer') continue;
    const v = (values as Record<string, unknown>)[k];
    const refusal = Array.isArray(v)
      ? v.map((item, i) => undecimalRefusal(item, `${at}/${k}/${i}`, type)).find((r) => r !== undefined)
      : undecimalRefusal(v, `${at}/${k}`, type);
    if (refusal !== undefined) return refusal;
  }
  return undefined;
}

/** A preValidation hook that refuses a body whose `fields` hold a value the validator would convert (convertedScalar): 400 HERALD_ERR_VALIDATION. */
export function refuseConverted(fields: readonly ScalarField[]): (req: FastifyRequest) => Promise<void> {
  return async (req) => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
    const refusal = convertedScalar(body as Record<string, unknown>, 'body', fields);
    if (refusal !== undefined) throw new HeraldError('HERALD_ERR_VALIDATION', refusal);
  };
}

/** One refusal of Ajv's, as Fastify hands it on (FastifySchemaValidationError). */
interface SchemaViolation {
  keyword: string;
  instancePath: string;
  schemaPath?: string | undefined;
  params: Record<string, unknown>;
  message?: string | undefined;
  /** With Ajv's `verbose` (herald.ts): the value refused, and the schema of the object holding the keyword. */
  data?: unknown;
  parentSchema?: { properties?: Record<string, unknown>; anyOf?: readonly unknown[] } | undefined;
}

/**
 * The answer to a request its route's schema refused: 400 HERALD_ERR_VALIDATION, the
 * message naming the part that was wrong (`body/aid must be >= 1`). A field the schema
 * does not know is named (`body has an unknown field "tll"`): Ajv says only "must NOT
 * have additional properties", which leaves a backend to guess which of its fields is
 * misspelt. The error handler answers with it, and a route that records its refusals
 * (POST /commands) records it.
 */
export function schemaRefusal(err: Error & { validationContext?: string | undefined; validation?: readonly SchemaViolation[] | undefined }): HeraldError {
  const context = err.validationContext ?? 'body';
  if (!err.validation?.length) return new HeraldError('HERALD_ERR_VALIDATION', `${context}${err.message.replace(/^(body|querystring|params)/, '')}`);
  // A choice of words (`kind`: "admin" or "user", a union of literals) is refused by each
  // literal and then by the union: "must be equal to constant" twice, then "must match a
  // schema in anyOf". One refusal naming the words instead; the literals' are dropped.
  const choices = err.validation.filter((v) => literalChoice(v) !== undefined);
  const violations = choices.length === 0
    ? err.validation
    : err.validation.filter((v) => v.keyword !== 'const' || !choices.some((c) => c.instancePath === v.instancePath && v.schemaPath?.startsWith(`${c.schemaPath}/`)));
  const parts = violations.map((v) => {
    const words = literalChoice(v);
    if (words !== undefined) return `${context}${v.instancePath} must be ${words}`;
    const refusal = v.keyword === 'additionalProperties' ? v.params.additionalProperty : exactlyOneRefusal(v);
    if (typeof refusal === 'string') return `${context}${v.instancePath} has an unknown field ${JSON.stringify(refusal.slice(0, 100))}`;
    const message = typeof refusal === 'object' && refusal !== null && 'message' in refusal ? String(refusal.message) : v.message;
    return `${context}${v.instancePath} ${message ?? 'is not valid'}`;
  });
  return new HeraldError('HERALD_ERR_VALIDATION', parts.join(', '));
}

/** The words an `anyOf` of literals allows, as a refusal says them (`"admin" or "user"`); undefined for any other violation. */
function literalChoice(v: SchemaViolation): string | undefined {
  const branches = v.keyword === 'anyOf' ? v.parentSchema?.anyOf : undefined;
  if (branches === undefined || branches.length === 0) return undefined;
  const words: string[] = [];
  for (const b of branches) {
    if (typeof b !== 'object' || b === null || !('const' in b)) return undefined;
    words.push(JSON.stringify((b as { const: unknown }).const));
  }
  return words.length === 1 ? words[0] : `${words.slice(0, -1).join(', ')} or ${words.at(-1)}`;
}

/**
 * An object that must hold exactly one of its fields (a recipient: `aid`, `uid`, …). Ajv
 * checks the count before the names, so `{"aid":1,"foo":1}` was refused as "must NOT have
 * more than 1 properties", which names neither the stray field nor the choice. This names
 * an unknown field when there is one (a string), else the fields allowed and those given.
 */
function exactlyOneRefusal(v: SchemaViolation): string | { message: string } | undefined {
  if ((v.keyword !== 'maxProperties' && v.keyword !== 'minProperties') || v.params.limit !== 1) return undefined;
  const allowed = Object.keys(v.parentSchema?.properties ?? {});
  if (allowed.length === 0 || typeof v.data !== 'object' || v.data === null) return undefined;
  const given = Object.keys(v.data);
  const unknown = given.find((k) => !allowed.includes(k));
  if (unknown !== undefined) return unknown;
  const choice = `exactly one of ${allowed.join(', ')}`;
  return { message: given.length === 0 ? `must hold ${choice}` : `must hold ${choice}, not ${given.map((k) => k.slice(0, 100)).join(' and ')}` };
}
