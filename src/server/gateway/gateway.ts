import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { CloseCode, CloseReason } from '../../protocol/close-codes.js';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import type { OriginPolicy } from '../auth/origin-policy.js';
import type { SessionResolver } from '../auth/session-resolver.js';
import { admit, endpointKind, requestUrl, type Admission } from './admission.js';
import type { CommandService } from '../commands/command-service.js';
import type { Hub } from '../hub.js';
import type { MessageStore } from '../store/message-store.js';
import { AckBuffer } from './ack-buffer.js';
import { ACK_WAIT_MS, Connection, type ConnectionDeps, type ConnectionLimits, type ResumeCursor, type ResumeCursors } from './connection.js';
import { afterEarlierAnswers, answerInProgress, answerWithoutUpgrade, offersWebSocket } from './other-upgrade.js';
import { RefusalLog } from './refusal-log.js';
import { ThrottledLog } from '../throttled-log.js';

export interface GatewayOptions {
  hub: Hub;
  store: MessageStore;
  resolver: SessionResolver;
  origins: OriginPolicy;
  commands: CommandService | undefined;
  logger: Logger;
  limits: ConnectionLimits;
  /** Most tabs one person may have open here; a handshake past it is refused with 429. 0: no limit. Default 0. */
  maxTabsPerPerson?: number;
  /** Most tabs open here at once, over all people; a handshake past it is refused with 503. 0: no limit. Default 0. */
  maxTabs?: number;
  /** The wall clock, ms since the epoch, for the store's expiry. Default Date.now; for tests. */
  now?: () => number;
  /** The clock of windows and waits, in ms (ConnectionDeps.monotonicNow): monotonic, default performance.now; for tests. */
  monotonicNow?: () => number;
}

/**
 * Heartbeats go out in slices, one slice every this many milliseconds, not
 * to every tab at once: each tab pinged costs a write and the two answers
 * it sends back, and 10,000 tabs pinged in one go would stall every send
 * for a second on a small machine. Ten slices (one every 2.5 s at the
 * default interval) still held up the sends around each slice for several
 * milliseconds: W4's tail (docs/bench-history.md, eleventh round).
 */
const HEARTBEAT_TICK_MS = 100;
/** At most this many slices (a set each): a heartbeat of an hour ticks every 3.6 s, not every 100 ms. */
const MAX_HEARTBEAT_SLICES = 1000;

/** How many heartbeat slices a heartbeat interval is cut into, and the tick between two slices (ms). */
export function heartbeatSlices(heartbeatMs: number): { slices: number; tickMs: number } {
  const slices = Math.min(MAX_HEARTBEAT_SLICES, Math.max(1, Math.round(heartbeatMs / HEARTBEAT_TICK_MS)));
  return { slices, tickMs: Math.max(1, Math.round(heartbeatMs / slices)) };
}

/**
 * The most `ws` reads of one frame. Past its maxPayload `ws` closes the tab
 * itself, with 1009 and no close notice, having read only the frame's
 * header. A frame up to this size reaches the tab instead, which closes with
 * 4413 after the notice every deliberate close has (docs/browser.md, "Connection"): a
 * client that sends too much can tell why. A larger frame still meets `ws`'s
 * 1009, so a tab cannot make the server hold more than this for one frame.
 */
export function payloadCeiling(maxFrameBytes: number): number {
  return 2 * maxFrameBytes;
}

/** A node that holds its most tabs says so at most this often (with how many it refused meanwhile). */
const FULL_WARNING_EVERY_MS = 10_000;

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' };

/**
 * The browser-facing WebSocket endpoint. Every check — path, Origin,
 * credentials — happens before the upgrade completes, so no socket ever
 * exists for someone Herald does not know (docs/browser.md, "Connection").
 */
