import { timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type {} from '@fastify/swagger';
import type { NotificationPayload } from '../../protocol/frames.js';
import { jsonBodyFault, jsonNestsDeeperThan, MAX_JSON_DEPTH, type JsonBodyFault } from '../../protocol/json-depth.js';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import { HeraldError, isHeraldError, type ErrorCode } from '../errors.js';
import type { HeraldOptions } from '../options.js';
import { ThrottledLog } from '../throttled-log.js';
import { ttlMsFromSeconds, type BatchSend, type Notifier, type SendOptions, type SendResult } from '../notifier.js';
import type { CommandService } from '../commands/command-service.js';
import { afterEarlierAnswers, answerInProgress } from '../gateway/other-upgrade.js';
import { registerCommandRoutes } from './commands-routes.js';
import { pipelineRefusal, stopReading } from './pipelining.js';
import { handleLegacyRequest } from './legacy-handler.js';
import {
  convertedScalar, DisconnectBody, jsonType, KindParam, notificationTypeRefusal, PersonId, refuseConverted, refuseUndecimalParts, schemaRefusal,
  SendBatchBody, SendBody, TokenBody, undecimalRefusal, type Recipient, type ScalarField,
} from './schemas.js';
import { errorAnswer, MessageStatusReply, missingAnswer, routeAnswers, SendBatchReply, SendReply, StatusReply } from './openapi.js';

export interface HttpApiContext {
  notifier: Notifier;
  /** Background commands: `/api/v1/commands` and the legacy COMMAND request (absent: neither exists). */
  commands: CommandService | undefined;
  apiToken: string;
  version: string;
  /**
   * The option authResolver: POST /tokens mints only for `token`, the one
   * resolver that reads a signed token (`?token=`, the herald_token cookie).
   */
  authResolver: HeraldOptions['authResolver'];
  mintToken(principal: Principal, ttlMs?: number): Promise<{ token: string; expiresAt: number }>;
  status(): Record<string, unknown>;
}

/** `Authorization: Bearer <token>`; the scheme's name in any case (RFC 9110 §11.1), the token exactly. */
function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  if (header === undefined || header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return false;
  const given = Buffer.from(header.slice(7).trim());
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** The code of a 4xx that is not Herald's own error; a status not listed is answered 400 HERALD_ERR_BAD_REQUEST. */
const CODE_OF_CLIENT_STATUS: Partial<Record<number, ErrorCode>> = {
  401: 'HERALD_ERR_UNAUTHORIZED',
  403: 'HERALD_ERR_FORBIDDEN',
  404: 'HERALD_ERR_NOT_FOUND',
  408: 'HERALD_ERR_REQUEST_TIMEOUT',
  409: 'HERALD_ERR_CONFLICT',
  413: 'HERALD_ERR_TOO_LARGE',
  417: 'HERALD_ERR_EXPECTATION_FAILED',
  426: 'HERALD_ERR_UPGRADE_REQUIRED',
  429: 'HERALD_ERR_RATE_LIMITED',
  431: 'HERALD_ERR_HEADERS_TOO_LARGE',
};

/** Maps every error to `{"error":{code,message}}` with a stable code: never a stack trace. */
export function installErrorHandling(app: FastifyInstance): void {
  // Bodies are JSON (docs/http-api.md). Fastify also reads text/plain, as a
  // string, which the schema then refused as "body must be object": a backend
  // that sent JSON with the wrong Content-Type was told its JSON was wrong.
  app.removeContentTypeParser('text/plain');
  // Every answer names its request's id, as the log lines of that request do (`reqId`): a
  // backend given a 500 can point to the line that says why. Fastify's own ids (`req-1`,
  // `req-2`… in base 36, counted from each start); a request's own X-Request-Id is not taken.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id);
    done();
  });
  const unauthorized = unauthorizedLog(app);
  app.addHook('onClose', (_app, done) => {
    unauthorized.flush();
    done();
  });
  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    const refusal = refusalOf(err, req);
    if (refusal === undefined) {
      req.log.error({ err, reqId: req.id }, 'request failed');
      return reply.status(500).send(new HeraldError('HERALD_ERR_INTERNAL').toJSON());
    }
    logRefusal(req, refusal, unauthorized);
    return reply.status(refusal.status).send(refusal.toJSON());
  });
  // Answered in onRequest, before the body is read: Fastify reads the body of a request no
  // route takes as of any other (up to maxBodyBytes, waiting up to requestTimeoutMs for the
  // rest), so unauthenticated POSTs to any path held 1 MB each, 200 connections 192 MB.
  app.addHook('onRequest', (req, reply, done) => {
    // The request past the bound of its connection's pipeline (pipelining.ts): not run, whatever its route.
    const pipelined = pipelineRefusal(req.raw);
    if (pipelined !== undefined) return done(pipelined);
    if (req.is404) return done(notFound(req));
    // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without a Host header.
    // Node does so itself with a bare 400 unless told not to (requireHostHeader, herald.ts).
    if (req.headers.host === undefined && req.raw.httpVersion === '1.1') return done(new HeraldError('HERALD_ERR_BAD_REQUEST', 'an HTTP/1.1 request must carry a Host header'));
    const badHost = hostRefusal(req.raw.rawHeaders);
    if (badHost !== undefined) return done(new HeraldError('HERALD_ERR_BAD_REQUEST', badHost));
    done();
  });
  app.setNotFoundHandler((req, reply) => {
    const refusal = notFound(req);
    logRefusal(req, refusal);
    reply.status(404).send(refusal.toJSON());
  });
}

