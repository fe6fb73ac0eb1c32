/**
 * The composition root: options in, every part chosen, built and wired here
 * and nowhere else; listen(); close().
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import { CloseCode, CloseReason } from '../protocol/close-codes.js';
import type { Principal, PrincipalKind } from '../protocol/principal.js';
import { principalKey } from '../protocol/principal.js';
import {
  answerClientError, answerConnect, answerFrameworkError, answerUnmetExpectation, continueAfterChecks, declaresBody, installErrorHandling, installJsonBodyParser,
  installShutdownHandling, registerHttpApi, requestIds,
} from './api/http-api.js';
import { limitPipelining, pipelineRefusal } from './api/pipelining.js';
import { LegacyServer } from './api/legacy-server.js';
import { finiteNumbers } from './api/schemas.js';
import { sharedCompilers } from './api/compilers.js';
import { asOpenApi30, documentAnswers } from './api/openapi.js';
import { OriginPolicy, defaultAllowedOrigins } from './auth/origin-policy.js';
import type { CredentialResolver, Resolution, SessionResolver } from './auth/session-resolver.js';
import { mintToken, tokenExpiry } from './auth/token-resolver.js';
import { createSessionResolver, createSessionWatcher, type SessionWatcher } from './auth/index.js';
import type { Broker, Envelope } from './broker/broker.js';
import { LocalBroker } from './broker/local-broker.js';
import type { CommandService } from './commands/command-service.js';
import { CommandRunner } from './commands/runner.js';
import { createCommandAudit } from './commands/audit-sqlite.js';
import { Gateway } from './gateway/gateway.js';
import { ConnectionCap, connectionLimits, openFileLimit, tabsWithin } from './file-limit.js';
import { tuneHeap, tunePretenuring, tuneScavenger } from './heap-tuning.js';
import { Hub } from './hub.js';
import { createLogger } from './logger.js';
import { Notifier } from './notifier.js';
import { withOptionSource, type HeraldOptions } from './options.js';
import { createStore } from './store/index.js';
import type { MessageStore } from './store/message-store.js';
import { VERSION } from './version.js';
import { HeraldError } from './errors.js';
import { registerWebRoutes } from './web/routes.js';
import { probeAnswer, type AdmissionDeps } from './web/admission.js';

export interface HeraldDeps {
  logger?: Logger;
  /**
   * A message store to use instead of the one `options.store` names (a store
   * of your own, or a test's). Herald closes it on close().
   */
  store?: MessageStore;
}

export interface HeraldUrls {
  /** http://HOST:PORT of the public listener. */
  http: string;
  /** ws://HOST:PORT (append /ws/admin or /ws/user). */
  ws: string;
  legacy?: { host: string; port: number };
  adminPort?: number;
  userPort?: number;
}

export class Herald {
  readonly options: HeraldOptions;
  readonly logger: Logger;
  readonly hub: Hub;
  readonly store: MessageStore;
  readonly broker: Broker;
  readonly notifier: Notifier;
  readonly resolver: SessionResolver;
  /** Re-checks live sessions (auth/session-watcher.ts); undefined when sessionRecheckMs is 0. */
  readonly watcher: SessionWatcher | undefined;
  readonly gateway: Gateway;
  readonly commands: CommandService | undefined;
  readonly app: FastifyInstance;
  /** The old daemon's TCP control protocol (absent when legacyEnabled is false). */
  readonly legacy: LegacyServer | undefined;
  readonly #compatServers: Array<{ kind: PrincipalKind; port: number; server: HttpServer }> = [];
  /** What the browser endpoints check a handshake on: the probe on the old daemon's ports asks it too. */
  readonly #admission: AdmissionDeps;
  /**
   * The HTTP listeners' open connections (the main port's and the old daemon's ports'), tabs
   * included, at most what the open-file limit leaves them (file-limit.ts; no limit where it
   * cannot be read); #closeHttp ends those that sent nothing. One tracker for both: each
   * 'connection' listener and Set costs every connect.
   */
  #httpCap!: ConnectionCap;
  /** When it started, on the monotonic clock: the uptime (the wall clock may step back, and it went negative). */
  readonly #startedAt = performance.now();
  /** The session resolver's failed look-ups, for the status. */
  readonly #resolverFailures: ResolverFailures;
  /** Read by the HTTP hooks (installShutdownHandling): true from the start of close(). */
  readonly #lifecycle: { closing: boolean };
  /** The next request id, for every HTTP listener (requestIds): Fastify's, and the old daemon's ports'. */
  readonly #requestId: () => string;
  #urls: HeraldUrls | undefined;
  /** The latest listen(), which close() lets finish before it closes what it opened. */
  #listening: Promise<unknown> | undefined;
  #closed: Promise<void> | undefined;

