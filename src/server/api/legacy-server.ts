/**
 * The legacy TCP listener (docs/legacy.md, "Requests and answers"): the old daemon's "Internal"
 * plugin on port 19444. Each connection is framed into JSON values
 * (json-stream.ts), each value parsed (parseLegacyRequest) and handled
 * (handleParsedLegacyRequest: what the HTTP API's /api/v1/legacy calls too),
 * and answered in order, one JSON value plus "\n" per request, written in
 * one piece (the old Perl client takes whatever the first read returns as the
 * whole answer).
 */
import net from 'node:net';
import type { Logger } from 'pino';
import { LegacyErrorText, type LegacyAnswer } from '../../protocol/legacy.js';
import type { CommandService } from '../commands/command-service.js';
import type { Notifier } from '../notifier.js';
import { isLoopback, type HeraldOptions } from '../options.js';
import { MAX_JSON_DEPTH } from '../../protocol/json-depth.js';
import { JsonStreamFramer, type FramerEvent } from './json-stream.js';
import { handleParsedLegacyRequest, type LegacyContext } from './legacy-handler.js';
import { legacyError, parseLegacyRequest, type ParsedLegacyRequest } from './legacy-request.js';
import { ThrottledLog } from '../throttled-log.js';
import { outOfDescriptors } from '../file-limit.js';

/** The options the listener reads. */
export type LegacyServerSettings = Pick<
  HeraldOptions,
  'legacyToken' | 'legacyMaxRequestBytes' | 'legacyMaxBufferedBytes' | 'legacyMaxConnections' | 'legacyIdleTimeoutMs' | 'legacyRequestTimeoutMs'
>;

export interface LegacyServerOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  notifier: Notifier;
  /** A running server always sets it; absent, COMMAND answers a clear error. Can be set later. */
  commands?: CommandService | undefined;
  options: LegacyServerSettings;
  logger: Logger;
  /**
   * How long (ms) a MESSAGE or COMMAND answered late (a SILENT one: from its turn, not waited for),
   * and still running, is waited for by the next one on its connection before that one runs
   * anyway; default LATE_REQUEST_WAIT_MS (30 s). Not a user option: tests shorten it.
   */
  lateWaitMs?: number;
  /**
   * Connections open at once, at most: `options.legacyMaxConnections`, or fewer where the
   * open-file limit leaves fewer descriptors for the door (file-limit.ts, connectionCaps).
   */
  maxConnections?: number;
}

/**
 * The old client gives up after 2 s (docs/legacy.md, "Timeliness, fairness, limits"). A request that takes
 * longer than this (a stuck broker or store) is answered with an error
 * instead, well inside that window, and the connection moves on.
 */
export const LEGACY_ANSWER_DEADLINE_MS = 1500;
/**
 * How long a MESSAGE or COMMAND answered late (a SILENT one: from its turn) is
 * waited for by the next one on its connection (see LegacyConnection.#waitFor). Nothing of Herald's own
 * takes this long (the SQLite store's commits are synchronous, a checkpoint
 * holds them 200 ms at most, the local broker publishes at once), so a
 * request still running by then is hung: the connection carries on without
 * it, rather than answer every later request late for ever (the old client
 * keeps its one connection for life).
 */
export const LATE_REQUEST_WAIT_MS = 30_000;
/**
 * Requests framed but not yet handled, per connection, before reading pauses. SILENT sends
 * started but not finished (or not yet given up on, LATE_REQUEST_WAIT_MS) count too: the
 * connection does not wait for them, so without that a peer could start sends without end.
 */
const MAX_QUEUED_REQUESTS = 64;
/** Requests handled in a row on one connection before yielding to the event loop. */
const YIELD_EVERY = 32;
/** On close(), how long connections may take to finish what they hold before they are cut. */
const CLOSE_GRACE_MS = 2000;
/**
 * On shutdown, how long a connection still reads before it stops (LegacyConnection.shutdown):
 * requests a peer wrote before the shutdown began may still be in the kernel's buffer, not yet
 * read, and Node cannot read that buffer synchronously. Paused at once, a SILENT MESSAGE there
 * was lost without a trace (nothing answers it, so its sender never knew) at every restart.
 * Fixed and short, as the HTTP side's wait for its buffered requests (herald.ts,
 * SILENT_CONNECTION_WAIT_MS): a peer that keeps writing does not hold close() past it.
 */
const SHUTDOWN_READ_MS = 50;
/** TCP keep-alive probes find peers that vanished without a FIN (idle connections are legitimate). */
const KEEPALIVE_MS = 60_000;

type Work = { kind: 'request'; value: unknown } | { kind: 'answer'; answer: LegacyAnswer } | { kind: 'fatal'; answer: LegacyAnswer };