/** What a request's error is answered with, a Herald error with its status; undefined for a failure of Herald's own (500). */
function refusalOf(err: FastifyError, req: FastifyRequest): HeraldError | undefined {
  if (isHeraldError(err)) return err;
  if (err.validation) return schemaRefusal(err);
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HeraldError('HERALD_ERR_TOO_LARGE');
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return notJson(req.headers['content-type']);
  if (err.code?.startsWith('FST_ERR_CTP_') || (err.statusCode === 400)) return new HeraldError('HERALD_ERR_BAD_REQUEST', err.message);
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
    // Another 4xx a plugin or the framework raised: the code of that status where Herald has
    // one, else 400 HERALD_ERR_BAD_REQUEST. The status is always the code's (README's table).
    return new HeraldError(CODE_OF_CLIENT_STATUS[err.statusCode] ?? 'HERALD_ERR_BAD_REQUEST', err.message);
  }
  return undefined;
}

/**
 * A refused request, at level debug: per-request lines are off (herald.ts),
 * so a backend's 400s (a body that is not JSON) left no trace at any level.
 * The status, the code, the method and the route (its pattern; the path,
 * without its query, when no route took it): never the message, which may
 * quote the body, nor a header. A 401 (no API token, or a wrong one) is also
 * a warning, bounded (`unauthorized`, unauthorizedLog): at level info a
 * backend with a wrong token failed without a word in the log.
 */
function logRefusal(req: FastifyRequest, refusal: HeraldError, unauthorized?: ThrottledLog): void {
  const route = req.routeOptions.url ?? req.url.split('?')[0]!.slice(0, 200);
  const fields = { reqId: req.id, method: req.method, route, status: refusal.status, code: refusal.code };
  req.log.debug(fields, 'request refused');
  if (refusal.status === 401 && unauthorized !== undefined) {
    const why = req.headers.authorization === undefined ? 'no API token' : 'wrong API token';
    unauthorized.log('warn', why, { ...fields, ip: req.ip }, `API request refused: ${why} (Authorization: Bearer …)`, 1, req.ip);
  }
}

/**
 * The warnings of API requests refused 401: five a window of each cause (no
 * token, a wrong one) one by one, then counted, with the addresses refused
 * most often, in one line each 10 s. A misconfigured backend is told once in
 * a while; anyone who can reach the port cannot write the log as fast as
 * they can ask.
 */
function unauthorizedLog(app: FastifyInstance): ThrottledLog {
  return new ThrottledLog(app.log, Date.now, {
    budget: 'per key',
    perWindow: 5,
    summary: (byCause, windowMs, perWindow, samples) => ({
      fields: { refused: Object.values(byCause).reduce((a, b) => a + b, 0), byCause, addresses: samples, windowMs },
      message: `API requests refused for a missing or wrong API token, not logged one by one: more than ${perWindow} of a cause in ${windowMs / 1000} s`,
    }),
  });
}

/** jsonNestsDeeperThan's answer as a fault, for a body not checked by name (POST /legacy). */
const DEEPER: JsonBodyFault = { kind: 'deeper' };

/**
 * JSON bodies. Checked from their headers before they are read (bodyRefusal:
 * charset, codings), and `100 Continue` written once they pass
 * (continueAfterChecks). Then Fastify's own parser (secure-json-parse, a
 * `__proto__` or `constructor.prototype` key refused), after a scan that refuses a body
 * nested deeper than MAX_JSON_DEPTH with 400 HERALD_ERR_BAD_REQUEST. JSON.parse
 * takes about 0.75 µs a level, so a 1 MB body of `[` held the event loop for
 * 400 ms before anything could refuse it; the scan finds it in about a
 * millisecond, and costs a third of the parse on an ordinary body (strings
 * are skipped with indexOf). The same pass finds a field given twice in one
 * object of a body's own (jsonBodyFault), refused with 400
 * HERALD_ERR_VALIDATION naming it: JSON.parse keeps the last value silently.
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  app.addHook('preParsing', (req, reply, payload, done) => {
    const raw = req.raw;
    const awaiting = awaitingContinue.has(raw);
    const refusal = declaresBody(raw) ? bodyRefusal(req, awaiting) : undefined;
    if (refusal !== undefined) return done(refusal);
    if (awaiting) {
      awaitingContinue.delete(raw);
      reply.raw.writeContinue();
    }
    done(null, payload);
  });
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    // A body whose schema names its fields has each name once (jsonBodyFault); POST /legacy takes
    // any request object, as the old daemon did, and JSON.parse's last value wins there.
    const named = (req.routeOptions.schema?.body as { type?: unknown } | undefined)?.type === 'object';
    const fault = named ? jsonBodyFault(body as string, MAX_JSON_DEPTH) : jsonNestsDeeperThan(body as string, MAX_JSON_DEPTH) ? DEEPER : undefined;
    if (fault?.kind === 'deeper') {
      done(new HeraldError('HERALD_ERR_BAD_REQUEST', `the body is nested deeper than ${MAX_JSON_DEPTH} levels (arrays and objects)`), undefined);
      return;
    }
    parse(req, body as string, (err, value) => {
      // A repeated name is refused only in a body that is JSON: the scan's answer for any other text is a guess.
      if (err === null && fault?.kind === 'repeated') return done(new HeraldError('HERALD_ERR_VALIDATION', `body${fault.at} has the field ${JSON.stringify(fault.name.slice(0, 100))} twice: give each field once`), undefined);
      if (err === null && fault?.kind === 'underflow') return done(new HeraldError('HERALD_ERR_VALIDATION', `body${fault.at} has the number ${fault.number}, which JSON reads as 0: write 0, or a number JSON can hold`), undefined);
      if (err === null || !isValidJson(body as string)) return done(err, value);
      // Valid JSON that secure-json-parse refused: a `__proto__` or `constructor.prototype` key.
      done(new HeraldError('HERALD_ERR_BAD_REQUEST', 'the body holds a "__proto__" key or a "constructor" key with a "prototype", which Herald refuses (prototype poisoning)'), undefined);
    });
  });
}

/**
 * Why a request's body is refused from its headers alone, or undefined. Herald
 * reads a body as it came, in UTF-8, and decodes no coding but chunked:
 * - a Transfer-Encoding other than `chunked` (RFC 9112 §6.1; node passes
 *   `gzip, chunked` and takes off only the chunks);
 * - a Content-Encoding other than `identity` (RFC 9110 §8.4): a gzip body
 *   was refused as "not valid JSON", a plain one labelled `br` was taken;
 * - a JSON body in a charset other than UTF-8 (RFC 8259 §8.1): read as UTF-8,
 *   a latin1 or windows-1251 body's letters became U+FFFD, stored and sent.
 * With `all` (a request waiting for 100 Continue) also what Fastify checks
 * only once it has begun to read: a Content-Length past the route's limit,
 * and a body that is not JSON. All 400 HERALD_ERR_BAD_REQUEST, as a wrong
 * Content-Type is (and 413 HERALD_ERR_TOO_LARGE).
 */