  private constructor(parts: {
    options: HeraldOptions; logger: Logger; hub: Hub; store: MessageStore; broker: Broker; notifier: Notifier;
    resolver: SessionResolver; watcher: SessionWatcher | undefined; gateway: Gateway; commands: CommandService | undefined; app: FastifyInstance;
    legacy: LegacyServer | undefined; lifecycle: { closing: boolean }; admission: AdmissionDeps; resolverFailures: ResolverFailures;
    requestId: () => string;
  }) {
    this.options = parts.options;
    this.logger = parts.logger;
    this.hub = parts.hub;
    this.store = parts.store;
    this.broker = parts.broker;
    this.notifier = parts.notifier;
    this.resolver = parts.resolver;
    this.watcher = parts.watcher;
    this.gateway = parts.gateway;
    this.commands = parts.commands;
    this.app = parts.app;
    this.legacy = parts.legacy;
    this.#lifecycle = parts.lifecycle;
    this.#admission = parts.admission;
    this.#resolverFailures = parts.resolverFailures;
    this.#requestId = parts.requestId;
  }

  static async create(options: HeraldOptions, deps: HeraldDeps = {}): Promise<Herald> {
    try {
      return await Herald.#create(options, deps);
    } catch (err) {
      // A part that refuses a value names its option; where the value came from is known here.
      throw withOptionSource(err, options);
    }
  }