/**
 * The answer to a request past its deadline. It is not cancelled (a store
 * write may be half done), so it may still take effect, and the old protocol
 * has no idempotency key: "try again" would invite the same notification
 * twice.
 */
export const LATE_ANSWER = 'the server could not finish this request in time (a dependency is slow); it may still be carried out, so sending it again may repeat it';

/**
 * Whether a request does something beyond its answer (a send, a command
 * started): such requests on one connection are carried out in the order
 * they came, even past a late answer. The others (PING, REQUEST_LIST, PROXY,
 * a refused request) only read, and are answered without waiting for them.
 */
function hasEffects(parsed: ParsedLegacyRequest): boolean {
  return parsed.ok && (parsed.request.body.type === 'MESSAGE' || parsed.request.body.type === 'COMMAND');
}

/**
 * The most of a connection's first bytes held while they may still be an
 * HTTP request line (httpRequestLine). First bytes this long that could
 * still be one are refused as one: a page can send a URL of many KiB, and
 * read as junk its request's body would be carried out; nothing an old
 * client sends begins with a method, a space and a target that long. Held
 * bytes count in the server's held total (legacyMaxBufferedBytes), and are
 * refused against it as a framed request's are; with a legacyMaxRequestBytes
 * below this, that is the most held (LegacyServer.openingLimit).
 */
const MAX_REQUEST_LINE_BYTES = 8192;

const SP = 0x20;
const HTTP_VERSION = Buffer.from('HTTP/');

/** A byte of an HTTP method (`tchar`, RFC 9110 §5.6.2). */
function isMethodByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || '!#$%&\'*+-.^_`|~'.includes(String.fromCharCode(b));
}

/**
 * What a connection's first bytes are: the start of an HTTP request line,
 * `METHOD SP target SP HTTP/` (RFC 9112 §3), not one, or too few to tell
 * yet. Such a connection is refused whole, as Redis refuses one that sends
 * `POST` or `Host:`: a web page's fetch() can reach this port, and its
 * request line and headers were skipped as junk and its body (a broadcast, a
 * command) carried out. A browser's method begins with a capital letter
 * (fetch() sends GET, HEAD or POST, upper-cased, without a CORS preflight,
 * and the preflight is OPTIONS); the old clients' requests are JSON objects, which begin with `{` (or white
 * space), and anything else, such as the `HASH(0x55d…)` a Perl client writes
 * when it forgets to encode its hash, is junk like any other (INCORRECT
 * REQUEST, and the connection goes on), not a reason to close.
 */
function httpRequestLine(bytes: Buffer, limit: number): 'http' | 'not-http' | 'undecided' {
  const first = bytes[0];
  if (first === undefined) return 'undecided';
  if (first < 0x41 || first > 0x5a) return 'not-http'; // A-Z
  let i = 1;
  while (i < bytes.length && isMethodByte(bytes[i]!)) i++;
  if (i < bytes.length) {
    if (bytes[i] !== SP) return 'not-http';
    const target = ++i;
    // A target is visible ASCII (RFC 9112 §3.2): browsers percent-encode the rest.
    while (i < bytes.length && bytes[i]! > SP && bytes[i]! < 0x7f) i++;
    if (i < bytes.length) {
      if (bytes[i] !== SP || i === target) return 'not-http';
      i++;
      for (let k = 0; k < HTTP_VERSION.length && i < bytes.length; k++, i++) {
        if (bytes[i] !== HTTP_VERSION[k]) return 'not-http';
        if (k === HTTP_VERSION.length - 1) return 'http';
      }
    }
  }
  return bytes.length >= limit ? 'http' : 'undecided';
}