function bodyRefusal(req: FastifyRequest, all: boolean): HeraldError | undefined {
  const headers = req.raw.headers;
  const te = headers['transfer-encoding'];
  if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
    return new HeraldError('HERALD_ERR_BAD_REQUEST', `Transfer-Encoding: ${te.slice(0, 100)} is not supported: a body may only be chunked`);
  }
  const ce = headers['content-encoding'];
  if (ce !== undefined && !ce.split(',').every((c) => c.trim() === '' || c.trim().toLowerCase() === 'identity')) {
    return new HeraldError('HERALD_ERR_BAD_REQUEST', `Content-Encoding: ${ce.slice(0, 100)} is not supported: send the body uncompressed (no Content-Encoding)`);
  }
  const type = headers['content-type'];
  const semicolon = type === undefined ? -1 : type.indexOf(';');
  if (semicolon >= 0 && mediaType(type!) === 'application/json') {
    const charset = charsetOf(type!.slice(semicolon + 1));
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return new HeraldError('HERALD_ERR_BAD_REQUEST', `charset=${charset.slice(0, 40)} is not supported: a body must be JSON in UTF-8 (charset=utf-8, or none)`);
    }
  }
  if (!all) return undefined;
  if (Number(headers['content-length']) > req.routeOptions.bodyLimit) return new HeraldError('HERALD_ERR_TOO_LARGE');
  if (req.method !== 'GET' && req.method !== 'HEAD' && (type === undefined || mediaType(type) !== 'application/json')) return notJson(type);
  return undefined;
}

/** A Content-Type's type/subtype, in lower case. */
function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

/** The charset among a Content-Type's parameters (`; charset="UTF-8"`), unquoted and in lower case (RFC 9110 §8.3.2); undefined when none. */
function charsetOf(parameters: string): string | undefined {
  for (const parameter of parameters.split(';')) {
    const eq = parameter.indexOf('=');
    if (eq < 0 || parameter.slice(0, eq).trim().toLowerCase() !== 'charset') continue;
    const value = parameter.slice(eq + 1).trim();
    return (value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value).toLowerCase();
  }
  return undefined;
}

/** Requests with `Expect: 100-continue` whose 100 is not written yet (continueAfterChecks). */
const awaitingContinue = new WeakSet<IncomingMessage>();

/**
 * Makes an HTTP server answer `Expect: 100-continue` with 100 only once the
 * request's headers have passed every check, instead of at once as node
 * does: a wrong token, an unknown path, a body too large or not JSON got
 * `100 Continue` and then the refusal, and a client sent its body for
 * nothing (RFC 9110 §10.1.1: a server that will refuse should not send 100).
 * The request runs as any other; the 100 is written in the preParsing hook
 * (installJsonBodyParser), after the routes' onRequest checks, and a refusal
 * before it goes out alone. Node then ends the connection, as the client may
 * send its body anyway. On the old daemon's ports, which never read a body,
 * no 100 is ever written.
 */
export function continueAfterChecks(server: HttpServer): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    awaitingContinue.add(req);
    server.emit('request', req, res);
  });
}

/** Whether JSON.parse takes `text`: asked only of a body the parser already refused. */
function isValidJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** What a host[:port] may hold (RFC 3986 §3.2.2, §3.2.3): an IP literal in brackets, or a name or IPv4 address (empty too: RFC 9112 §3.2). */
const HOST_AND_PORT = /^(?:\[[\w.~!$&'()*+,;=:%-]+\]|[\w.~!$&'()*+,;=%-]*)(?::\d*)?$/;

/**
 * Why a request's Host header is refused, or undefined. RFC 9112 §3.2: a
 * server must answer 400 to a request with more than one Host line, or with
 * a Host that is not a valid host[:port]. Node keeps the first of two (and
 * the demo's DNS-rebinding guard read that one, web/routes.ts), and takes
 * any value. A loop over the raw headers: this runs for every request.
 */
export function hostRefusal(rawHeaders: readonly string[]): string | undefined {
  let host: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (host !== undefined) return 'a request must carry one Host header, not several (RFC 9112 §3.2)';
    host = rawHeaders[i + 1]!;
  }
  if (host === undefined || HOST_AND_PORT.test(host)) return undefined;
  return `the Host header ${JSON.stringify(host.slice(0, 100))} is not a host name or address with an optional port (RFC 9112 §3.2)`;
}

/** The refusal of a body that is not JSON: its Content-Type named (FST_ERR_CTP_INVALID_MEDIA_TYPE, and the 100-continue check). */
function notJson(given: string | undefined): HeraldError {
  return new HeraldError('HERALD_ERR_BAD_REQUEST', `the body must be JSON, sent with Content-Type: application/json (${given === undefined ? 'no Content-Type was given' : `got ${JSON.stringify(given.slice(0, 100))}`})`);
}