export class Gateway {
  readonly #o: GatewayOptions;
  readonly #wss: WebSocketServer;
  readonly #connections = new Set<Connection>();
  /** The same connections, by heartbeat slice (one slice a tick). */
  readonly #slices: Array<Set<Connection>>;
  #nextSlice = 0;
  #added = 0;
  readonly #acks: AckBuffer;
  readonly #now: () => number;
  readonly #monotonicNow: () => number;
  #heartbeat: NodeJS.Timeout | undefined;
  readonly #refusals: RefusalLog;
  /** What every tab is handed: one object for all, not one each. */
  readonly #deps: ConnectionDeps;
  #closing = false;
  /** Set by close(): called when the last open tab has closed. */
  #whenNoTabs: (() => void) | undefined;
  /**
   * Each person's sockets here, from the upgrade until the socket has closed
   * (onClosed), by kind and id as the Hub keys them: what maxTabsPerPerson is
   * checked against, as maxTabs is against #connections. Not the Hub's count,
   * which drops a tab when its close begins: a client that sent a close frame
   * and then neither read nor closed TCP kept that socket until closeTimeoutMs,
   * and could open its next tab at once, so one credential held any number of
   * sockets and filled maxTabs for everyone.
   */
  readonly #sockets: Record<PrincipalKind, Map<number, number>> = { admin: new Map(), user: new Map() };
  readonly #tabCount = (kind?: PrincipalKind): number => this.#o.hub.tabCount(kind);