class LegacyConnection {
  readonly #socket: net.Socket;
  readonly #server: LegacyServer;
  readonly #framer: JsonStreamFramer;
  readonly #log: Logger;
  readonly #peer: string;
  /** LegacyContext.refused for this connection's requests: made once, not a closure a request. */
  readonly #refused: NonNullable<LegacyContext['refused']>;
  readonly #queue: Work[] = [];
  #busy = false;
  /** No more requests are read: the peer ended, the stream broke, or the server is closing. */
  #ending = false;
  /**
   * The connection's first bytes, held until they tell whether this is an HTTP request
   * (httpRequestLine); undefined once they have.
   */
  #opening: Buffer | undefined = Buffer.alloc(0);
  #partialTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** Set while a shutdown's last read runs (SHUTDOWN_READ_MS); it stops reading when it fires. */
  #shutdownTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #onDeadline: (() => void) | undefined;
  /**
   * Settles once the MESSAGEs and COMMANDs still running on this connection
   * (answered late, or SILENT: nothing waited for them) have finished, or
   * been waited for lateWaitMs: the next one starts after it (#waitFor).
   * Undefined when none is running.
   */
  #unfinished: Promise<void> | undefined;
  /** How many sends #unfinished is made of: counted against MAX_QUEUED_REQUESTS (#queued). */
  #running = 0;
  /** Cut by the server (close()'s grace ran out): requests still queued are dropped. */
  #cut = false;
  #socketClosed = false;
  #settle: (() => void) | undefined;
  /** Bytes of an unfinished request this connection holds, as counted in the server's total. */
  #held = 0;
  /**
   * The rest of a read the framer stopped in once the queue was full
   * (MAX_QUEUED_REQUESTS): framed as the queue drains, before the socket is
   * read again, and counted in #held. Queued whole, one read of 64 KB of `{}`
   * was 32,768 requests, about 3 MB held for a peer that does not read its
   * answers, and 1024 such connections ran the heap out.
   */
  #unread: Buffer | undefined;
  /** The peer half-closed while #unread was still to be framed: the end of input follows it. */
  #endAfterUnread = false;
  /**
   * Settles once the socket has closed and the requests it had delivered are
   * carried out, those answered late included (#waitFor): a peer that goes
   * away does not take its received requests with it (see #drain).
   */
  readonly closed: Promise<void>;