/**
 * Whether a request says it has a body: a Content-Length above 0, or a
 * Transfer-Encoding. Until its body has been read a request is not
 * `complete`; nor is one without a body, whose answer is given before node
 * has marked it so (a synchronous route: the library's files, a 304, a 404).
 */
export function declaresBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > 0;
}

function notFound(req: FastifyRequest): HeraldError {
  return new HeraldError('HERALD_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
}

/**
 * Fastify's `frameworkErrors`: a URL that is not valid percent-encoding
 * (`/api/v1/messages/%E0%A4%A`) is refused before routing, and Fastify's own
 * answer to it was not Herald's error shape. So is a path parameter longer than
 * the router's maxParamLength (100 characters; no id Herald hands out comes near).
 */
export function answerFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  // Refused before the onRequest hooks run: the id is set here (installErrorHandling).
  reply.header('x-request-id', req.id);
  if (err.code === 'FST_ERR_BAD_URL') {
    // Fastify's message quotes the whole URL, query and all: a browser token in `?token=` too.
    const path = req.url.split('?')[0]!;
    const refusal = new HeraldError('HERALD_ERR_BAD_REQUEST', `the URL's path ${JSON.stringify(path.slice(0, 200))} is not valid percent-encoding`);
    logRefusal(req, refusal);
    reply.status(400).send(refusal.toJSON());
    return;
  }
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    const refusal = new HeraldError('HERALD_ERR_BAD_REQUEST', 'a part of the path is longer than 100 characters: no such id');
    logRefusal(req, refusal);
    reply.status(400).send(refusal.toJSON());
    return;
  }
  req.log.error({ err, reqId: req.id }, 'request failed');
  reply.status(500).send(new HeraldError('HERALD_ERR_INTERNAL').toJSON());
}

/**
 * Fastify's `clientErrorHandler` (and the old daemon's ports' `clientError`): a request
 * node's HTTP parser refused, or one that did not arrive whole within requestTimeoutMs,
 * never reaches a route, and was answered in another shape. Herald's shape here too, each
 * with the status node chose and a code of that status (408, 431, 400); then the
 * connection ends.
 *
 * Answers in the order of the requests (RFC 9112 §9.3.2): pipelined behind a request whose
 * answer is not written yet, the refusal waits for that answer (errorAfterEarlierAnswers).
 * Node's own socketOnError, which this was copied from, wrote it at once when the earlier
 * answer had not begun, and ended the connection: a send pipelined in front had been
 * delivered, and its client read the 400 as the send's answer.
 */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // Node calls this again for each later read (its parser stays in the error) and for a
  // timeout: the connection's first refusal is the one answered.
  if (refusingClient.has(socket)) return;
  refusingClient.add(socket);
  // Nothing after the refused request is parsed, or run: the connection ends with its refusal.
  stopReading(socket);
  const error = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    ? new HeraldError('HERALD_ERR_REQUEST_TIMEOUT', 'the request did not arrive whole in time (requestTimeoutMs)')
    : err.code === 'HPE_HEADER_OVERFLOW'
      ? new HeraldError('HERALD_ERR_HEADERS_TOO_LARGE')
      : new HeraldError('HERALD_ERR_BAD_REQUEST', `malformed HTTP request${err.code ? ` (${err.code})` : ''}`);
  errorAfterEarlierAnswers(socket, () => {
    // None in progress now, or the refused request's own not begun. One that had begun (its
    // route answered before the body came) would have our bytes read inside it.
    if (socket.writable && !answerInProgress(socket)?.headersSent) {
      const body = JSON.stringify(error.toJSON());
      socket.write(`HTTP/1.1 ${error.status} ${STATUS_CODES[error.status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy(err);
  });
}

/** Connections whose refusal answerClientError is writing or waiting to write. */
const refusingClient = new WeakSet<Socket>();

/**
 * Runs `then` once the answers to the requests before the refused one are written, or at
 * once when there are none. An answer in progress whose request is not complete is the
 * refused request's own (a request is incomplete only while its body is being parsed, and
 * the refusal is of what came next in it: a body cut short, a timeout): its route will never
 * see the rest of the body, so the refusal is its answer, unless that answer has begun (its
 * route answered before reading the body). Not afterEarlierAnswers (gateway/other-upgrade.ts):
 * that one is for a connection node has handed over, and waits for every answer.
 */
function errorAfterEarlierAnswers(socket: Socket, then: () => void): void {
  if (socket.destroyed) return;
  const answering = answerInProgress(socket);
  if (answering === undefined || (!answering.req.complete && !answering.headersSent)) {
    then();
    return;
  }
  // 'close' as well: an answer cut short by the connection's end never finishes. Node's own
  // 'finish' listener runs first, and puts the next queued answer in its place.
  let waited = false;
  const next = (): void => {
    if (waited) return;
    waited = true;
    errorAfterEarlierAnswers(socket, then);
  };
  answering.once('finish', next);
  answering.once('close', next);
}

/**
 * Request ids as Fastify's own (`req-1`, `req-2`… in base 36, counted from each start), one
 * count for all of a Herald's HTTP listeners: the main port's (Fastify's genReqId), the old
 * daemon's ports' and a refused CONNECT's. An id names one request in the log, whatever the port.
 */
export function requestIds(): () => string {
  let last = 0;
  return () => {
    // Kept a small integer (2^31 − 1 at most), as Fastify does: past it V8 would make it a float.
    last = (last + 1) & 0x7fffffff;
    return `req-${last.toString(36)}`;
  };
}

/**
 * The HTTP server's 'connect' listener. A CONNECT (a proxy's tunnel) goes to this listener
 * only, with its connection taken from the HTTP parser, and without one node dropped the
 * connection unanswered. Herald is no proxy: 404 HERALD_ERR_NOT_FOUND, as any method or route
 * it does not serve, with an X-Request-Id, and the connection ends (node parses nothing after
 * a CONNECT). Pipelined behind a request still being answered, once that answer is written.
 */
export function answerConnect(log: FastifyBaseLogger, nextId: () => string): (req: IncomingMessage, socket: Duplex) => void {
  return (req, socket) => {
    const answer = (): void => {
      if (socket.destroyed) return;
      socket.on('error', destroySocket);
      const id = nextId();
      const target = (req.url ?? '').slice(0, 200);
      const refusal = new HeraldError('HERALD_ERR_NOT_FOUND', `no route CONNECT ${target}`);
      log.debug({ reqId: id, method: 'CONNECT', route: target, status: refusal.status, code: refusal.code }, 'request refused');
      const body = JSON.stringify(refusal.toJSON());
      socket.once('finish', destroySocket);
      socket.end(
        `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
      );
    };
    if (answerInProgress(socket) !== undefined) afterEarlierAnswers(socket, answer);
    else answer();
  };
}

