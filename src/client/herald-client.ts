/**
 * HeraldClient: one tab's connection to Herald. It connects to `/ws/admin`
 * or `/ws/user` with a token, answers PINGs, notices a dead link, reconnects
 * with backoff for as long as the page lives, resumes the delivery streams
 * where it left off, and hands every notification to the dispatcher.
 *
 * A rejected credential (close code 4401/4403, or an HTTP 401/403 refusal of
 * the handshake) stops retrying and emits `rejected`; anything else — server
 * down, restart, network gone — retries (STYLE.md §5).
 */
import type { ClientFrame, NotificationObject, PaceFrame, ResetFrame, WelcomeFrame } from '../protocol/frames.js';
import type { PrincipalKind } from '../protocol/principal.js';
import { CloseCode, TERMINAL_CLOSE_CODES } from '../protocol/close-codes.js';
import { Backoff, TIMER_MAX_MS } from './backoff.js';
import type { ConnectionState, HeraldClientOptions, HeraldEvents } from './client-types.js';
import { installDefaultHandlers, type DefaultHandlerDeps } from './defaults.js';
import { DeliveryTracker, type StreamName } from './delivery.js';
import { DesktopNotifier } from './desktop.js';
import { Dispatcher, toNotification, type DispatchErrorReporter, type DispatchVia, type Handler, type LegacyExtension } from './dispatcher.js';
import { Emitter } from './emitter.js';
import { DEFAULT_HOST_ID, Toaster, type ToasterOptions } from './toaster.js';
import { probeRefusal } from './probe.js';
import { listenToDocument, stopListeningToDocument, visibility } from './dom.js';

export type { ConnectionState, HeraldClientOptions, HeraldEvents, TokenSource } from './client-types.js';

/** Silence on a healthy link never lasts longer than ~2.5 heartbeats (one lost PING tolerated, plus latency). */
const DEAD_FACTOR = 2.5;
/** The longest heartbeat whose DEAD_FACTOR a timer can wait (TIMER_MAX_MS; the server's heartbeatMs is held to it too). */
const MAX_HEARTBEAT_MS = Math.floor(TIMER_MAX_MS / DEAD_FACTOR);
/**
 * A connection must stay up this long (ms) before the backoff starts again
 * from its base delay: a server that closes every tab right after WELCOME
 * (overloaded, a failing replay) must not be hit in a tight reconnect loop.
 */
const STABLE_MS = 5000;
/**
 * After the page came back online or visible, how long (ms) an open socket
 * has to show it is alive (the server answers our PING at once) before it is
 * taken for dead and replaced.
 */
const LINK_CHECK_MS = 5000;
/**
 * After the page came back online or visible, an attempt still connecting
 * that began at least this long ago (ms) is taken for one started on the
 * dead network (its SYN or handshake lost, which Chromium would wait on for
 * up to connectTimeoutMs) and replaced by a new one at once. A younger one
 * may just be a slow handshake on the working network: it is left alone.
 */
const WAKE_GRACE_MS = 2500;
/** The reason of the close when the page goes into the back/forward cache. */
const PAGE_HIDDEN = 'page hidden';
/** RFC 6455's code for a connection that ended without a close frame, as a browser reports a failed one. */
const ABNORMAL_CLOSURE = 1006;
/** After close(), how long to wait for the server to close before closing ourselves, in ms. */
const CLOSE_GRACE_MS = 3000;
/**
 * How long one attempt (token, handshake, WELCOME) may take by default, in
 * ms: socket.io-client's connect timeout. Chromium itself gives up on a
 * handshake only after 240 s, and a token function or the credential probe
 * may never settle at all.
 */
const CONNECT_TIMEOUT_MS = 20_000;

let scriptBase: string | undefined;
/** The script build records where it was loaded from, the default base URL. */
export function setDefaultBaseUrl(url: string | undefined): void {
  scriptBase = url;
}

/**
 * The clients' toast stacks, one per host id. A page has one element of an
 * id: a second stack of the same id sat on the first in the same corner, and
 * a page that runs the snippet twice with toast options (a template included
 * twice; Herald.connect closes the first client) kept the first client's
 * stack there, its command toasts spinning for ever. A client with toast
 * options gives them to the stack of its host id; one without shares
 * "herald-toasts" as it is.
 */