  constructor(options: GatewayOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#monotonicNow = options.monotonicNow ?? (() => performance.now());
    this.#refusals = new RefusalLog(options.logger, this.#now);
    this.#acks = new AckBuffer(options.store, options.logger);
    this.#deps = {
      store: options.store, acks: this.#acks, commands: options.commands, logger: options.logger, limits: options.limits, now: this.#now, monotonicNow: this.#monotonicNow,
      tabCount: this.#tabCount,
      behind: new ThrottledLog(options.logger, this.#now, {
        summary: (byReason, windowMs, perWindow) => ({
          fields: { closed: Object.values(byReason).reduce((a, b) => a + b, 0), byReason, windowMs },
          message: `tabs closed for falling behind and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
        }),
      }),
    };
    // closeTimeout is ws's own (8.23), not yet in its type definitions.
    const wsOptions: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      maxPayload: payloadCeiling(options.limits.maxFrameBytes),
      // Notifications are small and many: compression would cost more CPU than it saves.
      perMessageDeflate: false,
      clientTracking: false,
      // ws's wait for the peer's close frame after its own (30 s by default): a
      // peer that stops reading never sends one, and its unsent backlog (up to
      // maxBufferedBytes) was held all that time. The socket is destroyed then.
      closeTimeout: options.limits.closeTimeoutMs,
    };
    this.#wss = new WebSocketServer(wsOptions);
    // Each tab is still checked once per heartbeatMs: one slice per tick.
    const { slices, tickMs } = heartbeatSlices(options.limits.heartbeatMs);
    this.#slices = Array.from({ length: slices }, () => new Set());
    this.#heartbeat = setInterval(() => {
      for (const c of this.#slices[this.#nextSlice]!) c.heartbeat();
      this.#nextSlice = (this.#nextSlice + 1) % slices;
    }, tickMs);
    this.#heartbeat.unref();
  }

  get connections(): ReadonlySet<Connection> {
    return this.#connections;
  }

  /**
   * Takes the `upgrade` events of an HTTP server. `fixedKind` serves the
   * compatibility ports where any path is accepted (the old daemon's 19443/19445).
   */
  attach(server: HttpServer, fixedKind?: PrincipalKind): void {
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // Pipelined behind a request still being answered: taken once that answer is written
      // (other-upgrade.ts). One property read on an ordinary handshake.
      if (answerInProgress(socket) !== undefined) return this.#afterEarlierAnswers(server, req, socket, head, fixedKind);
      this.#takeUpgrade(server, req, socket, head, fixedKind);
    });
  }

  /**
   * Sockets whose handshake waits for the answers before it (afterEarlierAnswers). Neither
   * node's closeAllConnections() (the parser is gone with the upgrade) nor #admitting sees
   * them, but the HTTP server counts them: at shutdown, a client that did not read those
   * answers kept close() waiting the whole grace and more, and its socket stayed open.
   */
  readonly #waiting = new Set<Duplex>();

  #afterEarlierAnswers(server: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer, fixedKind: PrincipalKind | undefined): void {
    // A closure each: the rare path (a browser never pipelines a handshake).
    const forget = (): void => {
      this.#waiting.delete(socket);
    };
    this.#waiting.add(socket);
    // However the wait ends: a socket destroyed while waiting is never handed on.
    socket.once('close', forget);
    afterEarlierAnswers(socket, () => {
      socket.off('close', forget);
      forget();
      this.#takeUpgrade(server, req, socket, head, fixedKind);
    });
  }

  /** A request with an Upgrade header, once nothing is being answered before it on its connection. */
  #takeUpgrade(server: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer, fixedKind: PrincipalKind | undefined): void {
    // `Upgrade: h2c` and the like: an ordinary request, answered as one.
    if (!offersWebSocket(req)) return answerWithoutUpgrade(server, req, socket, head);
    const failed = (err: unknown): void => {
      this.#o.logger.error({ err: (err as Error).message }, 'upgrade failed');
      reject(socket, 503, 'HERALD_ERR_INTERNAL', 'try again later');
    };
    try {
      this.#onUpgrade(req, socket, head, fixedKind)?.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /** Synchronous when the resolver answers at once (signed tokens): no promise on the connect path. */
  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, fixedKind: PrincipalKind | undefined): Promise<void> | undefined {
    socket.on('error', destroyOnError);
    if (this.#closing) return reject(socket, 503, 'HERALD_ERR_SHUTTING_DOWN', 'the server is shutting down');
    let url: URL;
    try {
      url = requestUrl(req);
    } catch {
      // A request target node's parser lets through but that is no URL (`//[`, `http://[`):
      // the client's mistake, not a server failure to log and answer "try again later".
      return reject(socket, 400, 'HERALD_ERR_BAD_REQUEST', 'the request target is not a valid URL');
    }
    const kind = fixedKind ?? endpointKind(url.pathname);
    if (!kind) return reject(socket, 404, 'HERALD_ERR_NOT_FOUND', 'WebSocket endpoints are /ws/admin and /ws/user');
    // What ws checks only once admitted: a handshake that could never be upgraded cost a
    // look-up (a query, a request to the panel) and got ws's plain-text answer.
    const key = req.headers['sec-websocket-key'];
    // As ws reads them: an Upgrade of websocket alone (not `websocket, h2c`).
    if (req.method !== 'GET' || key === undefined || !WEBSOCKET_KEY.test(key) || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      return reject(socket, 400, 'HERALD_ERR_BAD_REQUEST', 'not a WebSocket handshake: a GET with Upgrade: websocket and a Sec-WebSocket-Key of 16 bytes in base64 (RFC 6455 §4.1)');
    }
    // The versions ws speaks, compared as text as ws does ("13.0" is not 13), named in the answer (RFC 6455 §4.4).
    const version = req.headers['sec-websocket-version'];
    if (version !== '13' && version !== '8') {
      return reject(socket, 400, 'HERALD_ERR_BAD_REQUEST', 'a WebSocket handshake needs Sec-WebSocket-Version: 13 (RFC 6455 §4.4)', 'Sec-WebSocket-Version: 13, 8\r\n');
    }
    // A handshake has no body: one sent was upgraded, then read as frames and closed 1002.
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')) {
      return reject(socket, 400, 'HERALD_ERR_BAD_REQUEST', 'a WebSocket handshake carries no body (RFC 6455 §4.1)');
    }
    const admission = admit(this.#o, kind, req, url);
    // The old daemon's separate ports are where the old browser script connects (its URL is theirs).
    const oldPort = fixedKind !== undefined;
    if (admission instanceof Promise) return this.#upgradeWhenAdmitted(req, socket, head, admission, oldPort);
    return this.#upgrade(req, socket, head, admission, oldPort);
  }

  /**
   * Kept apart from #onUpgrade on purpose: a closure over `req` there would
   * put the request in the context that every closure of that function
   * shares, and a listener left on the socket would keep it (1.4 KB a tab).
   */
  async #upgradeWhenAdmitted(req: IncomingMessage, socket: Duplex, head: Buffer, admission: Promise<Admission>, oldPort: boolean): Promise<void> {
    this.#admitting.add(socket);
    const admitted = await admission;
    // Refused by close() meanwhile: that answer stands.
    if (!this.#admitting.delete(socket)) return;
    this.#upgrade(req, socket, head, admitted, oldPort);
  }

  /**
   * Handshakes waiting for the resolver (an SQL or HTTP look-up). close()
   * refuses them at once: left to wait, each kept the HTTP server from
   * closing (the whole shutdown grace, as node's closeAllConnections does
   * not see upgrade sockets), and was answered after the shutdown, when its
   * look-up ended.
   */
  readonly #admitting = new Set<Duplex>();

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, admission: Admission, oldPort: boolean): undefined {
    if (!admission.admitted) {
      if (admission.status === 503) this.#refusals.refused('warn', admission.code, admission.log, 'handshake deferred: resolver unavailable');
      else this.#refusals.refused('info', admission.code, admission.log, `handshake refused: ${admission.message}`);
      return reject(socket, admission.status, admission.code, admission.message);
    }
    if (this.#closing || socket.destroyed) return reject(socket, 503, 'HERALD_ERR_SHUTTING_DOWN', 'the server is shutting down');
    const { principal, credential } = admission;
    const allTabs = this.#o.maxTabs ?? 0;
    // Tabs still closing count: each holds its socket until it has closed.
    if (allTabs > 0 && this.#connections.size >= allTabs) return this.#refuseFull(socket, allTabs);
    const maxTabs = this.#o.maxTabsPerPerson ?? 0;
    if (maxTabs > 0 && (this.#sockets[principal.kind].get(principal.id) ?? 0) >= maxTabs) {
      // Refused before the upgrade, so no socket is held: one valid credential cannot open tabs without end.
      this.#refusals.refused('info', 'HERALD_ERR_TOO_MANY_TABS', { kind: principal.kind, id: principal.id, maxTabsPerPerson: maxTabs }, 'handshake refused: too many tabs');
      return reject(socket, 429, 'HERALD_ERR_TOO_MANY_TABS', `this ${principal.kind} has ${maxTabs} tabs open (maxTabsPerPerson): close one, or try again later`);
    }
    const cursors = parseCursors(admission.url.searchParams);
    // The 101 answer and WELCOME leave in one write (one system call, one
    // packet) instead of two: the socket is corked until WELCOME is written.
    // With the embedded stores that is within this call (the heads are at
    // hand), and both leave at once; a store that answers later only means
    // the 101 goes out alone at the end of the turn.
    socket.cork();
    let welcomed = false;
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const conn = new Connection(ws, socket, principal, credential, this.#deps);
      this.#connections.add(conn);
      // Counted here, not before handleUpgrade: a handshake ws itself refuses never gets this far, nor a closed socket.
      this.#countSocket(principal, 1);
      const slice = this.#slices[this.#added++ % this.#slices.length]!;
      slice.add(conn);
      // Out of the Hub as soon as it begins to close: a tab closed as a slow
      // consumer, for silence or by a kick was otherwise counted online and
      // sent to (a live-only send reported delivered, and dropped) until its
      // close handshake ended, up to closeTimeoutMs for a peer that does not read.
      conn.onClosing(() => this.#o.hub.remove(conn));
      conn.onClosed(() => {
        // Forgotten once, however the tab closed: only while it is still one of #connections.
        if (this.#connections.delete(conn)) this.#countSocket(principal, -1);
        slice.delete(conn);
        this.#o.hub.remove(conn);
        if (this.#connections.size === 0) this.#whenNoTabs?.();
      });
      this.#o.hub.add(conn);
      const failed = (err: unknown): void => {
        this.#o.logger.error({ err: (err as Error).message, tab: conn.id }, 'replay failed');
        conn.closeNow(CloseCode.TRY_AGAIN, 'replay failed, reconnect');
      };
      try {
        const starting = conn.start(cursors, oldPort);
        if (starting) starting.catch(failed);
        else welcomed = true;
      } catch (err) {
        failed(err);
      }
    });
    // Sent now rather than at the end of the turn, after every other
    // handshake read in it: about 5% less server CPU per connect in W1
    // (docs/bench-history.md, eighth round).
    if (welcomed) socket.uncork();
    else this.#uncorkAtEndOfTurn(socket);
    return undefined;
  }

  /** One more (or one fewer) socket of `principal`'s; a person with none is not kept. */
  #countSocket(principal: Principal, by: 1 | -1): void {
    const people = this.#sockets[principal.kind];
    const sockets = (people.get(principal.id) ?? 0) + by;
    if (sockets > 0) people.set(principal.id, sockets);
    else people.delete(principal.id);
  }

  /** Most tabs open here at once (0: no limit). */
  get maxTabs(): number {
    return this.#o.maxTabs ?? 0;
  }

  /** Handshakes refused by maxTabs since the last warning, and when that was. */
  #refusedFull = 0;
  #warnedFullAt = -Infinity;

  #refuseFull(socket: Duplex, maxTabs: number): undefined {
    this.#refusedFull++;
    // Monotonic: a step back of the wall clock silenced the warning for the length of the step.
    const now = this.#monotonicNow();
    if (now - this.#warnedFullAt >= FULL_WARNING_EVERY_MS) {
      this.#o.logger.warn({ maxTabs, refused: this.#refusedFull }, 'handshakes refused: this node holds its most tabs (maxTabs)');
      this.#warnedFullAt = now;
      this.#refusedFull = 0;
    }
    return reject(socket, 503, 'HERALD_ERR_UNAVAILABLE', `this server holds its most tabs (maxTabs ${maxTabs}): try again later`);
  }

  /** Corked sockets whose WELCOME was not written yet; one setImmediate uncorks them all. */
  #corked: Duplex[] = [];

  #uncorkAtEndOfTurn(socket: Duplex): void {
    if (this.#corked.push(socket) > 1) return;
    setImmediate(() => {
      const corked = this.#corked;
      this.#corked = [];
      for (const s of corked) s.uncork();
    });
  }

  /**
   * Refuses new tabs, tells every open tab why, gives the tabs that owe
   * acks a moment to send them (ACK_WAIT_MS, at most half of
   * `graceMs`), and waits (up to `graceMs` in all) for them to close; then
   * writes the acks they sent to the store.
   */
  async close(reason: string = CloseReason.SHUTDOWN, graceMs = 2000): Promise<void> {
    this.#closing = true;
    clearInterval(this.#heartbeat);
    this.#refusals.flush();
    this.#deps.behind.flush();
    for (const socket of this.#admitting) reject(socket, 503, 'HERALD_ERR_SHUTTING_DOWN', 'the server is shutting down');
    this.#admitting.clear();
    // Behind answers not yet written or not read: no 503 can go in front of them. They are cut,
    // as node cuts the answers given but unread on a connection it ends at close().
    for (const socket of this.#waiting) socket.destroy();
    this.#waiting.clear();
    const all = [...this.#connections];
    // Every tab's own onClosed (set at its handshake) forgets it, and says so here once the last has gone.
    const closed = all.length === 0 ? Promise.resolve() : new Promise<void>((resolve) => {
      this.#whenNoTabs = resolve;
    });
    const ackWaitMs = Math.min(ACK_WAIT_MS, Math.floor(graceMs / 2));
    for (const c of all) c.closeWhenAcked(CloseCode.GOING_AWAY, reason, ackWaitMs);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
    for (const c of this.#connections) c.terminate();
    this.#wss.close();
    // What the tabs acked up to their close, all of it in the store's hands
    // before Herald closes the store.
    await this.#acks.settle();
  }
}

function parseSeq(v: string | null): number | undefined {
  if (v === null || !/^\d{1,15}$/.test(v)) return undefined;
  return Number(v);
}

/**
 * Resume cursors given at connect: `?seq=&epoch=&bseq=&bepoch=`, or, for a
 * stream the tab was shown nothing of, where WELCOME's ACKED placed it:
 * `after` (`bafter`) instead of `seq` (`bseq`), which wins when both are given.
 */
function parseCursors(q: URLSearchParams): ResumeCursors {
  const cursors: ResumeCursors = {};
  const own = parseCursor(q.get('seq'), q.get('after'), q.get('epoch'));
  if (own) cursors.own = own;
  const broadcast = parseCursor(q.get('bseq'), q.get('bafter'), q.get('bepoch'));
  if (broadcast) cursors.broadcast = broadcast;
  return cursors;
}

function parseCursor(seqParam: string | null, afterParam: string | null, epoch: string | null): ResumeCursor | undefined {
  const seq = parseSeq(seqParam);
  if (seq !== undefined) return { seq, epoch: epoch ?? undefined };
  const after = parseSeq(afterParam);
  return after === undefined ? undefined : { seq: after, epoch: epoch ?? undefined, start: true };
}

/** A shared function, as destroyOnError: the socket of a refused handshake, once its answer is written. */
function destroyAfterAnswer(this: Duplex): void {
  this.destroy();
}

/** The socket's error listener until ws takes it over: a shared function, so it keeps nothing of the request alive. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** A Sec-WebSocket-Key: 16 random bytes in base64 (RFC 6455 §4.1), as ws checks it. */
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/**
 * Answers a refused handshake with a plain HTTP response and closes the
 * socket. Closed whole once the answer is written, as `ws` closes its own
 * refusals: ending only Herald's half left the socket open for as long as
 * the client kept its half, and anyone, with no credential, could hold every
 * file descriptor the process has that way. `headers`: more header lines,
 * each ending in CRLF.
 */
function reject(socket: Duplex, status: number, code: string, message: string, headers = ''): undefined {
  if (socket.destroyed) return undefined;
  const body = JSON.stringify({ error: { code, message } });
  socket.once('finish', destroyAfterAnswer);
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
      `Connection: close\r\nContent-Type: application/json; charset=utf-8\r\n${headers}` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return undefined;
}