/** A shared function: the connection of an answered CONNECT, once written, or on an error. */
function destroySocket(this: Duplex): void {
  this.destroy();
}

/**
 * The HTTP server's `checkExpectation` listener: a request with an `Expect`
 * other than 100-continue gets 417 (RFC 9110 §10.1.1), which node wrote with
 * an empty body; Herald's error shape instead. The request is not run.
 */
export function answerUnmetExpectation(req: IncomingMessage, res: ServerResponse): void {
  const error = new HeraldError('HERALD_ERR_EXPECTATION_FAILED', `Expect: ${String(req.headers.expect).slice(0, 100)} is not supported (only 100-continue)`);
  const body = JSON.stringify(error.toJSON());
  res.writeHead(error.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body);
}

/**
 * HTTP during shutdown. Once `closing()` is true a new request is refused
 * with 503 HERALD_ERR_SHUTTING_DOWN (Fastify's own 503 body is not Herald's
 * error shape) and `Retry-After: 1`, and every answer, those of requests
 * already in flight too, carries `Connection: close`: a keep-alive client's
 * connection then ends with its answer. Without it the connection idled on
 * until the keep-alive timeout (72 s) and held close() for the whole
 * shutdownGraceMs. Install it before any route, so that every route (and the
 * 404 handler) has the hooks.
 *
 * `Retry-After` (RFC 9110 §10.2.3: how long to wait before a follow-up
 * request) is also what marks this refusal as the door's, given before any
 * route ran: a route that was already running when the shutdown began may
 * itself answer 503 HERALD_ERR_SHUTTING_DOWN (POST /commands, when the
 * command runner has stopped under it), without the header. A client that
 * repeats only what no route saw checks the header, not only the code.
 */
export function installShutdownHandling(app: FastifyInstance, closing: () => boolean): void {
  app.addHook('onRequest', (req, reply, done) => {
    if (!closing()) return done();
    // One second: a restart under a service manager takes about that; the SDK waits at least
    // this long before asking again, and gives up once its retryForMs would be passed.
    reply.header('retry-after', '1');
    done(new HeraldError('HERALD_ERR_SHUTTING_DOWN'));
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    // HTTP/2 has no Connection header (and ends its sessions itself). An answer
    // given before the request's body arrived whole (401, 404 or 413, which
    // never read it) ends the connection too: kept alive, node would go on
    // waiting for the rest of that body, and a client that never sends it got
    // a 408 after the answer, which it would read as the answer to its next
    // request on the connection.
    // A request without a body is not yet `complete` either while a synchronous route answers
    // it (declaresBody): its connection goes on. And a Connection header a route set (the 426's
    // `upgrade`) must not keep alive a connection node would have ended (HTTP/1.0, `close` asked
    // for): node takes a Connection header without `close` as keep-alive.
    const raw = req.raw;
    if (raw.httpVersionMajor < 2 && (closing() || !reply.raw.shouldKeepAlive || (!raw.complete && declaresBody(raw)))) {
      const given = reply.getHeader('connection');
      if (given === undefined) reply.header('connection', 'close');
      else if (!/\bclose\b/i.test(String(given))) reply.header('connection', `${String(given)}, close`);
    }
    done(null, payload);
  });
}


/**
 * The schema's validator converts types (Fastify's Ajv option coerceTypes): the
 * conversions that keep a value's meaning are welcome (`"aid":"7"`, `"ttl":"60"`,
 * what a Perl backend's JSON often holds), but `null` and booleans became numbers
 * and strings that mean something else: `"ttl":null` (a backend's "no TTL given")
 * was `ttl 0`, stored nothing and reached no tab opened later; `"aid":true` was
 * admin 1, who got the notification (or, on /disconnect, lost every tab); a
 * `"message":null` or `true` was sent as the text "" or "true". So in a send's or
 * a disconnect's own fields they are refused, naming the field, before the schema
 * sees them, and so is a string in a number that spells no decimal number
 * (`"aid":"0x10"` was admin 16: schemas.ts, undecimalRefusal). Inside a
 * notification they are the backend's data and pass untouched.
 * Returns the refusal, or undefined.
 */