  constructor(socket: net.Socket, server: LegacyServer, log: Logger) {
    this.#socket = socket;
    this.#server = server;
    // An IPv6 address in brackets (RFC 3986 §3.2.2): `::1:40992` reads as an address, not ::1 port 40992.
    const address = socket.remoteAddress ?? '?';
    this.#peer = `${address.includes(':') ? `[${address}]` : address}:${socket.remotePort ?? '?'}`;
    this.#log = log.child({ peer: this.#peer });
    // Counted by address, not peer: a client's every connection has a port of its own.
    this.#refused = (why, fields, message) => server.requestRefusals.log('warn', why, { peer: this.#peer, ...fields }, message, 1, address);
    this.#framer = new JsonStreamFramer({ maxValueBytes: server.settings.legacyMaxRequestBytes, maxDepth: MAX_JSON_DEPTH });
    this.closed = new Promise((resolve) => {
      this.#settle = resolve;
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    if (server.settings.legacyIdleTimeoutMs > 0) {
      socket.setTimeout(server.settings.legacyIdleTimeoutMs, () => {
        this.#log.debug('legacy connection idle: closing');
        this.shutdown();
      });
    }
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (e) => this.#log.debug({ err: e.message }, 'legacy connection error'));
    socket.on('close', () => {
      this.#socketClosed = true;
      this.#hold(0);
      this.#maybeSettle();
      this.#clearPartialTimer();
      if (this.#lingerTimer) clearTimeout(this.#lingerTimer);
      if (this.#shutdownTimer) clearTimeout(this.#shutdownTimer);
      // The deadline timer is left to fire (it is unref'd, and a no-op when idle): a request
      // still in flight after the socket closed must get its deadline, or #drain could wait
      // on a hung dependency for ever and close() with it (a cleared timer cannot be refreshed).
    });
    socket.on('drain', () => this.#maybeResume());
  }

  #onData(data: Buffer): void {
    if (this.#ending) return;
    let chunk = data;
    if (this.#opening !== undefined) {
      // Nothing is framed (so nothing carried out) before the first bytes are known not to be HTTP.
      const opening = this.#opening.length === 0 ? data : Buffer.concat([this.#opening, data]);
      const verdict = httpRequestLine(opening, this.#server.openingLimit);
      if (verdict === 'undecided') {
        // Copied: the socket's chunk may be a pooled buffer that is reused.
        this.#opening = this.#opening.length === 0 ? Buffer.from(opening) : opening;
        this.#hold(opening.length);
        if (this.#overHeld()) {
          this.#refuseOverHeld();
          this.#clearPartialTimer();
          this.#serve();
        } else {
          this.#watchPartial(false);
        }
        return;
      }
      this.#opening = undefined;
      this.#hold(0);
      if (verdict === 'http') {
        this.#refuseHttp();
        return;
      }
      chunk = opening;
    }
    if (this.#unread !== undefined) {
      // Not expected (the socket is paused while a read is left to frame), but order is kept.
      this.#unread = Buffer.concat([this.#unread, chunk]);
      this.#hold(this.#framer.buffered + this.#unread.length);
      this.#socket.pause();
      return;
    }
    this.#frame(chunk);
  }

  /**
   * Frames `chunk` into the queue, up to MAX_QUEUED_REQUESTS; keeps the rest as #unread and
   * stops reading. `owned`: the chunk is #unread's own copy, and its rest is kept without another.
   */
  #frame(chunk: Buffer, owned = false): void {
    const events = this.#framer.push(chunk, Math.max(1, MAX_QUEUED_REQUESTS - this.#queued));
    for (const e of events) this.#queue.push(this.#toWork(e));
    const read = this.#framer.read;
    if (read < chunk.length && !this.#framer.finished) {
      // Copied: the socket's chunk may be a pooled buffer that is reused.
      this.#unread = owned ? chunk.subarray(read) : Buffer.from(chunk.subarray(read));
      this.#socket.pause();
    }
    // A socket closed already holds nothing: its partial request can never complete.
    this.#hold(this.#socketClosed ? 0 : this.#framer.buffered + (this.#unread?.length ?? 0));
    if (this.#overHeld()) {
      this.#refuseOverHeld();
    } else if (this.#framer.finished) {
      // Nothing after an overrun can be trusted: stop reading; the queue ends with the error.
      this.#ending = true;
      this.#socket.pause();
    }
    this.#watchPartial(events.length > 0);
    this.#maybePause();
    this.#serve();
  }

  /**
   * Refuses an HTTP request (httpRequestLine) before anything it sent is read as a request: a web
   * page on this machine can reach the port with fetch(), and its body was run as requests.
   */
  #refuseHttp(): void {
    this.#server.refusals.log('warn', 'http', { peer: this.#peer }, 'legacy connection refused: it began like an HTTP request (a web page\'s cross-protocol request?)');
    this.#queue.push({ kind: 'fatal', answer: legacyError(`${LegacyErrorText.INCORRECT_REQUEST}: this port speaks the legacy JSON protocol, not HTTP; closing`, 'HERALD_ERR_BAD_REQUEST') });
    this.#ending = true;
    this.#clearPartialTimer();
    this.#socket.pause();
    this.#serve();
  }

  /** Whether what this connection holds takes what all of them hold past legacyMaxBufferedBytes. */
  #overHeld(): boolean {
    return this.#held > 0 && this.#server.held > this.#server.settings.legacyMaxBufferedBytes;
  }

  /**
   * What every connection holds of its unfinished request (or of its first
   * bytes, not yet known for HTTP or not), together, is bounded: this one
   * would pass the bound. What it holds is dropped (released now), and the
   * connection answered and closed; requests it sent whole are answered first.
   */
  #refuseOverHeld(): void {
    this.#server.refusals.log('warn', 'legacyMaxBufferedBytes', { peer: this.#peer, held: this.#server.held, legacyMaxBufferedBytes: this.#server.settings.legacyMaxBufferedBytes }, 'legacy request refused: legacyMaxBufferedBytes reached');
    this.#framer.end();
    this.#opening = undefined;
    this.#unread = undefined;
    this.#hold(0);
    this.#queue.push({ kind: 'fatal', answer: legacyError('the server holds too many unfinished requests (legacyMaxBufferedBytes); closing, try again later', 'HERALD_ERR_UNAVAILABLE') });
    this.#ending = true;
    this.#socket.pause();
  }

  /** Records that this connection now holds `bytes` of an unfinished request (the server's total follows). */
  #hold(bytes: number): void {
    this.#server.held += bytes - this.#held;
    this.#held = bytes;
  }

  #toWork(e: FramerEvent): Work {
    switch (e.kind) {
      case 'value':
        return { kind: 'request', value: e.value };
      case 'invalid':
      case 'garbage':
        return { kind: 'answer', answer: legacyError(LegacyErrorText.INCORRECT_REQUEST) };
      case 'too-deep':
        return { kind: 'answer', answer: legacyError(`${LegacyErrorText.INCORRECT_REQUEST}: nested deeper than ${e.limit} levels`, 'HERALD_ERR_BAD_REQUEST') };
      case 'too-large':
        return { kind: 'fatal', answer: legacyError(`request too large: over ${e.limit} bytes (legacyMaxRequestBytes); closing`, 'HERALD_ERR_TOO_LARGE') };
    }
  }

  /** A request that started arriving must finish within legacyRequestTimeoutMs. */
  #watchPartial(progressed: boolean): void {
    if (!(this.#framer.inValue || (this.#opening?.length ?? 0) > 0) || this.#ending || this.#socketClosed) {
      this.#clearPartialTimer();
      return;
    }
    if (this.#partialTimer && !progressed) return;
    this.#clearPartialTimer();
    this.#partialTimer = setTimeout(() => {
      this.#partialTimer = undefined;
      this.#log.debug('legacy request incomplete for too long: closing');
      this.#ending = true;
      // The old client reads TYPE and ERROR only; CODE is Herald's, the same as the HTTP API's 408.
      this.#queue.push({ kind: 'fatal', answer: legacyError('request incomplete for too long (legacyRequestTimeoutMs); closing', 'HERALD_ERR_REQUEST_TIMEOUT') });
      this.#serve();
    }, this.#server.settings.legacyRequestTimeoutMs);
    this.#partialTimer.unref();
  }