  static async #create(options: HeraldOptions, deps: HeraldDeps): Promise<Herald> {
    if (options.secret === '' || options.apiToken === '') {
      throw new TypeError('createHerald: options.secret and options.apiToken must be set (call ensureSecrets first)');
    }
    const logger = deps.logger ?? createLogger(options);
    tuneHeap(options.heapGrowingPercent);
    tuneScavenger(options.parallelScavenge);
    tunePretenuring(options.allocationSitePretenuring);
    // The origins first: a bad allowedOrigins is refused before anything is opened.
    const origins = originPolicy(options);
    const store: MessageStore = deps.store ?? createStore(options, logger.child({ part: 'store' }));
    // What the build has opened so far, closed again (newest first) if a later step fails:
    // the store's file lock, the resolver's connections, the command audit file, the
    // runner's exit hook, the gateway's timer. Else a retry in this process was refused
    // (the lock) and every failed start leaked open files and listeners.
    const opened: Array<() => unknown> = [() => store.close()];
    try {
      return await Herald.#build(options, logger, store, origins, opened);
    } catch (err) {
      for (const close of opened.reverse()) {
        try {
          await close();
        } catch {
          // Closing what a failed start opened: the start's own error is the one to report.
        }
      }
      throw err;
    }
  }

  static async #build(options: HeraldOptions, logger: Logger, store: MessageStore, origins: OriginPolicy, opened: Array<() => unknown>): Promise<Herald> {
    const hub = new Hub();
    const broker: Broker = new LocalBroker(hub);
    hub.onPresenceChange((p, n) => broker.setLocalPresence(p, n));
    const notifier = new Notifier({
      store, broker, logger: logger.child({ part: 'notifier' }), defaultTtlMs: options.defaultTtlMs, maxTtlMs: options.maxTtlMs,
      maxSendBytes: options.maxSendBytes,
    });
    const resolverFailures = new ResolverFailures();
    // Every look-up of the database or the panel (the tabs' handshakes, the old ports' probes, the
    // re-checks) goes through the watch; cached answers and handshakes without a credential do not.
    const resolver: SessionResolver = createSessionResolver(options, logger, (backend) => resolverFailures.watch(backend));
    opened.push(() => resolver.close());
    const watcher = createSessionWatcher(options, hub, resolver, logger);
    const commandAudit = createCommandAudit(options);
    // Until the runner exists, the audit file is closed on its own; then the runner's close() closes it.
    const closeAudit = () => commandAudit?.close();
    opened.push(closeAudit);
    const commands: CommandService = new CommandRunner({ notifier, logger: logger.child({ part: 'commands' }), options, audit: commandAudit });
    opened[opened.indexOf(closeAudit)] = () => commands.close();
    const gateway = new Gateway({
      hub, store, resolver, origins, commands, logger: logger.child({ part: 'gateway' }),
      limits: {
        maxFrameBytes: options.maxFrameBytes, heartbeatMs: options.heartbeatMs, maxBufferedBytes: options.maxBufferedBytes, replayBatch: options.replayBatch,
        closeTimeoutMs: options.closeTimeoutMs,
        maxFramesPer10s: 1000, maxErrorsPer10s: 50, broadcastAcksPerSecond: 50,
        acksPerSecond: options.acksPerSecond,
      },
      maxTabsPerPerson: options.maxTabsPerPerson,
      maxTabs: tabLimit(options, logger),
    });
    opened.push(() => gateway.close(CloseReason.SHUTDOWN, 0));
    await broker.start((envelope) => deliverLocally(hub, envelope));
    opened.push(() => broker.close());

    const requestId = requestIds();
    const app: FastifyInstance = Fastify({
      loggerInstance: logger.child({ part: 'http' }) as FastifyBaseLogger,
      bodyLimit: options.maxBodyBytes,
      // A field a body's schema does not know is refused (400 HERALD_ERR_VALIDATION naming it),
      // not dropped: Fastify's default (removeAdditional) accepted `{"tll":5}` and ignored it.
      // `verbose`: a refusal carries the value and its schema, so that "exactly one of" can name
      // what the object held (schemaRefusal); it costs nothing on a valid request.
      // `x-finite`: every number a request carries is finite (schemas.ts, finiteNumbers).
      ajv: { customOptions: { removeAdditional: false, verbose: true }, plugins: [finiteNumbers] },
      // The routes' schemas compiled once for every Herald in the process (compilers.ts).
      schemaController: { compilersFactory: sharedCompilers },
      // Per-request lines would log every send; errors are still logged by the error handler.
      logController: new LogController({ disableRequestLogging: true }),
      // No child logger per request (a pino child is built for every send
      // otherwise, for lines that are never written): the error handler, the
      // one place that logs a request, names its id itself.
      childLoggerFactory: (parent) => parent,
      // Herald refuses requests during shutdown itself, in its own error shape (installShutdownHandling).
      return503OnClosing: false,
      // Fastify ends no connection itself here (node's close() ends the idle ones: #closeHttp holds that back a moment).
      forceCloseConnections: 'idle',
      // What is refused before a route (a bad URL, a request node cannot parse, one that timed out) is answered in Herald's error shape too.
      frameworkErrors: answerFrameworkError,
      clientErrorHandler: answerClientError,
      // Fastify's own ids, counted once for the old daemon's ports too (requestIds).
      genReqId: requestId,
      // Fastify turns off node's own limit (300 s) unless told one. node
      // reads it when the server is built (set later, it timed out a
      // trickled body no more), and checks it on a timer (30 s by default):
      // often enough here for the limit to mean what it says.
      requestTimeout: options.requestTimeoutMs,
      http: {
        // An HTTP/1.1 request without a Host header is refused in Herald's error shape (http-api.ts), not node's bare 400.
        requireHostHeader: false,
        requestTimeout: options.requestTimeoutMs,
        // The headers too get requestTimeoutMs, not node's own 60 s (its default, the lesser of
        // that and requestTimeout, cut a longer requestTimeoutMs short): node wants it no more
        // than requestTimeout, and 0 turns both off.
        headersTimeout: options.requestTimeoutMs,
        connectionsCheckingInterval: connectionsCheckingInterval(options.requestTimeoutMs),
      },
    });
    opened.push(() => app.close());
    limitPipelining(app.server);
    // A CONNECT, dropped unanswered by node without a listener: a 404 as any route Herald does not serve.
    app.server.on('connect', answerConnect(app.log, requestId));
    app.server.on('checkExpectation', answerUnmetExpectation);
    continueAfterChecks(app.server);
    installErrorHandling(app);
    installJsonBodyParser(app);
    const lifecycle = { closing: false };
    installShutdownHandling(app, () => lifecycle.closing);
    await app.register(swagger, {
      openapi: {
        info: { title: 'Herald HTTP API', version: VERSION, description: 'Real-time notifications for admin panels (docs/http-api.md).' },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: [{ bearer: [] }],
      },
      // Each route's answers (its config.answers) go into the document only, never into the
      // serialiser; the schemas are written as OpenAPI 3.0 has them (openapi.ts).
      transform: documentAnswers,
      transformObject: (document) => asOpenApi30('openapiObject' in document ? document.openapiObject : document.swaggerObject),
    });
    // The descriptors the tabs leave, shared out between the legacy door and the HTTP listeners,
    // with a reserve kept for the store, the audit file and the commands (file-limit.ts).
    const caps = connectionLimits(options, gateway.maxTabs, logger);
    const legacy = options.legacyEnabled
      ? new LegacyServer({ host: options.legacyHost, port: options.legacyPort, notifier, commands, options, logger: logger.child({ part: 'legacy' }), maxConnections: caps?.legacy })
      : undefined;
    // The browser library's probe after a refused handshake asks no new look-up while they fail (web/admission.ts).
    const admission: AdmissionDeps = { resolver, origins, spareLookUps: (run) => resolverFailures.spare(run) };
    const herald = new Herald({ options, logger, hub, store, broker, notifier, resolver, watcher, gateway, commands, app, legacy, lifecycle, admission, resolverFailures, requestId });
    herald.#httpCap = new ConnectionCap(caps?.http ?? Infinity, logger.child({ part: 'http' }));
    await registerHttpApi(app, {
      notifier, commands, apiToken: options.apiToken, version: VERSION, authResolver: options.authResolver,
      mintToken: (p, ttl) => herald.mintToken(p, ttl),
      status: () => herald.status(),
    });
    // Serialised once, on the first request (the document is whole once every route is in), and
    // the same bytes sent to each: serialised for each request, 1,300 pipelined in one read of
    // 60 KB took 0.9 s of the event loop and held 150 KB of string each (pipelining.ts).
    let openApiDocument: Buffer | undefined;
    app.get('/api/v1/openapi.json', { schema: { hide: true } }, async (_req, reply) => {
      openApiDocument ??= Buffer.from(JSON.stringify(app.swagger()));
      return reply.type('application/json; charset=utf-8').send(openApiDocument);
    });
    // A monitor's question: can this Herald do its work? Not while its store can store
    // nothing more, nor while its writes fail (the disk full): every stored send is refused
    // with 503 then, and a SILENT legacy send is dropped with only a log line. The file's
    // path and the cause are in the log, not in this unauthenticated answer.
    // `herald status` gives the same verdict (Herald.health), with the cause.
    app.get('/healthz', { schema: { hide: true } }, async (_req, reply) => {
      const problem = storeProblem(store);
      if (problem === undefined) return { ok: true };
      return reply.code(503).send({ ok: false, ...new HeraldError('HERALD_ERR_UNAVAILABLE', `${problem.why}: see the server log`).toJSON() });
    });
    await registerWebRoutes(app, {
      options,
      mintToken: (kind, id, ttlMs) => herald.mintToken({ kind, id }, ttlMs),
      admission,
    });
    gateway.attach(app.server);
    herald.#httpCap.watch(app.server);
    return herald;
  }

  async mintToken(principal: Principal, ttlMs: number = this.options.tokenTtlMs): Promise<{ token: string; expiresAt: number }> {
    const now = Date.now();
    return { token: await mintToken(this.options.secret, principal, ttlMs, now), expiresAt: tokenExpiry(ttlMs, now) * 1000 };
  }

  /**
   * Can this Herald do its work? The verdict of `/healthz` (its store only: a
   * resolver that fails is in the status, not here), with the cause, which
   * `/healthz` leaves to the log: `problem` is absent while it is healthy.
   */
  health(): { healthy: boolean; problem?: string } {
    const problem = storeProblem(this.store);
    return problem === undefined ? { healthy: true } : { healthy: false, problem: `${problem.why}: ${problem.cause}` };
  }

  status(): Record<string, unknown> {
    return {
      version: VERSION,
      // First: what an operator (and `herald status`, which exits non-zero then) reads before the counts.
      ...this.health(),
      uptimeMs: Math.round(performance.now() - this.#startedAt),
      // Counts the Hub keeps: copying every tab and sorting every id held the event loop 22 ms a call at 100,000 tabs.
      connections: { admin: this.hub.tabCount('admin'), user: this.hub.tabCount('user') },
      maxTabs: this.gateway.maxTabs,
      online: { admin: this.hub.onlineCount('admin'), user: this.hub.onlineCount('user') },
      store: this.options.store,
      storeCounts: this.store.counts(),
      broker: this.broker.name,
      resolver: this.resolver.name,
      // null until a look-up fails: then the last failure, and whether look-ups fail still.
      resolverFailures: this.#resolverFailures.report(),
      commands: this.commands?.stats?.() ?? { enabled: this.commands !== undefined },
      memory: { rss: residentBytes() },
    };
  }

  get urls(): HeraldUrls {
    if (!this.#urls) throw new Error('Herald is not listening yet');
    return this.#urls;
  }

  /**
   * Opens the listeners: HTTP (API, browser endpoint), then the old daemon's
   * ports when configured, then the legacy TCP door. When one fails (a port in
   * use) the ones before it are still open: call close() to release them and
   * the store. Once close() has been called it rejects (HERALD_ERR_SHUTTING_DOWN)
   * and opens nothing; a close() called while it runs waits for it, then closes
   * what it opened.
   */
  listen(): Promise<HeraldUrls> {
    // Opened after close() had run, the listeners, the legacy door and the session watcher were
    // never closed: the process did not exit, the ports stayed taken, answering 503 for ever.
    if (this.#closed !== undefined) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'listen() after close(): this Herald is closed; create another'));
    const listening = this.#listen();
    this.#listening = listening;
    return listening;
  }

  async #listen(): Promise<HeraldUrls> {
    const o = this.options;
    await this.app.listen({ host: o.host, port: o.port, backlog: LISTEN_BACKLOG });
    const addr = this.app.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    const urls: HeraldUrls = { http: `http://${host}:${addr.port}`, ws: `ws://${host}:${addr.port}` };
    for (const [kind, port] of [['admin', o.adminPort], ['user', o.userPort]] as const) {
      if (port === 0) continue;
      // The main server's limits: node's own defaults here let a client trickle its headers for
      // 60 s (checked every 30 s) whatever requestTimeoutMs said, and idle for 5 s, not 72.
      const main = this.app.server;
      const limits = {
        requestTimeout: main.requestTimeout, headersTimeout: main.headersTimeout, keepAliveTimeout: main.keepAliveTimeout,
        connectionsCheckingInterval: connectionsCheckingInterval(o.requestTimeoutMs),
      };
      // A plain GET or POST is the browser library's probe (web/admission.ts), on any path as
      // the upgrade is: answered 426 always, a refused credential read as "retry", and the
      // tab tried again for ever. Nothing else is served here.
      const server = createServer(limits, (req, res) => {
        const answer = (error: HeraldError, headers: Record<string, string>): void => {
          const body = JSON.stringify(error.toJSON());
          // The probe's body is never read: the connection ends with the answer (http-api.ts, onSend),
          // as it does when the client asked for that. A 426's `Connection: upgrade` says `close` too
          // then: node takes a Connection header without it as keep-alive.
          const { connection, ...rest } = headers;
          const ends = !res.shouldKeepAlive || (!req.complete && declaresBody(req));
          const says = ends ? (connection === undefined ? 'close' : `${connection}, close`) : connection;
          res.writeHead(error.status, {
            ...rest, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)), 'X-Request-Id': this.#requestId(),
            ...(says === undefined ? {} : { Connection: says }),
          });
          res.end(body);
        };
        // Past the bound of its connection's pipeline: not run (pipelining.ts).
        const pipelined = pipelineRefusal(req);
        if (pipelined !== undefined) {
          answer(pipelined, {});
          return;
        }
        if (req.method !== 'GET' && req.method !== 'POST') {
          answer(new HeraldError('HERALD_ERR_UPGRADE_REQUIRED', 'this port only takes WebSocket upgrades'), { upgrade: 'websocket', connection: 'upgrade' });
          return;
        }
        probeAnswer(this.#admission, kind, req).then(({ error, headers }) => answer(error, headers), () => {
          answer(new HeraldError('HERALD_ERR_UNAVAILABLE', 'cannot check credentials now, try again later'), {});
        });
      });
      // A request node cannot parse, or one with an Expect node would answer with an
      // empty 417, gets Herald's error shape here too, as on the main port.
      server.on('clientError', answerClientError);
      server.on('checkExpectation', answerUnmetExpectation);
      server.on('connect', answerConnect(this.app.log, this.#requestId));
      limitPipelining(server);
      // No body is read here, so no `100 Continue` is ever written: a client waiting for one gets the answer alone.
      continueAfterChecks(server);
      this.gateway.attach(server, kind);
      this.#httpCap.watch(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port, host: o.host, backlog: LISTEN_BACKLOG }, () => resolve());
      });
      this.#compatServers.push({ kind, port: (server.address() as AddressInfo).port, server });
      urls[kind === 'admin' ? 'adminPort' : 'userPort'] = (server.address() as AddressInfo).port;
    }
    if (this.legacy) urls.legacy = await this.legacy.listen();
    this.#urls = urls;
    this.watcher?.start();
    this.logger.info({ http: urls.http, legacy: urls.legacy, store: o.store, resolver: this.resolver.name, maxTabs: this.gateway.maxTabs }, 'Herald is listening');
    return urls;
  }

  /**
   * Graceful shutdown: refuse new work, tell every tab why and close it,
   * let requests in flight finish (up to shutdownGraceMs), release stores.
   * A step that fails is logged and the steps after it still run (the store
   * last: it commits the acks still waiting); close() then rejects with the
   * first failure. A listen() still running is let finish first, and what it
   * opened is closed with the rest.
   */
  close(reason: string = CloseReason.SHUTDOWN): Promise<void> {
    this.#closed ??= (async () => {
      this.logger.info({ reason }, 'Herald is shutting down');
      let failure: { error: unknown } | undefined;
      const step = async (name: string, run: () => unknown): Promise<void> => {
        try {
          await run();
        } catch (err) {
          this.logger.error({ err, step: name }, 'a shutdown step failed; the others go on');
          failure ??= { error: err };
        }
      };
      // The grace counts from now, not from when the HTTP server's turn comes (after the legacy
      // door and the tabs, up to 2 s each): a stuck request must not push the end of close()
      // past the CLI's own deadline (shutdownGraceMs + 5 s), which exits 1. On the monotonic
      // clock: a step back of the wall clock during the shutdown stretched the grace past it.
      const graceEnds = performance.now() + this.options.shutdownGraceMs;
      // New HTTP requests are refused from now on; answers close their connection.
      this.#lifecycle.closing = true;
      // A listen() still opening the listeners finishes first (failed or not): what it opens
      // after this point would otherwise be left open, nobody closing it.
      await this.#listening?.catch(() => undefined);
      // A front door first: legacy requests already received are answered, then its connections end.
      await step('legacy door', () => this.legacy?.close());
      // The tabs are told at once, and the re-check round's look-ups in flight are not waited
      // for (each up to sqlTimeoutMs or httpResolverTimeoutMs at a database or panel that
      // stopped answering): the watcher drops their answers, the resolver's close ends them.
      await Promise.all([
        step('session watcher', () => this.watcher?.stop()),
        step('tabs', () => this.gateway.close(reason, Math.min(2000, this.options.shutdownGraceMs))),
      ]);
      // Commands stop while the HTTP server closes, not after: a request in flight may be a
      // long poll waiting for a command to end (`herald run --wait`), and the HTTP server waits
      // for it, so stopping commands afterwards left them running for the whole grace period.
      // A program that ignores SIGTERM is killed when the grace ends, not after commandsKillGraceMs:
      // a longer kill grace ran past the CLI's deadline, and the run's record and its admin's
      // notification were never written.
      await Promise.all([
        step('HTTP server', () => this.#closeHttp(graceEnds)),
        step('commands', () => this.commands?.close(Math.max(0, graceEnds - performance.now()))),
      ]);
      // The connections the cap closed and the window did not log one by one: said before the
      // process ends, as the legacy door's and the handshakes' refusals are.
      this.#httpCap.flush();
      await step('broker', () => this.broker.close());
      // A database pool's close waits for its queries in flight (a re-check's, a handshake's),
      // each up to sqlTimeoutMs and more at one that stopped answering: waited for while the
      // grace lasts (or 1 s, for idle connections to say goodbye), not past it, so that the
      // store (last: it commits the acks) still closes before the CLI's deadline.
      const resolverClosed = step('session resolver', () => this.resolver.close());
      if (!(await withTimeout(resolverClosed, Math.max(RESOLVER_CLOSE_MIN_MS, graceEnds - performance.now())))) {
        this.logger.warn({ graceMs: this.options.shutdownGraceMs }, 'session look-ups still running after the shutdown grace: not waited for');
      }
      await step('store', () => this.store.close());
      this.notifier.close();
      if (failure) throw failure.error;
    })();
    return this.#closed;
  }

  /**
   * Stops the HTTP servers (the main port's and the old daemon's ports'):
   * requests in flight have until `graceEnds` to be answered (each answer
   * closes its connection). A connection still open after that (a request not
   * answered in time, a client trickling its headers) is destroyed, so that
   * close() ends and the stores are not closed under a server that still takes
   * requests. The old daemon's ports are waited for and ended as the main one
   * is: node checks requestTimeoutMs no more once a server is closed, and a
   * connection there with half a request outlived close() and was answered
   * after it.
   */
  async #closeHttp(graceEnds: number): Promise<void> {
    const servers = [this.app.server, ...this.#compatServers.map((c) => c.server)];
    // node's close() ends the idle keep-alive connections at once (closeIdleConnections): a
    // request already in one's buffer, not yet read, was reset (a POST then cannot tell whether
    // it was done) where the same request on a fresh connection is read and answered 503 (below).
    // They end after the same moment instead: a request read meanwhile is answered 503 with
    // Connection: close, and those still idle then are ended.
    const idleEnds = servers.map((server) => {
      const closeIdle = server.closeIdleConnections;
      server.closeIdleConnections = () => undefined;
      return () => {
        server.closeIdleConnections = closeIdle;
        server.closeIdleConnections();
      };
    });
    const closed = Promise.all([
      this.app.close().catch((err: unknown) => this.logger.error({ err }, 'closing the HTTP server failed')),
      // Called back once every connection has ended; with an error only when it was not listening.
      ...this.#compatServers.map((c) => new Promise<void>((resolve) => c.server.close(() => resolve()))),
    ]);
    // A connection that has sent nothing yet (a browser's preconnect, a port check, a client
    // stalled before its first byte) is not idle to node: closeIdleConnections() leaves it, and
    // close() waited the whole grace for it. It has no request to answer: it ends now. One that
    // sent part of a request, or is waiting for its answer, still has the grace; a tab (an
    // upgraded connection, which sent its handshake) is the Gateway's, closed before this.
    // After a moment, not at once: a request already in the kernel's buffer, not yet read, was
    // reset (a POST then cannot tell whether it was done); read now, it is answered 503.
    await new Promise((resolve) => setTimeout(resolve, SILENT_CONNECTION_WAIT_MS));
    for (const socket of this.#httpCap.sockets) if (socket.bytesRead === 0) socket.destroy();
    for (const end of idleEnds) end();
    if (await withTimeout(closed, Math.max(0, graceEnds - performance.now()))) return;
    this.logger.warn({ graceMs: this.options.shutdownGraceMs }, 'HTTP requests still open after the shutdown grace: closing their connections');
    for (const server of servers) server.closeAllConnections();
    await withTimeout(closed, 1000);
  }
}