function convertedField(body: unknown, at: string, route: 'send' | 'disconnect'): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  const to = b.to;
  if (typeof to === 'object' && to !== null && !Array.isArray(to)) {
    // for…in, not Object.entries: this runs for every item of a batch (W2's hot path), and
    // Object.entries builds an array of pairs for each.
    for (const k in to) {
      const v = (to as Record<string, unknown>)[k];
      if (k === 'all') {
        if (v === null || typeof v === 'boolean') return `${at}/to/all must be "admins" or "users", not ${jsonType(v)}`;
      } else if (Array.isArray(v)) {
        // An array too: the validator takes `[true]` for its item, so `"aids":[[true]]` was admin 1.
        for (let i = 0; i < v.length; i++) {
          const id: unknown = v[i];
          if (id === null || typeof id === 'boolean' || Array.isArray(id)) return `${at}/to/${k}/${i} must be integer, not ${jsonType(id)}`;
          const refusal = undecimalRefusal(id, `${at}/to/${k}/${i}`, 'integer');
          if (refusal !== undefined) return refusal;
        }
      } else if (v === null || typeof v === 'boolean') {
        return `${at}/to/${k} must be integer, not ${jsonType(v)}`;
      } else {
        // `"aid":"0x10"` was admin 16 (undecimalRefusal).
        const refusal = undecimalRefusal(v, `${at}/to/${k}`, 'integer');
        if (refusal !== undefined) return refusal;
      }
    }
  }
  if (route === 'send' && 'message' in b) {
    // A number too: the validator made `"message":5` the text "5", where the API takes an object or a string.
    const m = b.message;
    if (m === null || typeof m === 'boolean' || typeof m === 'number' || Array.isArray(m)) return `${at}/message must be a notification object (with a TYPE) or a string, not ${jsonType(m)}`;
    const type = notificationTypeRefusal(m, `${at}/message`);
    if (type !== undefined) return type;
  }
  // The validator also takes a one-item array for its item (coerceTypes 'array'): `[null]` was ttl 0.
  return convertedScalar(b, at, route === 'send' ? SEND_SCALARS : DISCONNECT_SCALARS);
}

const SEND_SCALARS: readonly ScalarField[] = [['ttl', 'number'], ['idempotencyKey', 'string']];
const DISCONNECT_SCALARS: readonly ScalarField[] = [['reason', 'string']];

/** preValidation of POST /send: the body's own fields are not converted (convertedField). */
async function refuseConvertedSend(req: FastifyRequest): Promise<void> {
  const refusal = convertedField(req.body, 'body', 'send');
  if (refusal !== undefined) throw new HeraldError('HERALD_ERR_VALIDATION', refusal);
}

/** preValidation of POST /disconnect, as for /send. */
async function refuseConvertedDisconnect(req: FastifyRequest): Promise<void> {
  const refusal = convertedField(req.body, 'body', 'disconnect');
  if (refusal !== undefined) throw new HeraldError('HERALD_ERR_VALIDATION', refusal);
}

/** preValidation of POST /send/batch: every item's fields, as for /send. */
async function refuseConvertedInBatch(req: FastifyRequest): Promise<void> {
  const body = req.body as { messages?: unknown; answer?: unknown } | null;
  if (typeof body !== 'object' || body === null) return;
  if (body.answer === null || typeof body.answer === 'boolean') {
    throw new HeraldError('HERALD_ERR_VALIDATION', `body/answer must be "full" or "summary", not ${jsonType(body.answer)}`);
  }
  if (!Array.isArray(body.messages)) return;
  for (let i = 0; i < body.messages.length; i++) {
    const refusal = convertedField(body.messages[i], `body/messages/${i}`, 'send');
    if (refusal !== undefined) throw new HeraldError('HERALD_ERR_VALIDATION', refusal);
  }
}

/**
 * People a /send/batch may name in all, counting each item's `aids`/`uids`
 * list in full and a broadcast as one: as many as one /send's list may hold.
 * The item limit alone let a 1 MB batch of 16 lists name 160,000 people, and
 * storing a notification for each held the event loop (every tab's sends, every
 * other request) for 0.9–1.3 s a request on the SQLite store.
 */
const MAX_BATCH_RECIPIENTS = 10_000;

/**
 * Broadcasts a /send/batch may hold. A broadcast counts as one recipient above,
 * because what it costs (a write to every tab of a kind) depends on who is online,
 * and a request's acceptance must not: but a batch of 10,000 broadcasts to 200
 * tabs held the event loop for 5.1 s (2 million writes), and with 10,000 tabs it
 * would be minutes. Ten broadcasts to 10,000 tabs are about as many writes as
 * 10,000 people named one by one.
 */
const MAX_BATCH_BROADCASTS = 10;

function refuseTooManyRecipients(messages: readonly SendBody[]): void {
  let named = 0;
  let broadcasts = 0;
  for (const m of messages) {
    named += m.to.aids?.length ?? m.to.uids?.length ?? 1;
    if (m.to.all !== undefined) broadcasts++;
  }
  if (named > MAX_BATCH_RECIPIENTS) {
    throw new HeraldError('HERALD_ERR_VALIDATION', `body/messages name ${named} recipients in all; a batch may name at most ${MAX_BATCH_RECIPIENTS} (split it into several requests)`);
  }
  if (broadcasts > MAX_BATCH_BROADCASTS) {
    throw new HeraldError('HERALD_ERR_VALIDATION', `body/messages hold ${broadcasts} broadcasts; a batch may hold at most ${MAX_BATCH_BROADCASTS} (send the rest in other requests)`);
  }
}

function recipients(to: Recipient): Principal[] | { all: PrincipalKind } {
  if (to.aid !== undefined) return [{ kind: 'admin', id: to.aid }];
  if (to.uid !== undefined) return [{ kind: 'user', id: to.uid }];
  if (to.aids !== undefined) return [...new Set(to.aids)].map((id) => ({ kind: 'admin' as const, id }));
  if (to.uids !== undefined) return [...new Set(to.uids)].map((id) => ({ kind: 'user' as const, id }));
  return { all: to.all === 'users' ? 'user' : 'admin' };
}

function resultJson(p: Principal, r: SendResult) {
  return {
    kind: p.kind, id: p.id, delivered: r.delivered, queued: r.queued, duplicate: r.duplicate, dropped: r.dropped,
    ...(r.id === undefined ? {} : { messageId: r.id, seq: r.seq, epoch: r.epoch }),
  };
}

/** One item of a batch: a broadcast (its index in the Notifier's batch) or sends to people (their slice of it). */
type BatchItem = { broadcast: number } | { to: Principal[]; first: number };
type Outcome = { delivered: number; queued: boolean; duplicate: boolean; dropped: number };