  #clearPartialTimer(): void {
    if (this.#partialTimer) clearTimeout(this.#partialTimer);
    this.#partialTimer = undefined;
  }

  #onEnd(): void {
    if (this.#unread !== undefined && !this.#ending) {
      // Its last read is still being framed (#maybeResume): the end follows that.
      this.#endAfterUnread = true;
      return;
    }
    this.#endOfInput();
  }

  /** The peer half-closed: answer what it sent (a trailing number completes now), then end. */
  #endOfInput(): void {
    const opening = this.#opening;
    if (!this.#ending && opening !== undefined) {
      // First bytes not yet known for HTTP or not can no longer bring a body: they are read as
      // requests, framed as any read is (#frame), MAX_QUEUED_REQUESTS at a time. Pushed whole,
      // 8 KiB of `A {}{}…` was 4,095 requests queued at once. The end follows what is left over.
      this.#opening = undefined;
      this.#hold(0);
      if (opening.length > 0) this.#frame(opening, true);
      if (this.#unread !== undefined && !this.#ending) {
        this.#endAfterUnread = true;
        return;
      }
    }
    if (!this.#ending) {
      for (const e of this.#framer.end()) this.#queue.push(this.#toWork(e));
      this.#hold(0);
    }
    this.#ending = true;
    this.#clearPartialTimer();
    this.#serve();
  }

  /**
   * Stops reading after a last read of SHUTDOWN_READ_MS: requests already in the socket when the
   * shutdown began (written, not yet read) are framed and handled as any other (a SILENT MESSAGE
   * carried out, another answered), then the connection ends once what was read is answered.
   * Reading goes on as usual meanwhile (backpressure, limits), and stops at the end of the wait
   * whatever the peer still writes: an unfinished request then is dropped (#stopReading).
   */
  shutdown(): void {
    if (this.#ending || this.#shutdownTimer !== undefined) {
      // Already ending (the peer's end, a fatal answer, or a shutdown before): nothing more is read.
      this.#serve();
      return;
    }
    if (this.#socketClosed || this.#socket.destroyed || this.#socket.readableEnded) {
      this.#stopReading();
      return;
    }
    this.#shutdownTimer = setTimeout(() => {
      this.#shutdownTimer = undefined;
      this.#stopReading();
    }, SHUTDOWN_READ_MS);
  }

  /** Stops reading; answers what is already framed (and #unread), then ends the connection. */
  #stopReading(): void {
    if (this.#ending) {
      this.#serve();
      return;
    }
    const partial = this.#framer.inValue ? this.#framer.buffered : (this.#opening?.length ?? 0);
    if (partial > 0) this.#log.debug({ bytes: partial }, 'legacy request incomplete at shutdown: dropped');
    this.#ending = true;
    this.#clearPartialTimer();
    this.#socket.pause();
    this.#serve();
  }

  /**
   * Ends our side, then keeps reading (and discarding) until the peer closes
   * or a short grace passes: closing with unread input would reset the
   * connection, and a reset can destroy our last answer before the peer
   * reads it.
   */
  #finish(): void {
    this.#ending = true;
    if (this.#lingerTimer || this.#socket.destroyed) return;
    this.#socket.end();
    this.#socket.resume();
    this.#lingerTimer = setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS);
    this.#lingerTimer.unref();
  }

  destroy(): void {
    this.#cut = true;
    this.#socket.destroy();
    // A socket closed already emits no second 'close': what waited for late requests settles here.
    this.#maybeSettle();
  }

  /**
   * legacyRequestTimeoutMs is the peer's to meet, so it does not run while we
   * are not reading: the rest of a request waiting in the socket behind our own
   * backpressure is not late, and was once refused as "incomplete for too long"
   * (a pipelining client that read its answers slowly, or a slow dependency).
   */
  #maybePause(): void {
    if (this.#queued >= MAX_QUEUED_REQUESTS || this.#socket.writableNeedDrain) {
      this.#socket.pause();
      this.#clearPartialTimer();
    }
  }

  /** Requests read and not done: queued, or SILENT sends still running (MAX_QUEUED_REQUESTS). */
  get #queued(): number {
    return this.#queue.length + this.#running;
  }

  #maybeResume(): void {
    if (this.#queued >= MAX_QUEUED_REQUESTS / 2 || this.#socket.writableNeedDrain) return;
    // What was read is carried out though the peer has gone (see #drain), or the server is
    // shutting down (a shutdown answers what was read); not after the server's cut, or a
    // fatal answer, which dropped #unread.
    const unread = this.#unread;
    if (unread !== undefined && !this.#cut) {
      this.#unread = undefined;
      this.#frame(unread, true);
      if (this.#unread !== undefined) return;
      if (this.#endAfterUnread) this.#endOfInput();
    }
    if (this.#ending || this.#socket.destroyed) return;
    if (this.#socket.isPaused()) {
      this.#socket.resume();
      this.#watchPartial(true);
    }
  }

  /**
   * Runs #drain. A failure there is a bug, not the peer's doing (every
   * request's own failure is an answer), and it must cost this one
   * connection, never the process: an unhandled rejection would end it.
   */
  #serve(): void {
    this.#drain().catch((err: unknown) => {
      this.#log.error({ err: (err as Error)?.message }, 'legacy connection failed; closing it');
      this.#socket.destroy();
    });
  }

  /**
   * Handles the queue one request at a time, so answers (and sends) keep their order; a SILENT
   * send is started in its turn and not waited for (#handle).
   * A peer that closes or resets its connection before reading its answers
   * (it wrote five MESSAGEs and closed) still has every request already read
   * carried out, as the old daemon did, which handled each read whole: only
   * the answers are lost. Only the server's own cut (close()'s grace) drops
   * what is queued.
   */
  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    let handled = 0;
    try {
      while (this.#queue.length > 0 && !this.#cut) {
        // Fairness: a peer with thousands of requests queued must not keep
        // the event loop from everyone else (their answers are due in ms too).
        if (++handled % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
        const work = this.#queue.shift() as Work;
        if (work.kind === 'fatal') {
          this.#queue.length = 0;
          this.#unread = undefined;
          this.#write(work.answer);
          this.#finish();
          return;
        }
        const answer = work.kind === 'answer' ? work.answer : await this.#handle(work.value);
        if (answer !== undefined) this.#write(answer);
        // A peer that does not read its answers stops being served (and read):
        // one chunk of tiny requests must not pile up unbounded answers here.
        if (this.#socket.writableNeedDrain) await this.#drained();
        this.#maybeResume();
      }
      if (this.#ending && !this.#socket.destroyed) this.#finish();
    } finally {
      this.#busy = false;
      this.#maybeSettle();
    }
  }

  /** Settles `closed` once the socket is closed and nothing it delivered is still being carried out (or the server cut it). */
  #maybeSettle(): void {
    if (this.#socketClosed && !this.#busy && (this.#unfinished === undefined || this.#cut)) this.#settle?.();
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  async #handle(value: unknown): Promise<LegacyAnswer | undefined> {
    const s = this.#server;
    const started = performance.now();
    // Parsed here, once: what the parse says of SILENT (in DATA, in a JSON string, in an
    // envelope) decides the deadline's answer too, so no answer reaches a client that reads
    // none (it would read it as the answer to its next request, and every later one a request
    // late). The framer refused anything nested past MAX_JSON_DEPTH as it arrived.
    const parsed = parseLegacyRequest(value, { depthChecked: true });
    const ordered = hasEffects(parsed);
    const silent = parsed.ok ? parsed.request.silent : parsed.silent;
    const ctx = { notifier: s.notifier, commands: s.commands, token: s.settings.legacyToken, requireToken: s.requireToken, peer: this.#peer, logger: this.#log, refused: this.#refused };
    if (ordered && silent) {
      // Fire-and-forget (NON_SAFE, Abills::Backend::API's SILENT envelope): there is no answer to
      // wait for, so the connection does not wait. Held for each send's deadline, two or three of
      // them behind a slow store kept is_connected()'s PING past the client's 2 s, and the client
      // then read every later answer one request late. The send still starts after the one before
      // it (sends to one person keep their order), and is kept as unfinished for the next one,
      // `closed` and close() (#waitFor), counted against MAX_QUEUED_REQUESTS meanwhile.
      this.#waitFor(this.#inTurn(parsed, ctx), started);
      return undefined;
    }
    // One timer per connection, re-armed per request: cheaper than a new one each time.
    const deadline = new Promise<'deadline'>((resolve) => {
      this.#onDeadline = () => resolve('deadline');
    });
    if (this.#deadlineTimer) this.#deadlineTimer.refresh();
    else {
      this.#deadlineTimer = setTimeout(() => this.#onDeadline?.(), LEGACY_ANSWER_DEADLINE_MS);
      this.#deadlineTimer.unref();
    }
    // A MESSAGE or COMMAND after one still running (answered late, or SILENT) starts once that
    // one has finished: two sends to one person arrive in the order they came. Its deadline runs
    // meanwhile, and, past it, it is answered late in turn.
    const waited = ordered && this.#unfinished !== undefined;
    const work = ordered ? this.#inTurn(parsed, ctx) : handleParsedLegacyRequest(parsed, ctx);
    try {
      const answer = await Promise.race([work, deadline]);
      if (answer !== 'deadline') return answer;
      this.#log.warn({ ms: Math.round(performance.now() - started), waited }, 'legacy request missed its answer deadline');
      if (ordered) this.#waitFor(work, started);
      return silent ? undefined : legacyError(LATE_ANSWER, 'HERALD_ERR_UNAVAILABLE');
    } finally {
      this.#onDeadline = undefined;
    }
  }

  /**
   * Carries out a MESSAGE or COMMAND once the ones still running before it on this connection
   * (#unfinished) have finished. The server's cut (close()'s grace) drops it unstarted.
   */
  #inTurn(parsed: ParsedLegacyRequest, ctx: LegacyContext): Promise<LegacyAnswer | undefined> {
    const before = this.#unfinished;
    return before === undefined
      ? handleParsedLegacyRequest(parsed, ctx)
      : before.then(() => (this.#cut ? undefined : handleParsedLegacyRequest(parsed, ctx)));
  }

  /**
   * Keeps a MESSAGE or COMMAND still running (answered late, or SILENT and
   * not waited for) for the next one on this connection to wait for
   * (#handle), and for `closed`; until then it counts as a queued request
   * (#queued). Not for ever: one still running lateWaitMs after its late
   * answer (a SILENT one: after its turn came, so that a connection whose
   * peer left is done lateWaitMs after its last request, however many it
   * sent) is taken for hung (LATE_REQUEST_WAIT_MS), and the connection
   * carries on without it.
   */
  #waitFor(work: Promise<unknown>, started: number): void {
    const waitMs = this.#server.lateWaitMs;
    this.#running++;
    this.#maybePause();
    const finished = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#log.error({ waitMs, ms: Math.round(performance.now() - started) }, 'legacy request still unfinished long after it was due: later requests on its connection no longer wait for it');
        resolve();
      }, waitMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      work.then(done, done);
    });
    const unfinished: Promise<void> = finished.then(() => {
      if (this.#unfinished === unfinished) this.#unfinished = undefined;
      this.#running--;
      this.#maybeResume();
      this.#maybeSettle();
    });
    this.#unfinished = unfinished;
  }

  #write(answer: LegacyAnswer): void {
    if (this.#socket.destroyed || !this.#socket.writable) return;
    let line: string;
    try {
      line = JSON.stringify(answer);
    } catch (err) {
      // Requests nested past MAX_JSON_DEPTH are refused before this, so only a bug gets here.
      this.#log.error({ err: (err as Error).message }, 'legacy answer could not be serialised');
      line = JSON.stringify(legacyError('internal error', 'HERALD_ERR_INTERNAL'));
    }
    // One write per answer, newline included: the old client reads one chunk as one answer.
    this.#socket.write(`${line}\n`);
  }
}

export class LegacyServer {
  readonly notifier: Notifier;
  commands: CommandService | undefined;
  readonly settings: LegacyServerSettings;
  /** The listener is not loopback: every request must carry the token. */
  readonly requireToken: boolean;
  /** Bytes of unfinished requests held by all connections together (bounded by legacyMaxBufferedBytes). */
  held = 0;
  /** The most of a connection's first bytes held while they may be an HTTP request line (MAX_REQUEST_LINE_BYTES). */
  readonly openingLimit: number;
  /** See LegacyServerOptions.lateWaitMs. */
  readonly lateWaitMs: number;
  /**
   * The lines of refused connections and requests, bounded: any web page in
   * a browser on the machine can reach this port with fetch(), and each
   * refusal wrote a warning (3,000 connections, 3,000 lines).
   */
  readonly refusals: ThrottledLog;
  /**
   * The lines of refused requests (LegacyContext.refused): 5 a window of each reason one by one,
   * then counted with the addresses refused most often, as the HTTP API's 401s are.
   */
  readonly requestRefusals: ThrottledLog;
  readonly #host: string;
  readonly #port: number;
  readonly #log: Logger;
  readonly #server: net.Server;
  readonly #connections = new Set<LegacyConnection>();
  /** Connections open at once, at most (LegacyServerOptions.maxConnections). */
  readonly maxConnections: number;
  #address: { host: string; port: number } | undefined;
  #closing: Promise<void> | undefined;

  constructor({ host, port, notifier, commands, options, logger, lateWaitMs = LATE_REQUEST_WAIT_MS, maxConnections = options.legacyMaxConnections }: LegacyServerOptions) {
    this.#host = host;
    this.#port = port;
    this.notifier = notifier;
    this.commands = commands;
    this.settings = options;
    this.requireToken = !isLoopback(host);
    if (!Number.isSafeInteger(lateWaitMs) || lateWaitMs < 1 || lateWaitMs > 2 ** 31 - 1) {
      throw new TypeError(`lateWaitMs must be an integer from 1 to 2147483647 (ms), got ${lateWaitMs}`);
    }
    this.lateWaitMs = lateWaitMs;
    // A connection never holds more of its first bytes than of any request.
    this.openingLimit = Math.min(MAX_REQUEST_LINE_BYTES, options.legacyMaxRequestBytes);
    if (this.requireToken && options.legacyToken === '') {
      throw new TypeError(`legacyHost ${host} is not loopback but legacyToken is empty: set a token or bind to 127.0.0.1`);
    }
    this.#log = logger.child({ component: 'legacy' });
    // allowHalfOpen: a peer that writes its request and shuts down its side still gets the answer.
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
    this.maxConnections = Math.min(maxConnections, options.legacyMaxConnections);
    this.#server.maxConnections = this.maxConnections;
    this.refusals = new ThrottledLog(this.#log, () => performance.now(), {
      summary: (byReason, windowMs, perWindow) => ({
        fields: { refused: Object.values(byReason).reduce((a, b) => a + b, 0), byReason, windowMs },
        message: `legacy connections and requests refused and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
      }),
    });
    this.requestRefusals = new ThrottledLog(this.#log, () => performance.now(), {
      budget: 'per key',
      perWindow: 5,
      summary: (byReason, windowMs, perWindow, samples) => ({
        fields: { refused: Object.values(byReason).reduce((a, b) => a + b, 0), byReason, addresses: samples, windowMs },
        message: `legacy requests refused and not logged one by one: more than ${perWindow} of a reason in ${windowMs / 1000} s`,
      }),
    });
    this.#server.on('drop', (d) => this.#refuseConnection(d?.remoteAddress));
  }

  /** Where it listens, once listening. */
  get address(): { host: string; port: number } | undefined {
    return this.#address;
  }

  /** Connections open now, counting those whose peer left while what it had sent is still being carried out. */
  get connections(): number {
    return this.#connections.size;
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.#server.once('error', onError);
      this.#server.listen({ host: this.#host, port: this.#port }, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (e) => {
          // An accept that found no descriptor: one line a window, not one a connection.
          if (outOfDescriptors(e)) this.refusals.log('warn', 'EMFILE', { err: e.message }, 'legacy connection not accepted: the process has no file descriptor left (EMFILE); raise the limit (LimitNOFILE=, ulimit -n)');
          else this.#log.error({ err: e.message }, 'legacy listener error');
        });
        const a = this.#server.address() as net.AddressInfo;
        this.#address = { host: a.address, port: a.port };
        // Not `token`: the logger redacts that key (logger.ts), and the line said "token":"[redacted]".
        this.#log.info({ host: a.address, port: a.port, tokenSet: this.settings.legacyToken !== '' }, 'legacy TCP protocol listening');
        resolve(this.#address);
      });
    });
  }

  #accept(socket: net.Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    // A connection whose peer left still counts while it carries out what it read (maxConnections
    // counts open sockets only): connecting, writing and closing in a loop must not pile up work.
    if (this.#connections.size >= this.maxConnections) {
      this.#refuseConnection(socket.remoteAddress);
      socket.destroy();
      return;
    }
    const conn = new LegacyConnection(socket, this, this.#log);
    this.#connections.add(conn);
    void conn.closed.then(() => this.#connections.delete(conn));
  }

  #refuseConnection(peer: string | undefined): void {
    const why = this.maxConnections < this.settings.legacyMaxConnections ? ', what the open-file limit leaves for the legacy door' : '';
    this.refusals.log('warn', 'legacyMaxConnections', { peer, maxConnections: this.maxConnections }, `legacy connection refused: legacyMaxConnections reached (${this.maxConnections} open${why})`);
  }

  /**
   * Stops accepting, lets every connection read what is already in its socket (SHUTDOWN_READ_MS)
   * and answer what it received, ends them, and cuts any that take longer than a short grace.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => {
        if (!this.#server.listening) return resolve();
        this.#server.close(() => resolve());
      });
      const conns = [...this.#connections];
      for (const c of conns) c.shutdown();
      // Not unref'd: close() is awaited, and must resolve by the grace even when nothing else
      // keeps the process running (a request answered late may be what it waits for).
      const grace = setTimeout(() => {
        for (const c of conns) c.destroy();
      }, CLOSE_GRACE_MS);
      await Promise.all(conns.map((c) => c.closed));
      clearTimeout(grace);
      await stopped;
      this.refusals.flush();
      this.requestRefusals.flush();
    })();
    return this.#closing;
  }
}