const stacks = new Map<string, Toaster>();

function toasterFor(options: ToasterOptions | undefined): Toaster {
  const hostId = options?.hostId ?? DEFAULT_HOST_ID;
  const existing = stacks.get(hostId);
  if (!existing) {
    const made = new Toaster(options);
    stacks.set(hostId, made);
    return made;
  }
  if (options) existing.configure(options);
  return existing;
}

/**
 * The latest client made for each endpoint. A command toast's Cancel goes
 * through the client of the command's latest frame; once that client is
 * closed (Herald.connect run again: a new client took over the endpoint),
 * through the latest client of its endpoint, as no further frame may come.
 */
const latestByEndpoint = new Map<string, HeraldClient>();

function toWsUrl(base: string): string {
  const u = new URL(base, location.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.toString();
}

/**
 * The WebSocket URL a client with these options connects to (its `endpoint`,
 * which also keys its saved cursors). Throws a TypeError for a bad `kind`.
 */
export function endpointOf(options: Pick<HeraldClientOptions, 'kind' | 'url' | 'endpoint'>): string {
  const kind = ownOption(options, 'kind') ?? 'admin';
  if (kind !== 'admin' && kind !== 'user') throw new TypeError(`kind must be "admin" or "user", got ${String(kind)}`);
  const endpoint = ownOption(options, 'endpoint');
  if (endpoint) return toWsUrl(endpoint);
  const base = ownOption(options, 'url') ?? scriptBase ?? location.origin;
  return `${toWsUrl(base).replace(/\/+$/, '')}/ws/${kind}`;
}

/**
 * `options[key]` where the options object or a prototype of its own has it
 * (`Object.create(defaults)`, a class's getter), never where only
 * Object.prototype does: a prototype-pollution bug elsewhere in the page may
 * have set that (`Object.prototype.url = ...` sent the token to that host).
 */
function ownOption<K extends 'kind' | 'url' | 'endpoint'>(options: Pick<HeraldClientOptions, K>, key: K): HeraldClientOptions[K] | undefined {
  for (let o: object | null = options; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    if (Object.prototype.hasOwnProperty.call(o, key)) return options[key];
  }
  return undefined;
}

/**
 * What the client's `error` event says when the page's
 * Content-Security-Policy refused the connection to the endpoint.
 */
const BLOCKED_BY_CSP = "the connection to Herald was blocked by the page's Content-Security-Policy (connect-src): allow the endpoint there";

export class HeraldClient {
  readonly kind: PrincipalKind;
  readonly endpoint: string;
  readonly dispatcher: Dispatcher;
  readonly events = new Emitter<HeraldEvents>();
  readonly desktop: DesktopNotifier;
  readonly toaster: Toaster | undefined;
  /** The built-in handlers show MESSAGEs as toasts (`defaultHandlers` is not false). */
  readonly #toastsShown: boolean;

  readonly #options: HeraldClientOptions;
  readonly #backoff: Backoff;
  /**
   * When the last WELCOME arrived (performance.now(); 0: not since the last
   * drop). Not Date.now(): a wall clock stepped back would keep the backoff
   * from ever starting again from its base delay.
   */
  #welcomeAt = 0;
  readonly #delivery: DeliveryTracker;
  readonly #via: DispatchVia;
  readonly #WebSocket: typeof WebSocket;
  #state: ConnectionState = 'idle';
  #ws: WebSocket | undefined;
  /**
   * The last WELCOME, kept until the next one arrives (not cleared when the
   * link drops): the desktop notifier's scope is made from it, and a tab
   * that lost it during an outage could not tell the person's other tabs
   * that it went hidden or closed.
   */
  #welcome: WelcomeFrame | undefined;
  #heartbeatMs: number;
  #deadTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  /** Infinity: no connect timeout. */
  readonly #connectTimeoutMs: number;
  /**
   * Numbers the attempts. Every attempt, close() and a timed-out attempt
   * take a new number, so an attempt that was abandoned while it awaited
   * something (the token function, the credential probe) sees that it is
   * no longer the current one when the await ends, and stops there instead
   * of opening a second socket or scheduling a retry beside the new attempt.
   */
  #attemptId = 0;
  /** When the current attempt began (Date.now()). */
  #attemptStartedAt = 0;
  #closeNotice: { reason: string; code?: number } | undefined;
  #closeWaiters: Array<() => void> = [];
  /** This connection resumed with another person's cursors (see #onWelcome). */
  #foreignCursors = false;
  readonly #onOnline = () => this.#wakeUp();
  readonly #onVisible = () => {
    this.desktop.sync(true);
    if (visibility() === 'visible') this.#wakeUp();
  };
  /** The page went into the back/forward cache while this client ran: it connects again when the page comes back. */
  #suspended = false;
  readonly #onPageHide = (event: PageTransitionEvent) => {
    this.#delivery.flush();
    this.#delivery.leaving(true);
    if (event.persisted) this.#suspend();
  };
  readonly #onPageShow = (event: PageTransitionEvent) => {
    this.#delivery.leaving(false);
    if (event.persisted) this.#resume();
  };
  /** The attempt (#attemptId) whose connection the page's CSP refused, once that was said; 0: none. */
  #blockedAttempt = 0;
  /**
   * The page's CSP (connect-src) refused a connection to this client's host:
   * its socket fails at once and says nothing of why, so tell the page,
   * once an attempt (the credential probe's request may be refused too).
   */
  readonly #onPolicyViolation = (event: Event) => {
    const violation = event as SecurityPolicyViolationEvent;
    // 'report': a Content-Security-Policy-Report-Only header's, which refuses nothing.
    if (violation.effectiveDirective !== 'connect-src' || violation.disposition !== 'enforce' || this.#blockedAttempt === this.#attemptId) return;
    let host: string;
    try {
      host = new URL(violation.blockedURI).host;
    } catch {
      return; // not a URL ("inline", "eval")
    }
    if (host !== new URL(this.endpoint).host) return;
    this.#blockedAttempt = this.#attemptId;
    this.events.emit('error', { error: new Error(BLOCKED_BY_CSP) });
  };

  constructor(options: HeraldClientOptions = {}) {
    this.#options = options;
    this.endpoint = endpointOf(options);
    // As endpointOf reads it: a kind only Object.prototype has is no kind.
    this.kind = ownOption(options, 'kind') ?? 'admin';
    this.dispatcher = options.dispatcher ?? new Dispatcher();
    this.#backoff = new Backoff(options.reconnect);
    this.#heartbeatMs = options.heartbeatMs ?? 25_000;
    // Zero, negative or NaN would fire the dead-link timer before WELCOME: a
    // reconnect loop; and so would one whose DEAD_FACTOR a timer cannot wait (TIMER_MAX_MS).
    if (!(this.#heartbeatMs > 0 && this.#heartbeatMs <= MAX_HEARTBEAT_MS)) throw new TypeError(`heartbeatMs must be a number of ms in 1..${MAX_HEARTBEAT_MS}, got ${String(options.heartbeatMs)}`);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    // Infinity: no connect timeout. A finite one past TIMER_MAX_MS would fire at once: every attempt dropped.
    if (!(this.#connectTimeoutMs > 0 && (this.#connectTimeoutMs <= TIMER_MAX_MS || this.#connectTimeoutMs === Infinity))) {
      throw new TypeError(`connectTimeoutMs must be a number of ms in 1..${TIMER_MAX_MS}, or Infinity for none, got ${String(options.connectTimeoutMs)}`);
    }
    this.#WebSocket = options.WebSocket ?? WebSocket;
    this.#delivery = new DeliveryTracker({
      storageKey: options.persistCursors === false ? undefined : `herald:cursors:${this.endpoint}`,
      shownKey: options.persistCursors === false ? undefined : `herald:shown:${this.endpoint}`,
      send: (frame) => this.send(frame),
      ...(options.ackDelayMs === undefined ? {} : { ackDelayMs: options.ackDelayMs }),
      ...(options.broadcastAckDelayMs === undefined ? {} : { broadcastAckDelayMs: options.broadcastAckDelayMs }),
    });
    // The person's tabs in this browser agree on what reaches the desktop (desktop.ts): known by endpoint and ID.
    this.desktop = new DesktopNotifier(options.desktop, () => (this.#welcome ? `${this.endpoint}#${this.#welcome.ID}` : undefined));
    this.toaster = options.toasts === false ? undefined : toasterFor(options.toasts || undefined);
    const reportError: DispatchErrorReporter = (error, message, type) => {
      console.error(`[herald] a handler of ${type} threw`, error);
      this.events.emit('error', { error, message, type });
    };
    const builtins: DefaultHandlerDeps = {
      toaster: this.toaster,
      desktop: this.desktop,
      send: (frame) => this.#sender().send(frame),
      emitEvent: (m) => this.events.emit('event', m),
    };
    // What this client's notifications are handled with, on a dispatcher another client may share.
    this.#via = { reportError, builtins };
    this.dispatcher.setErrorReporter(reportError);
    this.#toastsShown = options.defaultHandlers !== false;
    if (this.#toastsShown) installDefaultHandlers(this.dispatcher, builtins);
    latestByEndpoint.set(this.endpoint, this);
    if (options.autoConnect !== false) this.connect();
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The last WELCOME frame (who this tab is, heartbeat, stream heads), if connected once. */
  get welcome(): WelcomeFrame | undefined {
    return this.#welcome;
  }

  /** The delivery cursors (last SEQ/EPOCH seen) of both streams. */
  cursors(): { own: ReturnType<DeliveryTracker['cursor']>; broadcast: ReturnType<DeliveryTracker['cursor']> } {
    return { own: this.#delivery.cursor('own'), broadcast: this.#delivery.cursor('broadcast') };
  }

  /** Registers a handler for a notification TYPE; returns its unsubscribe function. */
  on<T extends NotificationObject = NotificationObject>(type: string, handler: Handler<T>): () => void {
    return this.dispatcher.on(type, handler);
  }

  /** The old `AMessageChecker.extend({TYPE, CALLBACK})`. */
  extend(extension: LegacyExtension): () => void {
    return this.dispatcher.extend(extension);
  }

  /** Starts connecting (again, after `close()` or a rejection). */
  connect(): void {
    if (this.#state === 'connecting' || this.#state === 'open') return;
    this.#suspended = false;
    // A close() still in progress is done as far as its caller is concerned.
    this.#resolveClose();
    // The socket of a close() still in progress is closed now and no longer
    // listened to: its close event must not be taken for the end of the
    // attempt starting now.
    this.#abandonSocket();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#backoff.reset();
    addEventListener('online', this.#onOnline);
    // Through EventTarget.prototype: the page's markup can shadow document's methods (dom.ts).
    listenToDocument('visibilitychange', this.#onVisible);
    listenToDocument('securitypolicyviolation', this.#onPolicyViolation);
    addEventListener('pagehide', this.#onPageHide);
    addEventListener('pageshow', this.#onPageShow);
    // The toasts' live region, before the first notification can arrive (Toaster.prepare).
    if (this.#toastsShown) this.toaster?.prepare();
    void this.#open();
  }

  /**
   * Asks the server to close this tab (`CLOSE_REQUEST`) and stops
   * reconnecting. Resolves when the socket is closed.
   */
  close(): Promise<void> {
    this.#stopListening();
    this.#suspended = false;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    // The close ends as the page asked (1000, 'client closed'), not as a dead link found meanwhile.
    clearTimeout(this.#deadTimer);
    this.#deadTimer = undefined;
    // An attempt awaiting its token or the probe ends there.
    this.#attemptId++;
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) {
      this.#ws = undefined;
      const wasRunning = this.#state === 'connecting' || this.#state === 'waiting' || this.#state === 'open';
      this.#setState('closed');
      // Stopped between attempts (a reconnecting listener, a logout during an
      // outage): said once, as when close() ends a socket.
      if (wasRunning) this.events.emit('disconnected', { code: CloseCode.NORMAL, reason: 'client closed', willReconnect: false });
      this.#resolveClose();
      return Promise.resolve();
    }
    const done = new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    if (this.#state === 'closing') return done;
    this.#setState('closing');
    if (ws.readyState === WebSocket.OPEN) {
      this.#delivery.flush();
      ws.send(JSON.stringify({ TYPE: 'CLOSE_REQUEST' } satisfies ClientFrame));
      // The server answers by closing; if it does not (a dead link, where
      // Chromium's own close handshake waits a minute or more), give up on
      // the socket, as #drop does, and the client is closed now.
      this.#closeTimer = setTimeout(() => {
        if (this.#ws !== ws || !this.#abandonSocket()) return;
        void this.#onClosed(CloseCode.NORMAL, 'client closed', true, '', this.#attemptId);
      }, CLOSE_GRACE_MS);
    } else {
      ws.close(CloseCode.NORMAL, 'client closed');
    }
    return done;
  }

  /**
   * The page goes into the back/forward cache (pagehide, persisted). Its
   * socket would stay open there: the server would go on counting the
   * person online and report sends to this tab as delivered, while nobody
   * can see it. So close it (normally; the acks went just before) and make
   * no attempt while the page is hidden; #resume connects again with the
   * cursors if the page comes back.
   */
  #suspend(): void {
    if (this.#state !== 'connecting' && this.#state !== 'open' && this.#state !== 'waiting') return;
    const wasOpen = this.#state === 'open';
    this.#suspended = true;
    // A token or a probe answer that comes later is ignored.
    const id = ++this.#attemptId;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#welcomeAt = 0;
    this.#abandonSocket(CloseCode.NORMAL, PAGE_HIDDEN);
    this.#setState('waiting');
    if (id !== this.#attemptId) return; // a state listener called close() or connect()
    if (wasOpen) this.events.emit('disconnected', { code: CloseCode.NORMAL, reason: PAGE_HIDDEN, willReconnect: true });
  }

  /** The page came back from the back/forward cache (pageshow, persisted): connect again at once. */
  #resume(): void {
    if (!this.#suspended) return;
    this.#suspended = false;
    // Already on its way (a visibilitychange came first), or a listener chose otherwise.
    if (this.#state !== 'waiting' || this.#retryTimer !== undefined) return;
    this.#backoff.reset();
    void this.#open();
  }

  /** Sends a frame to the server; false when not connected. */
  send(frame: ClientFrame): boolean {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  /**
   * Feeds a notification to the dispatcher as if it had arrived (the old
   * `AMessageChecker.processData`). Accepts an object, or a JSON string.
   */
  process(data: unknown): void {
    const message = toNotification(typeof data === 'string' ? parseOr(data) : data);
    if (message) this.#dispatch(message, undefined);
  }

  /** Who sends what this client's toasts ask (a command's Cancel): itself, or once it is closed, the latest client of its endpoint. */
  #sender(): HeraldClient {
    if (this.#state !== 'closing' && this.#state !== 'closed') return this;
    return latestByEndpoint.get(this.endpoint) ?? this;
  }

  #dispatch(message: NotificationObject, stream: StreamName | undefined): void {
    // The final notification of a background command replaces its live toast.
    if (typeof message.COMMAND_ID === 'string' && message.TYPE !== 'COMMAND_PROGRESS') this.toaster?.endCommand(message.COMMAND_ID);
    this.dispatcher.dispatch(message, stream, this.#via);
  }

  // ---- connection -----------------------------------------------------------

  async #open(): Promise<void> {
    const id = ++this.#attemptId;
    this.#attemptStartedAt = Date.now();
    const attempt = this.#backoff.attempt;
    this.#setState('connecting');
    this.events.emit('connecting', { attempt });
    if (id !== this.#attemptId) return; // a listener called close() or connect()
    clearTimeout(this.#connectTimer);
    this.#connectTimer = this.#connectTimeoutMs === Infinity ? undefined : setTimeout(() => this.#connectTimedOut(id), this.#connectTimeoutMs);
    let url: string;
    try {
      url = await this.#url();
    } catch (error) {
      if (id !== this.#attemptId) return;
      // A token function that fails is a transient problem (e.g. the panel's
      // token endpoint restarting): retry like a failed connection.
      this.events.emit('error', { error });
      // Unless an error listener called close() (and perhaps connect()): that stands.
      if (id === this.#attemptId && this.#state === 'connecting') this.#scheduleRetry(CloseCode.INTERNAL_ERROR, 'token unavailable');
      return;
    }
    // close() (and perhaps connect() again) while awaiting the token.
    if (id !== this.#attemptId || this.#state !== 'connecting') return;
    let ws: WebSocket;
    try {
      ws = new this.#WebSocket(url);
    } catch (error) {
      this.events.emit('error', { error });
      if (id === this.#attemptId && this.#state === 'connecting') this.#scheduleRetry(CloseCode.INTERNAL_ERROR, 'bad endpoint');
      return;
    }
    this.#ws = ws;
    this.#closeNotice = undefined;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.#touch();
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.#ws !== ws) return;
      this.#touch();
      if (typeof ev.data === 'string') this.#onText(ev.data);
    };
    ws.onclose = (ev: CloseEvent) => {
      if (this.#ws !== ws) return; // a socket we already gave up on
      this.#ws = undefined;
      void this.#onClosed(ev.code, ev.reason || this.#closeNotice?.reason || '', opened, url, id);
    };
    // A socket that never opened and is closed has failed: that is the end
    // of the attempt. Usually its close event follows (and is then ignored,
    // the socket being given up on); but Chromium's socket that the page's
    // CSP refused (connect-src) fires `error` alone, and the attempt would
    // wait for connectTimeoutMs, the page never told.
    ws.onerror = () => {
      if (this.#ws !== ws || opened || ws.readyState !== WebSocket.CLOSED) return;
      this.#ws = undefined;
      void this.#onClosed(ABNORMAL_CLOSURE, '', false, url, id);
    };
  }

  async #url(): Promise<string> {
    const u = new URL(this.endpoint);
    const src = this.#options.token;
    const token = typeof src === 'function' ? await src() : src;
    if (token) u.searchParams.set('token', token);
    for (const [k, v] of Object.entries(this.#delivery.resumeParams())) u.searchParams.set(k, v);
    return u.toString();
  }

  async #onClosed(code: number, reason: string, opened: boolean, url: string, id: number): Promise<void> {
    // Only a connection that was open (its `connected` emitted) ends with
    // `disconnected`; a failed attempt is followed by `reconnecting` alone, so
    // a page sees one `disconnected` per outage, not one per attempt.
    const wasOpen = this.#state === 'open';
    clearTimeout(this.#deadTimer);
    clearTimeout(this.#closeTimer);
    this.#deadTimer = undefined;
    if (this.#state === 'closing' || this.#state === 'closed') {
      this.#setState('closed');
      this.events.emit('disconnected', { code, reason, willReconnect: false });
      this.#resolveClose();
      return;
    }
    let terminal = TERMINAL_CLOSE_CODES.has(code) ? code : undefined;
    // Not when the page's CSP refused the connection: the probe would be refused too, its report carrying the token.
    if (terminal === undefined && !opened && this.#blockedAttempt !== id) {
      // A refused handshake reaches the page only as code 1006, whatever the
      // HTTP status was, so ask the endpoint over plain HTTP why (server/web/admission.ts).
      terminal = await probeRefusal(url);
      // close(), connect() or the connect timeout meanwhile: another attempt's business now.
      if (id !== this.#attemptId || (this.#state !== 'connecting' && this.#state !== 'open')) return;
    }
    if (terminal !== undefined) {
      this.#reject(terminal, reason || (terminal === CloseCode.FORBIDDEN ? 'forbidden' : 'unauthorized'));
      return;
    }
    if (wasOpen) {
      // The state first, so that a listener reading `state` sees the client waiting, not open.
      this.#setState('waiting');
      if (id !== this.#attemptId) return; // a state listener called close() or connect()
      this.events.emit('disconnected', { code, reason, willReconnect: true });
      // A disconnected listener that called close() (or close() and connect())
      // has decided: no retry behind its back, nor one beside its new attempt.
      if (id !== this.#attemptId) return;
    }
    this.#scheduleRetry(code, reason);
  }

  #reject(code: number, reason: string): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#stopListening();
    this.#setState('rejected');
    this.events.emit('disconnected', { code, reason, willReconnect: false });
    this.events.emit('rejected', { code, reason });
  }

  #scheduleRetry(_code: number, _reason: string): void {
    if (this.#welcomeAt !== 0 && performance.now() - this.#welcomeAt >= STABLE_MS) this.#backoff.reset();
    this.#welcomeAt = 0;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const delayMs = this.#backoff.next();
    this.#setState('waiting');
    if (this.#state !== 'waiting') return; // a state listener called close() or connect()
    // The timer before the event: a reconnecting listener that calls close()
    // (how a page stops retrying during an outage) clears it.
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#state === 'waiting') void this.#open();
    }, delayMs);
    this.events.emit('reconnecting', { attempt: this.#backoff.attempt, delayMs });
  }

  /**
   * Back online or visible again: a waiting client tries now; one still
   * connecting since before WAKE_GRACE_MS starts a new attempt now (the old
   * one was most likely made on the dead network and would hang until
   * connectTimeoutMs); an open one checks its link. A network that went away (Wi-Fi lost, another network
   * joined) leaves the socket open and dead, and the heartbeat would take
   * 2.5 heartbeats (a minute by default) to find it, all that time showing
   * nothing: so ask the server for a PONG, and drop the socket when nothing
   * at all arrives within LINK_CHECK_MS.
   */
  #wakeUp(): void {
    if (this.#state === 'waiting') {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
      this.#backoff.reset();
      void this.#open();
    } else if (this.#state === 'connecting') {
      if (Date.now() - this.#attemptStartedAt < WAKE_GRACE_MS) return;
      // Nothing else is reset: the backoff and the cursors stay as they are.
      this.#attemptId++; // whatever the old attempt still awaits (token, probe) is ignored when it comes
      clearTimeout(this.#connectTimer);
      this.#connectTimer = undefined;
      this.#abandonSocket(CloseCode.TIMEOUT, 'network came back');
      void this.#open();
    } else if (this.#state === 'open') {
      // Even after a long sleep (the timers stood still, the server has long
      // closed this tab) the check decides, not the wall clock: a clock
      // stepped forward (NTP, a manual change) looked the same and dropped
      // a healthy link. A dead one answers nothing, or its close comes first.
      if (!this.send({ TYPE: 'PING' })) return;
      // Any frame that arrives (the PONG, or anything else) re-arms the usual timer in #touch.
      clearTimeout(this.#deadTimer);
      this.#deadTimer = setTimeout(() => this.#drop('no answer after the network came back'), Math.min(LINK_CHECK_MS, this.#heartbeatMs * DEAD_FACTOR));
    }
  }

  /** Something arrived: the link is alive; re-arm the dead-link timer. */
  #touch(): void {
    // A closing client waits for the server's close only as long as close() grants: a dead link found meanwhile is no news.
    if (this.#state === 'closing') return;
    clearTimeout(this.#deadTimer);
    this.#deadTimer = setTimeout(() => this.#drop('no heartbeat'), this.#heartbeatMs * DEAD_FACTOR);
  }

  /**
   * Gives up on a silent socket without waiting for its close handshake (on
   * a dead link that can take minutes) and reconnects.
   */
  #drop(reason: string): void {
    if (!this.#abandonSocket(CloseCode.TIMEOUT, reason)) return;
    void this.#onClosed(CloseCode.TIMEOUT, reason, true, '', this.#attemptId);
  }

  /**
   * An attempt got no WELCOME in time: the handshake hangs (a server or
   * proxy that accepts the connection and never answers), or the token
   * function or the credential probe never settled. Give up on it and retry
   * with backoff, as after a failed connection.
   */
  #connectTimedOut(id: number): void {
    this.#connectTimer = undefined;
    if (id !== this.#attemptId || this.#state !== 'connecting') return;
    const current = ++this.#attemptId; // whatever the attempt still awaits is ignored when it comes
    const reason = 'connect timeout';
    this.#abandonSocket(CloseCode.TIMEOUT, reason);
    // An attempt, not an open connection: `reconnecting` only (see #onClosed).
    if (current !== this.#attemptId) return;
    this.#scheduleRetry(CloseCode.TIMEOUT, reason);
  }

  /** Stops listening to the current socket and closes it; false when there was none. */
  #abandonSocket(code: number = CloseCode.NORMAL, reason = 'client closed'): boolean {
    clearTimeout(this.#deadTimer);
    this.#deadTimer = undefined;
    const ws = this.#ws;
    if (!ws) return false;
    this.#ws = undefined;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return true;
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
    return true;
  }

  #stopListening(): void {
    removeEventListener('online', this.#onOnline);
    stopListeningToDocument('visibilitychange', this.#onVisible);
    stopListeningToDocument('securitypolicyviolation', this.#onPolicyViolation);
    this.desktop.sync(false);
    removeEventListener('pagehide', this.#onPageHide);
    removeEventListener('pageshow', this.#onPageShow);
  }

  #resolveClose(): void {
    const waiters = this.#closeWaiters;
    this.#closeWaiters = [];
    for (const w of waiters) w();
  }

  #setState(state: ConnectionState): void {
    if (this.#state === state) return;
    this.#state = state;
    this.events.emit('state', state);
  }

  // ---- frames ---------------------------------------------------------------

  #onText(text: string): void {
    // The old daemon could deliver a plain string that is not JSON at all.
    const value = parseOr(text);
    this.events.emit('frame', value);
    // After close() (Herald.connect run again: a new client takes over this
    // endpoint and its saved cursors), nothing more is handed on, recorded or
    // acknowledged: the server replays it to the next client from the saved
    // cursor, which this one no longer advances. Showing it here too showed
    // it twice in the tab.
    const stopped = this.#state === 'closing' || this.#state === 'closed';
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      const frame = value as Record<string, unknown>;
      switch (frame.TYPE) {
        case 'PING':
          this.send({ TYPE: 'PONG' });
          return;
        case 'PONG':
          return;
        case 'WELCOME':
          if (!stopped) this.#onWelcome(frame as unknown as WelcomeFrame);
          return;
        case 'RESET':
          if (!stopped) this.#onReset(frame as unknown as ResetFrame);
          return;
        case 'PACE':
          this.#delivery.pace(frame as unknown as PaceFrame);
          return;
        case 'close':
          this.#closeNotice = { reason: String(frame.REASON ?? ''), ...(typeof frame.CODE === 'number' ? { code: frame.CODE } : {}) };
          // The acks still batched go now, while the socket is open: a
          // shutdown waits for them before it sends its close frame
          // (docs/delivery.md), and a new tab elsewhere is not replayed
          // what this one showed.
          this.#delivery.flush();
          return;
        case 'ERROR':
          this.events.emit('error', { error: frame });
          return;
      }
    }
    if (stopped) return;
    const message = toNotification(value);
    if (!message) return;
    const verdict = this.#delivery.accept(message);
    // 'seen': shown by another tab of this browser before this one connected (delivery.ts).
    if (verdict.kind === 'duplicate' || verdict.kind === 'seen') return;
    this.#dispatch(message, verdict.kind === 'new' ? verdict.stream : undefined);
  }

  #onWelcome(frame: WelcomeFrame): void {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    // At most what a timer can wait for 2.5 heartbeats (the dead-link check): a longer one fired at once.
    if (typeof frame.HEARTBEAT === 'number' && frame.HEARTBEAT > 0) this.#heartbeatMs = Math.min(frame.HEARTBEAT, MAX_HEARTBEAT_MS);
    this.#touch();
    const sent = this.#delivery.cursor('own') !== undefined || this.#delivery.cursor('broadcast') !== undefined;
    // The previous person's cursors (the tab signed in as somebody else) were
    // sent: the server treats this tab as new, and its RESET for them says nothing was missed.
    this.#foreignCursors = this.#delivery.welcome(frame);
    const resumed = sent && !this.#foreignCursors;
    // Signed in as somebody else: this tab is no longer the previous person's visible one.
    if (this.#welcome !== undefined && this.#welcome.ID !== frame.ID) this.desktop.sync(false);
    this.#welcome = frame;
    this.#welcomeAt = performance.now();
    this.#setState('open');
    // A state listener closed it (close() sent the acks): it is not told it connected.
    if (this.#state !== 'open') return;
    this.desktop.sync(true);
    this.events.emit('connected', { welcome: frame, resumed });
    this.#delivery.flush();
  }

  #onReset(frame: ResetFrame): void {
    // A SEQ that is no cursor (negative, a fraction, past 2^53) would be sent back as one.
    if (!Number.isSafeInteger(frame.SEQ) || frame.SEQ < 0 || typeof frame.EPOCH !== 'string') return;
    const stream = this.#delivery.reset(frame);
    if (this.#foreignCursors && frame.REASON === 'epoch changed') return;
    this.events.emit('reset', { stream, epoch: frame.EPOCH, seq: frame.SEQ, reason: String(frame.REASON ?? '') });
  }
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