/**
 * A batch's totals (`"answer":"summary"`): tabs reached, items stored,
 * duplicates, notifications dropped by stream caps. Counted straight from
 * the outcomes, without building the per-item answers.
 */
function summarise(items: readonly BatchItem[], sent: readonly Outcome[]) {
  const totals = { items: items.length, delivered: 0, queued: 0, duplicates: 0, dropped: 0 };
  const add = (r: Outcome): boolean => {
    totals.delivered += r.delivered;
    if (r.duplicate) totals.duplicates++;
    totals.dropped += r.dropped;
    return r.queued;
  };
  for (const item of items) {
    let queued = false;
    if ('broadcast' in item) queued = add(sent[item.broadcast]!);
    else for (let i = item.first; i < item.first + item.to.length; i++) queued = add(sent[i]!) || queued;
    if (queued) totals.queued++;
  }
  return totals;
}

/** POST /tokens' own numbers: refused as null, booleans or a one-item array of them (`"id":true` was admin 1). */
const TOKEN_SCALARS: readonly ScalarField[] = [['id', 'integer'], ['ttl', 'number']];

const TokenReply = Type.Object({ token: Type.String(), expiresAt: Type.Integer({ description: 'Epoch ms: when the token stops being accepted.' }) }, { description: 'A browser token, for /ws/admin or /ws/user?token=…' });

const TOKENS_NOT_ACCEPTED = errorAnswer('HERALD_ERR_CONFLICT: authResolver is sql or http, which admit tabs by the panel\'s sessions and never by a token: none is minted.');

const MISSING_MESSAGE = missingAnswer('message', 'HERALD_ERR_NOT_FOUND with details {"resource":"message"}: no such message (or it expired and was pruned).');

const LEGACY_ANSWERS = {
  200: Type.Unknown({ description: 'The old daemon\'s answer: {"TYPE":"PONG"}, {"TYPE":"RESULT",…}, 0, 1, or {"TYPE":"ERROR","ERROR":…} (a refusal of the request itself is one of these, not an HTTP error).' }),
  204: Type.Null({ description: 'A request marked "SILENT":1: no answer.' }),
};