/**
 * Why the store cannot do its work, or undefined while it can: `why` for
 * anyone (`/healthz` answers it unauthenticated), `cause` for the operator
 * (the file's path, the error: the status, behind the API token, and the log).
 */
function storeProblem(store: MessageStore): { why: string; cause: string } | undefined {
  if (store.failure !== undefined) return { why: 'the store can store nothing more', cause: store.failure };
  if (store.writeFailure !== undefined) return { why: 'the store\'s writes are failing (the disk full?)', cause: store.writeFailure };
  return undefined;
}

/** The status's `resolverFailures`: null until a look-up fails. Times are epoch ms. */
export interface ResolverFailureReport {
  /** The latest look-up failed: tabs are refused with 503 (and retry) until one answers again. */
  failing: boolean;
  /** The latest failure's reason, as the resolver gave it (the log has the details: a database's error code, a panel's status). */
  reason: string;
  /** The first failure of the latest run of failures (the outage going on, or the one that ended last). */
  since: number;
  /** The latest failure. */
  lastAt: number;
  /** Look-ups failed in that run. */
  count: number;
  /** Look-ups failed since the start. */
  total: number;
}

/**
 * The session resolver's failed look-ups ("unavailable": the database or the
 * panel down, a wrong database password), kept for the status. The resolver
 * logs them, bounded; but `herald status` showed a healthy server while every
 * tab was refused 503, and `/healthz` is about the store only (docs/deploy.md).
 */