/** The `/api/v1` routes (docs/http-api.md). Every one needs the bearer API token but openapi.json, registered beside them. */
export async function registerHttpApi(app: FastifyInstance, ctx: HttpApiContext): Promise<void> {
  const expected = Buffer.from(ctx.apiToken);

  await app.register(async (api) => {
    // Every route in here. GET /api/v1/openapi.json is registered outside this plugin (on the
    // app, after it) and takes no token: the hook never runs for it.
    api.addHook('onRequest', async (req) => {
      if (!bearerMatches(req.headers.authorization, expected)) {
        throw new HeraldError('HERALD_ERR_UNAUTHORIZED', 'missing or wrong API token (Authorization: Bearer …)');
      }
    });
    // A path's or a query's number must be written in decimal (schemas.ts, undecimalRefusal); a body's own
    // numbers are checked by each route's preValidation, with its other fields.
    api.addHook('preValidation', refuseUndecimalParts);

    // What each route answers is in its config.answers, for openapi.json only (schemas.ts, RouteAnswers).
    api.get('/ping', {
      schema: { summary: 'Is Herald up', response: { 200: Type.Object({ ok: Type.Boolean(), version: Type.String() }, { description: 'Herald is up, and its version.' }) } },
      config: { answers: routeAnswers({}) },
    }, async () => ({ ok: true, version: ctx.version }));

    api.get('/status', { schema: { summary: 'Server status' }, config: { answers: routeAnswers({ 200: StatusReply }) } }, async () => ctx.status());

    api.get('/online', {
      schema: { summary: 'Ids of people online', querystring: Type.Object({ kind: Type.Optional(KindParam) }) },
      config: { answers: routeAnswers({ 200: Type.Object({ kind: KindParam, ids: Type.Array(Type.Integer()) }, { description: 'The ids of the people of that kind with a tab open.' }) }) },
    }, async (req) => {
      const kind = (req.query as { kind?: PrincipalKind }).kind ?? 'admin';
      return { kind, ids: await ctx.notifier.online(kind) };
    });

    api.get('/online/:kind/:id', {
      schema: { summary: 'Is this person online, with how many tabs', params: Type.Object({ kind: KindParam, id: PersonId }) },
      config: { answers: routeAnswers({ 200: Type.Object({ kind: KindParam, id: Type.Integer(), online: Type.Boolean(), tabs: Type.Integer({ minimum: 0 }) }, { description: 'Whether the person has a tab open, and how many.' }) }) },
    }, async (req) => {
      const { kind, id } = req.params as { kind: PrincipalKind; id: number };
      const tabs = await ctx.notifier.tabs({ kind, id });
      return { kind, id, online: tabs > 0, tabs };
    });

    /** The options and recipients of one /send body. */
    function parseSend(body: SendBody) {
      const options: SendOptions = {};
      if (body.ttl !== undefined) options.ttlMs = ttlMsFromSeconds(body.ttl);
      if (body.idempotencyKey !== undefined) options.idempotencyKey = body.idempotencyKey;
      return { options, payload: body.message as NotificationPayload, to: recipients(body.to) };
    }

    function broadcastAnswer(r: SendResult) {
      return {
        delivered: r.delivered, queued: r.queued, duplicate: r.duplicate, dropped: r.dropped,
        ...(r.id === undefined ? {} : { messageId: r.id, seq: r.seq, epoch: r.epoch }),
      };
    }

    function peopleAnswer(to: readonly Principal[], results: readonly SendResult[]) {
      let delivered = 0;
      let queued = false;
      const each: Array<ReturnType<typeof resultJson>> = new Array(to.length);
      for (let i = 0; i < to.length; i++) {
        delivered += results[i]!.delivered;
        queued ||= results[i]!.queued;
        each[i] = resultJson(to[i]!, results[i]!);
      }
      return { delivered, queued, results: each };
    }

    api.post('/send', {
      schema: { summary: 'Send a notification', body: SendBody },
      config: { answers: routeAnswers({ 200: SendReply }, { body: true }) },
      preValidation: refuseConvertedSend,
    }, async (req) => {
      const { to, payload, options } = parseSend(req.body as SendBody);
      if ('all' in to) return broadcastAnswer(await ctx.notifier.broadcast(to.all, payload, options));
      return peopleAnswer(to, await ctx.notifier.sendMany(to, payload, options));
    });

    // Many different notifications in one request: what a backend with a
    // queue of events does. Every item goes to the Notifier as one batch (one
    // store transaction, one wait), broadcasts included: all of it is stored
    // or none of it is, so a batch that failed can be sent again as it was.
    // Notifications to one person keep their order.
    api.post('/send/batch', {
      schema: { summary: 'Send many notifications in one request; one answer per item, in order', body: SendBatchBody },
      config: { answers: routeAnswers({ 200: SendBatchReply }, { body: true }) },
      preValidation: refuseConvertedInBatch,
    }, async (req) => {
      const { messages, answer } = req.body as SendBatchBody;
      refuseTooManyRecipients(messages);
      const sends: BatchSend[] = [];
      const items = messages.map((body): BatchItem => {
        const { to, payload, options } = parseSend(body);
        const first = sends.length;
        if ('all' in to) {
          sends.push({ to, payload, options });
          return { broadcast: first };
        }
        for (const p of to) sends.push({ to: p, payload, options });
        return { to, first };
      });
      const sent = await ctx.notifier.sendBatch(sends);
      if (answer === 'summary') return summarise(items, sent);
      return {
        results: items.map((item) => (
          'broadcast' in item ? broadcastAnswer(sent[item.broadcast]!) : peopleAnswer(item.to, sent.slice(item.first, item.first + item.to.length))
        )),
      };
    });

    api.post('/disconnect', {
      schema: { summary: 'Close every tab of a person, telling them why', body: DisconnectBody },
      config: { answers: routeAnswers({ 200: Type.Object({ tabs: Type.Integer({ minimum: 0 }) }, { description: 'The tabs that were open, now closed.' }) }, { body: true }) },
      preValidation: refuseConvertedDisconnect,
    }, async (req) => {
      const body = req.body as DisconnectBody;
      const p: Principal = body.to.aid !== undefined ? { kind: 'admin', id: body.to.aid } : { kind: 'user', id: body.to.uid! };
      return { tabs: await ctx.notifier.disconnect(p, body.reason ?? 'disconnected by the server') };
    });

    // maxLength: what the router takes of a path's part (maxParamLength, 100 characters); a longer one
    // is refused before any route with 400 (answerFrameworkError), and no id Herald hands out comes near.
    api.get('/messages/:id', {
      schema: { summary: 'Delivery status of a stored notification', params: Type.Object({ id: Type.String({ maxLength: 100 }) }) },
      config: { answers: routeAnswers({ 200: MessageStatusReply }, { errors: { 404: MISSING_MESSAGE } }) },
    }, async (req) => {
      const status = await ctx.notifier.status((req.params as { id: string }).id);
      // `details` tells this 404 from a route's that does not exist (the SDK's messageStatus reads it).
      if (!status) throw new HeraldError('HERALD_ERR_NOT_FOUND', 'no such message (or it expired and was pruned)', { resource: 'message' });
      return status;
    });

    api.post('/tokens', {
      schema: { summary: 'Mint a browser token', body: TokenBody },
      config: { answers: routeAnswers({ 200: TokenReply }, { body: true, errors: { 409: TOKENS_NOT_ACCEPTED } }) },
      preValidation: refuseConverted(TOKEN_SCALARS),
    }, async (req, reply) => {
      // With the sql or http resolver a handshake is admitted by the panel's session alone: a token
      // signed here was answered 200 and then refused (401) by every handshake, as if it had expired.
      if (ctx.authResolver !== 'token') {
        throw new HeraldError('HERALD_ERR_CONFLICT', `this server admits tabs by the panel's sessions (authResolver ${ctx.authResolver}), not by tokens: a token would be refused, so none is minted`);
      }
      const body = req.body as TokenBody;
      // A credential: no cache keeps it (as RFC 6749 §5.1 asks of token answers).
      reply.header('cache-control', 'no-store');
      return ctx.mintToken({ kind: body.kind, id: body.id }, body.ttl === undefined ? undefined : body.ttl * 1000);
    });

    if (ctx.commands) registerCommandRoutes(api, { commands: ctx.commands });

    // The old daemon's requests over HTTP (what the SDK's jsonRequest uses): the
    // same handler as the TCP door, so the two cannot drift. The bearer token
    // already authenticated the caller, so no legacy TOKEN is required.
    // The audit's peer: `http:127.0.0.1`, and an IPv6 caller in brackets (`http:[::1]`, not `http:::1`).
    api.post('/legacy', {
      schema: { summary: 'A legacy-protocol request (docs/legacy.md), answered as the old daemon would; 204 for a SILENT one done, its error for one refused or failed', body: Type.Unknown() },
      config: { answers: routeAnswers(LEGACY_ANSWERS, { body: true }) },
    }, async (req, reply) => {
      const answer = await handleLegacyRequest(req.body, {
        notifier: ctx.notifier, commands: ctx.commands, token: '', requireToken: false, peer: `http:${req.ip.includes(':') ? `[${req.ip}]` : req.ip}`, logger: req.log,
        answerSilentErrors: true,
      });
      if (answer === undefined) return reply.status(204).send();
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(answer));
    });
  }, { prefix: '/api/v1' });
}