class ResolverFailures {
  #total = 0;
  #last: { reason: string; at: number } | undefined;
  /** The latest run of failures; `ended` once a look-up answered after it. */
  #run: { since: number; count: number; ended: boolean } | undefined;
  /** True while spare() runs a probe's admission. */
  #sparing = false;

  /**
   * `resolver` (the backend under the cache: createSessionResolver), each
   * answer it gives seen here first. Only its answers say whether look-ups
   * work: a cached one, or a handshake refused for want of a credential,
   * said the outage was over while the database was still down.
   */
  watch(resolver: CredentialResolver): CredentialResolver {
    const seen = (r: Resolution): Resolution => {
      if (r.outcome === 'unavailable') this.#failed(r.reason);
      else if (this.#run) this.#run.ended = true;
      return r;
    };
    const threw = (err: unknown): never => {
      // Not the error's message: a database driver's may name the host and user of sqlUrl.
      const code = (err as { code?: unknown } | undefined)?.code;
      this.#failed(`the look-up threw${typeof code === 'string' ? ` (${code})` : ''}`);
      throw err;
    };
    return {
      name: resolver.name,
      credentialOf: (handshake) => resolver.credentialOf(handshake),
      resolve: (handshake) => {
        if (this.#spared()) return SPARED;
        let answer: Resolution | Promise<Resolution>;
        try {
          answer = resolver.resolve(handshake);
        } catch (err) {
          return threw(err);
        }
        return answer instanceof Promise ? answer.then(seen, threw) : seen(answer);
      },
      // The cache asks with recheck() for a handshake's look-up too.
      recheck: (kind, credential) => (this.#spared() ? Promise.resolve(SPARED) : resolver.recheck(kind, credential).then(seen, threw)),
      close: () => resolver.close(),
    };
  }

  /**
   * Runs `admission` (the probe's: web/admission.ts) so that a look-up it
   * starts, synchronously, while look-ups are failing is not asked: it is
   * answered "unavailable" at once, and not counted as a failure. The cache
   * asks its backend synchronously, so a cached answer, or a handshake with no
   * credential, is answered as before.
   */
  spare<T>(admission: () => T): T {
    this.#sparing = true;
    try {
      return admission();
    } finally {
      this.#sparing = false;
    }
  }

  #spared(): boolean {
    return this.#sparing && this.#run !== undefined && !this.#run.ended;
  }

  #failed(reason: string): void {
    const now = Date.now();
    this.#total++;
    this.#last = { reason, at: now };
    if (!this.#run || this.#run.ended) this.#run = { since: now, count: 0, ended: false };
    this.#run.count++;
  }

  report(): ResolverFailureReport | null {
    const run = this.#run;
    const last = this.#last;
    if (!run || !last) return null;
    return { failing: !run.ended, reason: last.reason, since: run.since, lastAt: last.at, count: run.count, total: this.#total };
  }
}

/**
 * maxTabs, or (0) what the open-file limit allows. Said at start where the
 * limit holds fewer tabs than a small deployment may want, or fewer than an
 * explicit maxTabs: past it connections would be dropped unanswered.
 */
function tabLimit(options: HeraldOptions, logger: Logger): number {
  const fileLimit = openFileLimit();
  if (fileLimit === undefined) return options.maxTabs;
  const fit = tabsWithin(fileLimit);
  if (options.maxTabs > fit) {
    logger.warn({ maxTabs: options.maxTabs, openFileLimit: fileLimit }, `maxTabs is more than the open-file limit allows (about ${fit} tabs): raise the limit (LimitNOFILE= in a systemd unit, ulimit -n), or connections past it are dropped unanswered`);
  } else if (options.maxTabs === 0 && fit < FEW_TABS) {
    logger.warn({ maxTabs: fit, openFileLimit: fileLimit }, `the open-file limit (${fileLimit}) lets this server hold ${fit} tabs at most: raise it (LimitNOFILE= in a systemd unit, ulimit -n) for more, or set maxTabs`);
  }
  return options.maxTabs > 0 ? options.maxTabs : fit;
}

/**
 * How often node checks its HTTP connections against requestTimeoutMs (ms): a
 * quarter of it, between 100 ms and 5 s, so that the limit means what it says
 * (node's default, 30 s, let a 1-second limit run for 30).
 */
function connectionsCheckingInterval(requestTimeoutMs: number): number {
  return requestTimeoutMs > 0 ? Math.min(5000, Math.max(100, Math.round(requestTimeoutMs / 4))) : 30000;
}

/** At shutdown, the least wait for the session resolver to close, in ms, even when the grace is spent. */
const RESOLVER_CLOSE_MIN_MS = 1000;

/** A probe's look-up not asked while look-ups are failing (ResolverFailures.spare). */
const SPARED: Resolution = { outcome: 'unavailable', reason: 'look-ups are failing: not asked again for the probe' };

/**
 * The HTTP listeners' accept queue (listen(2)'s backlog). node's default, 511,
 * overflowed when some 3,000 tabs came back at once after a restart: the
 * kernel dropped their SYNs (ListenOverflows in /proc/net/netstat), they came
 * back in twice the time and API calls timed out meanwhile. The kernel caps it
 * at net.core.somaxconn (4096 by default since Linux 5.4, 128 before: raise it there too).
 */
const LISTEN_BACKLOG = 4096;

/**
 * How long a shutdown gives a connection that has sent nothing yet, and an idle keep-alive one,
 * before it ends it (#closeHttp): what is already in its buffer is read meanwhile, and answered 503.
 */
const SILENT_CONNECTION_WAIT_MS = 50;

/** Below this many tabs allowed by the open-file limit, the start says so. */
const FEW_TABS = 4096;

/**
 * The Origin allowlist. A bad entry (or a publicUrl that is no URL) is a
 * configuration error naming the option, as every other one is, so that
 * `herald start` says so in one line instead of printing a stack trace.
 */
function originPolicy(options: HeraldOptions): OriginPolicy {
  let publicOrigin: string;
  const publicUrlError = () => new HeraldError('HERALD_ERR_CONFIG', `option "publicUrl": ${JSON.stringify(options.publicUrl)} is not a URL like https://panel.example.net/herald`);
  if (options.publicUrl !== '') {
    let url: URL;
    try {
      url = new URL(options.publicUrl);
    } catch {
      throw publicUrlError();
    }
    // Browsers reach Herald over http(s) only; an ftp:// one was refused as a bad "allowedOrigins" entry.
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw publicUrlError();
    publicOrigin = url.origin;
  } else {
    try {
      // An IPv6 host (`::1`, `::`) goes in brackets in a URL: bare, every start on one failed with "Invalid URL".
      // A URL has no zone (`fe80::1%lo` binds, but no browser names a page's origin with it).
      const host = isIPv6(options.host) ? `[${options.host.replace(/%.*/s, '')}]` : options.host;
      publicOrigin = new URL(`http://${host}:${options.port}`).origin;
    } catch {
      // The URL is built from host: a host like 256.1.1.1 was reported as an empty publicUrl.
      const spaced = options.host.trim() !== options.host ? ' (it has white space around it)' : '';
      throw new HeraldError('HERALD_ERR_CONFIG', `option "host": ${JSON.stringify(options.host)} is not an IP address or host name${spaced}`);
    }
  }
  try {
    return new OriginPolicy({
      allowed: options.allowedOrigins.length > 0 ? options.allowedOrigins : defaultAllowedOrigins(publicOrigin),
      allowMissing: options.allowMissingOrigin,
    });
  } catch (e) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option ${(e as Error).message.replace(/^allowedOrigins:/, '"allowedOrigins":')}`);
  }
}

/** Builds a Herald from finished options (secrets filled in: see ensureSecrets). */
export function createHerald(options: HeraldOptions, deps: HeraldDeps = {}): Promise<Herald> {
  return Herald.create(options, deps);
}

/** What a node does with an envelope: hand it to the local Hub. */
function deliverLocally(hub: Hub, envelope: Envelope): void {
  switch (envelope.type) {
    case 'person':
      hub.deliverTo(envelope.to, envelope.frame, envelope.origin);
      return;
    case 'kind':
      hub.deliverToKind(envelope.kind, envelope.frame, envelope.origin);
      return;
    case 'disconnect':
      hub.disconnect(envelope.to, envelope.code ?? CloseCode.FORBIDDEN, envelope.reason);
      return;
  }
}

/**
 * The process's resident set size in bytes, or null when it cannot be read: node reads it from
 * /proc/self/stat, which fails (EMFILE) while the process is out of file descriptors, and the
 * status must still answer then: it is when an operator needs it most.
 */
function residentBytes(): number | null {
  try {
    return process.memoryUsage.rss();
  } catch {
    return null;
  }
}

/** Waits for `p` at most `ms`; true when it resolved in time. */
async function withTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(() => true);
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

export { principalKey };
