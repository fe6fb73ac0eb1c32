import { randomUUID } from 'node:crypto';
import type { WebSocket } from 'ws';
import type { Logger } from 'pino';
import { CloseCode, CloseReason } from '../../protocol/close-codes.js';
import type { ClientFrame, ErrorFrame, PaceFrame, ResetFrame, WelcomeFrame } from '../../protocol/frames.js';
import { BROADCAST_STREAM, FrameError, parseClientFrame } from '../../protocol/frames.js';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import { principalKey } from '../../protocol/principal.js';
import type { CommandService } from '../commands/command-service.js';
import { isHeraldError } from '../errors.js';
import type { AckBuffer } from './ack-buffer.js';
import type { Frame, FrameOrigin, Tab } from '../hub.js';
import { broadcastStreamKey, withDelivery } from '../notifier.js';
import type { MessageStore, StreamHead } from '../store/message-store.js';
import { replayTurns } from './replay-turns.js';
import { sharedTextFrame, socketTextFrame, textFrame } from './text-frame.js';
import type { ThrottledLog } from '../throttled-log.js';

export interface ConnectionLimits {
  /** Largest frame a tab may send, bytes: a larger one closes it with 4413 (up to gateway.ts's payloadCeiling; past it `ws` closes with 1009). */
  maxFrameBytes: number;
  heartbeatMs: number;
  maxBufferedBytes: number;
  replayBatch: number;
  /**
   * How long a closing tab's socket is kept for the close handshake before it
   * is destroyed, with whatever was still unsent on it (ms). The Gateway gives
   * it to ws for the closes ws makes; the tab itself applies it to a peer that
   * half-closed TCP without a close frame, where ws sets no timer.
   */
  closeTimeoutMs: number;
  /** Frames a tab may send in the last 10 s (counted by the second, at most one second's more: #overLimit) before it is closed with 4429. */
  maxFramesPer10s: number;
  /** Bad frames a tab may send in the last 10 s (as maxFramesPer10s) before it is closed with 4429. */
  maxErrorsPer10s: number;
  /**
   * How many broadcast acks a second the tabs of one kind should send
   * together: each new tab is asked (WELCOME's BROADCAST.ACK_MS) to wait
   * tabs/this seconds on average between its acks, and never less than
   * MIN_BROADCAST_ACK_MS.
   */
  broadcastAcksPerSecond: number;
  /**
   * How many acks of people's own streams all tabs here should send a
   * second together: each new tab is asked (WELCOME's ACK_MS) to wait
   * at least tabs/this seconds between its acks (the browser library's own
   * 1 s when that is longer). 0: no pacing.
   */
  acksPerSecond: number;
}

/** The shortest broadcast ack wait the server asks for: the browser library's own default. */
export const MIN_BROADCAST_ACK_MS = 2000;
/** The browser library's own least wait between acks of a person's stream: a shorter ACK_MS changes nothing. */
const LIBRARY_ACK_MS = 1000;

/**
 * A count of tabs as the waits a tab is told (WELCOME's and PACE's ACK_MS)
 * reveal it: rounded up to a power of two. Worked out from the exact count,
 * those waits told every signed-in page how many tabs this node held, and a
 * user's page how many users were online; rounded, they tell it within a
 * factor of two, and the node's acks stay at most about what the rates ask.
 */
export function coarseTabs(tabs: number): number {
  return tabs <= 1 ? tabs : 2 ** Math.ceil(Math.log2(tabs));
}

/** Whether a tab told to wait `told` ms should be told `now`: one is at least twice the other, counting the library's own least wait. */
function stalePace(now: number, told: number, least: number): boolean {
  const a = Math.max(now, least);
  const b = Math.max(told, least);
  return a >= 2 * b || b >= 2 * a;
}

/** Where a tab's frames are written: the socket under its WebSocket. */
export interface FrameSink {
  /** A Buffer, or a string of characters 0–255 written one byte each (`'latin1'`: socketTextFrame's frames). */
  write(chunk: Buffer | string, encoding: 'latin1'): unknown;
  /**
   * 'finish': ws ended our side of the connection (it has sent its close frame).
   * 'end': the peer ended its side (TCP FIN), with or without a close frame.
   */
  once(event: 'finish' | 'end', listener: () => void): unknown;
  /** 'drain': the backlog was written out (a drain of held frames waits for it); 'close': it never will be. */
  on(event: 'drain' | 'close', listener: () => void): unknown;
  /** 'data': bytes from the peer, after `ws` (whose listener was added first) has read them. */
  on(event: 'data', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

export interface ConnectionDeps {
  store: MessageStore;
  acks: AckBuffer;
  commands: CommandService | undefined;
  logger: Logger;
  limits: ConnectionLimits;
  /** The wall clock, ms since the epoch: what the store's expiry is told in (readAfter). */
  now: () => number;
  /**
   * The clock of this tab's windows, waits and stalls (frames and errors per 10 s, the replay's
   * link wait, the close's ack wait), in ms: monotonic, default performance.now; for tests. Not
   * the wall clock: a step back of it froze the frame window, and a tab at 5% of its frame
   * limit was closed 4429.
   */
  monotonicNow?: () => number;
  /** Open tabs of a kind on this node, or of every kind without one (the tab itself included once it is in the Hub). */
  tabCount: (kind?: PrincipalKind) => number;
  /** Where a tab closed for falling behind (a slow consumer) says so, bounded: a mass of them at once is one summary. */
  behind: ThrottledLog;
}

/**
 * Where a tab wants a stream's replay to start: its last seen SEQ and EPOCH.
 * `start`: the tab was shown nothing of the stream, and the SEQ is where
 * WELCOME's ACKED placed it (`?after=`): what the cap or expiry removed
 * after it is not reported as missed (it has no view to be behind on).
 */
export interface ResumeCursor {
  seq: number;
  epoch?: string | undefined;
  start?: boolean;
}

/** Where a tab wants replay to start, per stream, or nothing (a new tab). */
export interface ResumeCursors {
  own?: ResumeCursor;
  broadcast?: ResumeCursor;
}

/** performance.now, the default monotonic clock of a tab's windows and waits (ConnectionDeps.monotonicNow). */
const monotonicNow = (): number => performance.now();

/** The window of maxFramesPer10s and maxErrorsPer10s (#overLimit), ms. */
const LIMIT_WINDOW_MS = 10_000;
/**
 * Seconds of the clock in #overLimit's ring: the last 10 s touch eleven, the
 * one now and the ten before it (the oldest in part). With ten, a burst late
 * in a second was forgotten 9 s later and a tab could send twice the limit in
 * 10 s.
 */
const LIMIT_SECONDS = 11;
/**
 * A second of the ring is one number: the ms within it of its last frame or
 * error (0 to 1000, below FRAME_UNIT), its frames × FRAME_UNIT and its errors
 * × ERROR_UNIT, all below 2^53. A tab without errors stays below 2^31: a
 * small integer, so the ring is an array of 11 of them (about 140 bytes; a
 * typed array of any size costs more).
 */
const FRAME_UNIT = 1024;
const ERROR_UNIT = 2 ** 31;
/** The most frames and errors one second of the ring holds: a tab past either is past any limit (#overLimit). */
const MAX_SECOND_FRAMES = ERROR_UNIT / FRAME_UNIT - 1;
const MAX_SECOND_ERRORS = 2 ** 53 / ERROR_UNIT - 1;

// No `%` below: on numbers that are not small integers it is a call to fmod, which made counting a
// frame about three times as slow.

/** The slot of `second` in #overLimit's ring (also for a test's clock below 0). */
function slotOf(second: number): number {
  return second - Math.floor(second / LIMIT_SECONDS) * LIMIT_SECONDS;
}

function errorsOf(held: number): number {
  return Math.floor(held / ERROR_UNIT);
}

function framesOf(held: number): number {
  return Math.floor(held / FRAME_UNIT) - errorsOf(held) * (ERROR_UNIT / FRAME_UNIT);
}

/** When in its second a slot's last frame or error came, ms, rounded up. */
function lastMsOf(held: number): number {
  return held - Math.floor(held / FRAME_UNIT) * FRAME_UNIT;
}

/** Live frames held for one tab during its replay, at most. */
const MAX_HELD_FRAMES = 10_000;
/**
 * A heartbeat, in one write: `{"TYPE":"PING"}` for the page (a browser cannot
 * see WebSocket pings) and a WebSocket ping (RFC 6455 §5.5.2: FIN, opcode 9,
 * no payload) that any client's stack answers by itself.
 */
const HEARTBEAT = Buffer.concat([textFrame('{"TYPE":"PING"}'), Buffer.from([0x89, 0x00])]);
const PONG_FRAME = '{"TYPE":"PONG","DATA":"RESPONSE"}';

/**
 * Runs of frames (SentOrder) a tab may leave unacknowledged while Herald
 * keeps the order of what it was written for the old browser script's acks.
 * That script acks every frame within a round trip, and a replay is a run
 * or two per stream, so it stays far below; a tab that does not ack that
 * way (a client of its own that never acks) stops being followed past it,
 * and holds at most this many runs (16 bytes each) until then.
 */
const MAX_SENT_RUNS = 1024;

/**
 * What a replayed frame is taken to weigh before a tab has replayed any: a
 * page is read for what the turn (or the link) has room for, and a first
 * page of replayBatch frames of 16 KB each was 8 MB decoded to send 256 KiB.
 */
const GUESSED_FRAME_BYTES = 4096;

/**
 * The longest a tab that owes acks is given to send them between its close
 * notice and its close frame, when the server ends it in an orderly way (a
 * shutdown, a kick, a session that ended: close(), closeWhenAcked()). A
 * browser library tab answers the notice with its pending acks within a
 * round trip, and its close frame goes out as soon as they are in (the old
 * browser script's acks, sent as it read each frame, are in by then, and it
 * closes on the notice); only a tab that does not answer (a page whose code
 * is stuck) waits this long. A second covers a slow link's round trip (a
 * mobile one, a satellite's 600 ms) and a busy page. Not an option: nothing
 * about a deployment calls for another value; a shutdown's grace bounds it
 * further (Gateway.close).
 */
export const ACK_WAIT_MS = 1000;

/**
 * The slowest link a replay waits for, in bytes a second: a tab whose
 * backlog has not shrunk while its replay waited for the link for as long
 * as this rate takes to send it (about 8.5 minutes for half of the default
 * maxBufferedBytes) is closed as a slow consumer, whatever it acks
 * (#replayStalled). Half of the 8 KB/s that a link should be waited for
 * at: Linux takes more of a backlog only once a third of the socket's send
 * buffer (up to 4 MB) is free, which delays the backlog's shrinking by up
 * to that much, and a slow link's bursts and pauses are waited for too. A
 * much slower one is closed after that long, and resumes from what it read
 * (it took that much). Not an option: the rule only bounds how long a tab
 * that stopped reading holds its backlog.
 */
const SLOWEST_LINK_BYTES_PER_S = 4096;

/**
 * What the heartbeats saw of a tab while its replay waits for the link
 * (Connection's #linkRoom, #replayStalled), from when the wait began.
 */
interface LinkWait {
  /** The tab's unsent bytes at the last heartbeat, after it was written. */
  unsent: number;
  /** Its acknowledged SEQs of both streams, added up, then. */
  acked: number;
  /** When its backlog last shrank, and what was unsent then. */
  movedAt: number;
  movedFrom: number;
  /** When it last showed it reads: its backlog shrank, or it acknowledged more. */
  readAt: number;
}

/** What `#replays` starts from: one settled promise for every tab, not one each. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * Frames a RESUME counts as against maxFramesPer10s. A RESUME asks for a
 * replay of both streams from the store, up to 2×maxPerStream frames, where
 * an ack or a PING costs one: counted as one, a tab could ask for about 100
 * full replays a second. Counted as 100, a tab that sends nothing else may
 * send 10 in 10 s (with the default 1000 frames) and is closed with 4429 at
 * the 11th. The browser library never sends one (it resumes with the query
 * at connect), so a tab that comes near this is not a browser's.
 */
const RESUME_FRAMES = 100;

type ResumeFrame = Extract<ClientFrame, { TYPE: 'RESUME' }>;

/**
 * One browser tab over one WebSocket: the Hub's Tab. It owns the replay
 * seam: while it replays from the store, live frames are held back, then
 * released with anything it already sent dropped, so a tab sees every
 * notification of its streams once and in order.
 */
export class Connection implements Tab {
  /**
   * This tab's session id: WELCOME's SESSION and the `tab` of its log lines.
   * Random, so that it tells the page nothing of the server. It was the
   * process id and a count of the connections the process had taken, which
   * told any signed-in page how busy the node was between two of its visits.
   */
  readonly id: string;
  readonly principal: Principal;
  /** The credential that admitted this tab, for session re-checks. Never logged. */
  readonly credential: string;
  readonly #ws: WebSocket;
  readonly #socket: FrameSink;
  readonly #deps: ConnectionDeps;
  #logger: Logger | undefined;
  #alive = true;
  #closing = false;
  /** Heartbeats seen since this tab began closing, not counting those during an ack wait (#ackWait). */
  #closingTicks = 0;
  /** Live frames held back while replaying; undefined when live. */
  #held: Array<{ frame: Frame; origin: FrameOrigin | undefined }> | undefined = [];
  /**
   * Replays run one after another (a RESUME waits for the replay before it),
   * and live frames stay held until the last queued one ends: two replays
   * interleaving over an asynchronous store would swallow a rewind or let a
   * released live frame jump past what a replay has yet to send.
   */
  #replays: Promise<void> = SETTLED;
  #queuedReplays = 1;
  /**
   * The RESUME whose replay is queued behind the running one and has not
   * started yet. At most one waits: a later RESUME replaces it (see the
   * RESUME case of #handle), so a tab that sends RESUMEs faster than its
   * replays end, or stops reading while it sends them, holds at most two
   * replays (one running, one waiting) however many it sends.
   */
  #waitingResume: ResumeFrame | undefined;
  /** What this tab's replayed frames weighed on average, in the last page that sent any: the next page is read for what the turn has room for. */
  #frameBytes = GUESSED_FRAME_BYTES;
  /** The largest frame this tab was replayed (characters): how long the tab may read one before it can ack it (#idleMs). */
  #largestFrame = 0;
  /** While a replay waits for the link to take the tab's backlog (#linkRoom): what the heartbeats saw of the tab meanwhile (#replayStalled). */
  #linkWait: LinkWait | undefined;
  readonly #lastSent = { own: 0, broadcast: 0 };
  /** The highest SEQ this tab acknowledged (or had when it connected or resumed), per stream: below #lastSent, it owes an ack. */
  readonly #acked = { own: 0, broadcast: 0 };
  /**
   * What this tab was written that the old browser script acknowledges, in
   * order, for that script's acks, which carry no SEQ (#ackUnnumbered).
   * Kept from WELCOME for a tab that connects without a cursor on one of
   * the old daemon's separate ports (the old script's URL is theirs, and it
   * never gives a cursor), until it acks with a SEQ or sends a RESUME
   * (it is a client that numbers its acks), or leaves more than
   * MAX_SENT_RUNS runs unacknowledged; undefined from then on.
   */
  #sentOrder: SentOrder | undefined;
  /** While an orderly close waits for this tab's acks (closeWhenAcked): sends the close frame now. */
  #ackWait: (() => void) | undefined;
  /** When #ackWait is called by its timer (#tick's clock), and that timer. */
  #ackWaitEnds = 0;
  #ackTimer: NodeJS.Timeout | undefined;
  /** The ack waits this tab was last told (WELCOME, or PACE since), worked out from coarseTabs. */
  readonly #toldAckMs = { own: 0, broadcast: 0 };
  /** The same waits worked out from the exact counts of tabs: what #repace compares the waits of now with. */
  readonly #pacedFor = { own: 0, broadcast: 0 };
  /** A PACE frame that goes out with the next frame (#repace). */
  #pace: string | undefined = undefined;
  #epochs = { own: '', broadcast: '' };
  /** The monotonic clock (ConnectionDeps.monotonicNow). */
  readonly #tick: () => number;
  /**
   * #overLimit: when this tab last counted a frame or error, the frames and
   * errors in the last 10 s, and by the second (LIMIT_SECONDS) once they span
   * two seconds. Most tabs send a PONG or an ack now and then and never need
   * the ring (one field fewer than the two windows this replaced); it is let
   * go at the first count after the last 10 s held nothing (a tab answers
   * each heartbeat).
   */
  #limitAt = -Infinity;
  #frames = 0;
  #errors = 0;
  #limitRing: number[] | undefined = undefined;
  #onClosed: (() => void) | undefined;
  #onClosing: (() => void) | undefined;
  /** Destroys the socket of a peer that half-closed TCP and does not read (see 'end' in the constructor). */
  #endTimer: NodeJS.Timeout | undefined;

  /**
   * `socket` is the one `ws` was given: live notifications, WELCOME and
   * heartbeats are written to it as whole frames (text-frame.ts). What `ws`
   * writes itself (close frames, replays, error frames) goes to the same
   * socket, synchronously and in call order: without compression `ws` never
   * queues a frame of its own.
   */
  constructor(ws: WebSocket, socket: FrameSink, principal: Principal, credential: string, deps: ConnectionDeps) {
    this.id = randomUUID();
    this.#ws = ws;
    this.#socket = socket;
    this.principal = principal;
    this.credential = credential;
    this.#deps = deps;
    this.#tick = deps.monotonicNow ?? monotonicNow;
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('pong', () => {
      this.#alive = true;
    });
    ws.on('error', (err) => {
      this.#log.debug({ err: err.message }, 'socket error');
      // ws closes the tab itself after an error (a bad frame: 1002, 1007, 1009),
      // and no longer reads it: its close handshake waits for the peer's FIN.
      this.#beginClosing();
    });
    ws.on('close', () => {
      clearTimeout(this.#endTimer);
      this.#beginClosing();
      this.#ackWait?.();
      this.#onClosed?.();
    });
    // A close the peer began: ws reads its close frame in the socket's 'data' event (its
    // listener runs before ours), answers it and leaves OPEN there, and emits nothing until
    // the peer closes TCP too, or its close timer (closeTimeoutMs) ends the socket. Its
    // answer goes out behind whatever is unsent, so our side 'finish'es only once the peer
    // has read that backlog: a tab that stopped reading and then closed (a page closed on a
    // slow link) stayed in the Hub until closeTimeoutMs, counted online and as delivered
    // while every send to it was dropped. No event of ws's says when a close frame was read
    // (8.x): its readyState after the bytes that brought it does. One closure for both.
    const peerClosing = (): void => {
      if (this.#ws.readyState !== this.#ws.OPEN) this.#beginClosing();
    };
    socket.on('data', peerClosing);
    socket.once('finish', peerClosing);
    // A peer that half-closed TCP without a close frame: ws ends our side too,
    // and sets no timer, but our side never finishes while the peer does not
    // read what is queued: the socket and that backlog were held for good,
    // and the tab stayed in the Hub, counted among the person's tabs.
    socket.once('end', () => {
      this.#beginClosing();
      this.#endTimer = setTimeout(() => this.#ws.terminate(), deps.limits.closeTimeoutMs);
      this.#endTimer.unref();
    });
  }

  /** Made on first use: a child logger per tab would cost every connection memory and time. */
  get #log(): Logger {
    this.#logger ??= this.#deps.logger.child({ tab: this.id, who: principalKey(this.principal) });
    return this.#logger;
  }

  /**
   * Says in the log that this tab is closed for falling behind: an operator
   * whose tabs keep dropping (a slow link, a page that stopped reading, a
   * send rate past what the tabs take) has nothing else to go by.
   */
  #fellBehind(reason: 'slow consumer' | 'replay', fields: object): void {
    if (this.#closing) return;
    const message = reason === 'replay'
      ? 'tab closed: it fell too far behind during its replay (it resumes when it reconnects)'
      : 'tab closed: slow consumer, it did not read what it was sent (it resumes when it reconnects)';
    this.#deps.behind.log('info', reason, { tab: this.id, who: principalKey(this.principal), ...fields }, message);
  }

  onClosed(listener: () => void): void {
    this.#onClosed = listener;
  }

  /**
   * Called once, when this tab begins to close (a close of ours, or the
   * peer's): from then on nothing is sent to it, so it is no longer one of
   * the person's open tabs, though its close handshake may take up to
   * closeTimeoutMs (a peer that does not read).
   */
  onClosing(listener: () => void): void {
    this.#onClosing = listener;
  }

  #beginClosing(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#onClosing?.();
  }

  get isOpen(): boolean {
    return !this.#closing && this.#ws.readyState === this.#ws.OPEN;
  }

  /**
   * Sends WELCOME, replays from the cursors, then goes live. The tab is
   * already in the Hub. Synchronous (no promise) when the store has the heads
   * at hand and there is nothing to catch up on: most connects.
   * `oldPort`: the tab came in on one of the old daemon's separate ports,
   * where the old browser script connects (#sentOrder).
   */
  start(cursors: ResumeCursors, oldPort = false): Promise<void> | undefined {
    // Before anything is written to the tab: WELCOME is the first frame the old script acks.
    // Only on the old ports: following the order costs each frame a search for "PING".
    if (oldPort && !cursors.own && !cursors.broadcast) this.#sentOrder = new SentOrder();
    const own = this.#deps.store.head(principalKey(this.principal));
    const broadcast = this.#deps.store.head(broadcastStreamKey(this.principal.kind));
    const begun = own instanceof Promise || broadcast instanceof Promise
      ? Promise.all([own, broadcast]).then(([o, b]) => this.#begin(cursors, o, b))
      : this.#begin(cursors, own, broadcast);
    // Registered before anything is awaited, so a RESUME frame queues behind it.
    if (begun) this.#replays = begun;
    return begun;
  }

  #begin(cursors: ResumeCursors, own: StreamHead, broadcast: StreamHead): Promise<void> | undefined {
    this.#paceFor(this.#deps.tabCount(), this.#deps.tabCount(this.principal.kind));
    const ownKey = principalKey(this.principal);
    const broadcastKey = broadcastStreamKey(this.principal.kind);
    const welcome: WelcomeFrame = {
      TYPE: 'WELCOME', KIND: this.principal.kind, ID: this.principal.id, SESSION: this.id,
      HEARTBEAT: this.#deps.limits.heartbeatMs, SEQ: own.lastSeq, EPOCH: own.epoch, ACKED: this.#newTabAfter(ownKey, own), ACK_MS: this.#toldAckMs.own,
      BROADCAST: { SEQ: broadcast.lastSeq, EPOCH: broadcast.epoch, ACKED: this.#newTabAfter(broadcastKey, broadcast), ACK_MS: this.#toldAckMs.broadcast },
    };
    this.#send(JSON.stringify(welcome));
    return this.#replay(cursors, own, broadcast);
  }

  /**
   * The mean wait between this tab's broadcast acks. Each tab draws its
   * waits from 0–2× this (src/client/delivery.ts), so with N tabs of the
   * kind open the first ack of a broadcast still comes within about
   * 2–4/broadcastAcksPerSecond seconds, while the kind as a whole sends
   * half to all of broadcastAcksPerSecond of them (N as told: coarseTabs)
   * instead of one per tab per broadcast
   * (10,000 tabs acking every broadcast cost W3 12–18% of its throughput).
   * `tabs`: those of this tab's kind.
   */
  #broadcastAckMs(tabs: number): number {
    return Math.max(MIN_BROADCAST_ACK_MS, Math.round((tabs * 1000) / this.#deps.limits.broadcastAcksPerSecond));
  }

  /**
   * The least mean wait between this tab's acks of its person's stream. An
   * ack costs the server a wake-up and a frame (about 60 µs on the bench's
   * machine, docs/bench-history.md, fourteenth round), and a tab that
   * receives something every second acks every second: with thousands of
   * busy tabs the acks would outnumber the sends. So with N tabs here each
   * is asked to wait N/acksPerSecond seconds, and the node receives at most
   * about acksPerSecond of them however many tabs are open. The browser
   * library waits the longer of this and its own delay (1 s), so below
   * acksPerSecond tabs nothing changes; above, a person's `acknowledged`
   * status and a new tab's replay lag by up to 1.5× this. 0 when acks are
   * not paced. `tabs`: all the node's.
   */
  #ackMs(tabs: number): number {
    const perSecond = this.#deps.limits.acksPerSecond;
    return perSecond > 0 ? Math.round((tabs * 1000) / perSecond) : 0;
  }

  /**
   * Sets the waits this tab is told from the tabs open now: `tabs` on the
   * node, `ofKind` of its kind. It is told them for counts rounded up to a
   * power of two (coarseTabs), so that they do not give the counts away;
   * whether they are stale is judged on the exact counts, so a tab is told
   * again once per doubling or halving as before, and a node whose count
   * goes back and forth across a power of two does not tell its tabs each time.
   */
  #paceFor(tabs: number, ofKind: number): void {
    this.#pacedFor.own = this.#ackMs(tabs);
    this.#pacedFor.broadcast = this.#broadcastAckMs(ofKind);
    this.#toldAckMs.own = this.#ackMs(coarseTabs(tabs));
    this.#toldAckMs.broadcast = this.#broadcastAckMs(coarseTabs(ofKind));
  }

  /**
   * On an ack: when the ack waits asked for now are half or twice what they
   * were when the tab was last told (both from the exact counts), tells it
   * the new ones (PACE). The waits follow the
   * tabs open when a tab connected, so the first tabs after a restart would
   * otherwise keep the short waits of an almost empty node until they
   * reconnect: with 10,000 of them that is up to about 1,200 acks a second
   * instead of acksPerSecond's 250 (docs/bench-history.md, sixteenth round).
   * The frame goes out in the same write as the next frame to the tab: a
   * tab's next ack wait starts with its next notification, and a write of
   * its own cost about as much as the acks it saved in a 5 s W4. A quiet
   * tab is never told; a busy one once per doubling or halving.
   */
  #repace(): void {
    const tabs = this.#deps.tabCount();
    const ofKind = this.#deps.tabCount(this.principal.kind);
    if (!stalePace(this.#ackMs(tabs), this.#pacedFor.own, LIBRARY_ACK_MS) && !stalePace(this.#broadcastAckMs(ofKind), this.#pacedFor.broadcast, MIN_BROADCAST_ACK_MS)) return;
    this.#paceFor(tabs, ofKind);
    const pace: PaceFrame = { TYPE: 'PACE', ACK_MS: this.#toldAckMs.own, BROADCAST: { ACK_MS: this.#toldAckMs.broadcast } };
    this.#pace = JSON.stringify(pace);
  }

  /** Replays both streams, one after the other; a promise only when a store read was needed. */
  #replay(cursors: ResumeCursors, own: StreamHead, broadcast: StreamHead): Promise<void> | undefined {
    let reading: Promise<void> | undefined;
    try {
      // Both streams are placed now, in the turn WELCOME was sent in; only their reads wait for
      // each other. Placed after the own stream's read, a new tab's broadcast start took in acks
      // other tabs gave meanwhile, past broadcasts held for it (dropped as sent), and its
      // broadcast acks were dropped until then (no EPOCH to take them in).
      const ownKey = principalKey(this.principal);
      const broadcastKey = broadcastStreamKey(this.principal.kind);
      const ownUpTo = this.#placeStream('own', ownKey, cursors.own, own);
      const broadcastUpTo = this.#placeStream('broadcast', broadcastKey, cursors.broadcast, broadcast);
      const ownRead = ownUpTo === undefined ? undefined : this.#readStream('own', ownKey, ownUpTo);
      const broadcastRead = () => broadcastUpTo === undefined ? undefined : this.#readStream('broadcast', broadcastKey, broadcastUpTo);
      reading = ownRead ? ownRead.then(broadcastRead) : broadcastRead();
    } catch (err) {
      this.#replayEnded(err);
      throw err;
    }
    if (!reading) {
      this.#replayEnded();
      return undefined;
    }
    return reading.then(() => this.#drainHeld()).then(() => this.#replayEnded(), (err: unknown) => {
      this.#replayEnded(err);
      throw err;
    });
  }

  /**
   * After a replay read from the store, sends the frames held meanwhile (what
   * was published since the tab was registered: the replay stopped at the
   * heads read then) in the order they were published, as the replay sends:
   * in the turns of the event loop replays share (ReplayTurns), and paced by
   * the link (#linkFull). Sent at once, what piled up during a long replay to
   * a slow link tripped the slow-consumer limit as it ended. Frames published
   * while it drains are held behind them, and taken too. Only the last replay
   * queued drains: one queued behind it holds them for its own end.
   */
  async #drainHeld(): Promise<void> {
    const held = this.#held;
    if (!held) return;
    const batch = this.#deps.limits.replayBatch;
    while (held.length > 0 && this.#queuedReplays === 1 && this.isOpen) {
      if (this.#linkFull()) {
        await this.#linkRoom();
        continue;
      }
      const grant = await replayTurns.enter(principalKey(this.principal), batch);
      // A frame held past its notification's expiry is not sent (#releaseHeld).
      const now = this.#deps.now();
      let i = 0;
      while (i < held.length && this.#queuedReplays === 1 && this.isOpen && !replayTurns.full(batch) && !this.#linkFull()) {
        const { frame, origin } = held[i++]!;
        if (origin !== undefined && origin.expiresAt <= now) continue;
        replayTurns.spend(frame.length);
        this.#deliverNow(frame, origin);
      }
      replayTurns.leave(grant);
      // What went out is no longer held (it counts against MAX_HELD_FRAMES).
      held.splice(0, i);
    }
  }

  /**
   * Whether the tab's unsent backlog is past half of maxBufferedBytes: a
   * replay then waits for the link (#linkRoom) before it sends more. A large
   * backlog (up to maxPerStream per stream) to a slow link would otherwise
   * trip the slow-consumer limit, and the tab would be closed on every
   * reconnect, never catching up.
   */
  #linkFull(): boolean {
    return this.#ws.bufferedAmount >= this.#deps.limits.maxBufferedBytes / 2;
  }

  /**
   * Resolves when the socket has written out its backlog, or closed. The
   * replay holds no page meanwhile (#replayPage read only what it sent), so
   * a tab that stops reading holds its backlog and nothing more, and is
   * closed once it shows it no longer reads (heartbeat(), #replayStalled).
   */
  #linkRoom(): Promise<void> {
    const now = this.#tick();
    const unsent = this.#ws.bufferedAmount;
    this.#linkWait = { unsent, acked: this.#acked.own + this.#acked.broadcast, movedAt: now, movedFrom: unsent, readAt: now };
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.#socket.off('drain', done);
        this.#socket.off('close', done);
        this.#linkWait = undefined;
        resolve();
      };
      this.#socket.on('drain', done);
      this.#socket.on('close', done);
    });
  }

  /** One replay ended (with `err` when it failed part-way); the last one queued releases the held live frames. */
  #replayEnded(err?: unknown): void {
    if (err !== undefined) this.#replayFailed();
    if (--this.#queuedReplays === 0) this.#releaseHeld();
  }

  /**
   * A replay that failed part-way (the store erred) leaves a gap the tab does
   * not know of: closed before held frames are released past it, the tab
   * reconnects with its cursor and the gap is replayed then.
   */
  #replayFailed(): void {
    this.closeNow(CloseCode.TRY_AGAIN, 'replay failed, reconnect');
  }

  /**
   * Goes live: sends what arrived during the replays, minus what they already
   * sent and what expired while it was held: a replay paced to a slow link
   * may take minutes, and an expired notification is never delivered
   * (docs/delivery.md, Time-to-live and the cap). Frames sent live are not
   * checked: they go out as published.
   */
  #releaseHeld(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    const now = this.#deps.now();
    for (const h of held) if (h.origin === undefined || h.origin.expiresAt > now) this.deliver(h.frame, h.origin);
  }

  /**
   * The SEQ a tab that gives no cursor is replayed after: the highest acknowledged (docs/delivery.md,
   * "Streams, SEQ and EPOCH"), or the last one the stream no longer retains when that is higher.
   */
  #newTabAfter(key: string, head: StreamHead): number {
    return Math.max(head.ackedSeq, this.#deps.acks.pending(key), head.firstSeq - 1);
  }

  /** Sets the stream's position from the cursor; returns the SEQ to read the store up to, undefined when there is nothing to read. */
  #placeStream(stream: 'own' | 'broadcast', key: string, cursor: ResumeCursor | undefined, head: StreamHead): number | undefined {
    this.#epochs[stream] = head.epoch;
    let after: number;
    if (!cursor) {
      // A new tab: what nobody has acknowledged yet (docs/delivery.md, "Streams, SEQ and EPOCH"),
      // where WELCOME's ACKED said, worked out the same way in the same turn.
      after = this.#newTabAfter(key, head);
    } else if (cursor.epoch !== undefined && cursor.epoch !== head.epoch) {
      after = this.#newTabAfter(key, head);
      this.#reset(stream, head.epoch, after, 'epoch changed');
    } else if (cursor.seq > head.lastSeq) {
      // Ahead of the stream: its history was lost without our knowing. Start over, loudly.
      after = this.#newTabAfter(key, head);
      this.#reset(stream, head.epoch, after, 'epoch changed');
    } else {
      after = cursor.seq;
      if (after < head.firstSeq - 1) {
        after = head.firstSeq - 1;
        // Not to a tab placed by WELCOME's ACKED: the SEQ floor rises with every stream pruning
        // evicts, anyone's, and took a tab that was shown nothing for one that missed something.
        if (!cursor.start) this.#reset(stream, head.epoch, after, 'too far behind');
      }
    }
    // Nothing before the oldest retained SEQ can be replayed: start after it,
    // as the RESETs above say, so that #readStream finds a gap only where the
    // stream moved on during the replay (a new tab is told of none).
    after = Math.max(after, head.firstSeq - 1);
    // A RESUME on a live tab rewinds: the tab says what it really has.
    this.#lastSent[stream] = after;
    // What the tab had before this replay is not waited for at shutdown: a
    // tab flushes its pending acks when it (re)connects.
    this.#acked[stream] = after;
    // Most tabs have nothing to catch up on: no store read. Anything appended
    // after `head` was read is published, and is held for this tab meanwhile.
    // The replay stops below what is held, too: published since this tab (or
    // a RESUME's replay) began holding, it goes out from #held after the
    // replay, in publish order with the live-only frames among it. A RESUME
    // reads its heads long after such frames were held, and sent them from
    // the store ahead of the live-only ones published before them.
    const upTo = Math.min(head.lastSeq, this.#firstHeld(stream) - 1);
    return upTo <= after ? undefined : upTo;
  }

  /** The lowest SEQ of `stream` among the held frames (Infinity: none). */
  #firstHeld(stream: 'own' | 'broadcast'): number {
    let first = Infinity;
    for (const { origin } of this.#held ?? []) if (origin?.stream === stream && origin.seq < first) first = origin.seq;
    return first;
  }

  /**
   * Replays the stream after #lastSent up to `upTo`, the head read once this
   * tab was registered: what was appended after it is published to the tab
   * and held (#held), in the order it was sent, live-only sends between.
   * Read from the store too, it went out inside the replay, ahead of a
   * live-only send made before it (held until the replay ended): a batch's
   * live item then reached a reconnecting tab after the stored item behind it.
   * A page at a time, in the turns of the event loop that replays share
   * (ReplayTurns), and paced by the link: it waits while the tab's backlog is
   * past half of maxBufferedBytes (#linkFull).
   */
  async #readStream(stream: 'own' | 'broadcast', key: string, upTo: number): Promise<void> {
    const person = principalKey(this.principal);
    for (;;) {
      if (!this.isOpen || this.#lastSent[stream] >= upTo) return;
      if (this.#linkFull()) {
        await this.#linkRoom();
        continue;
      }
      const grant = await replayTurns.enter(person, this.#deps.limits.replayBatch);
      let more: boolean;
      try {
        more = await this.#replayPage(stream, key, upTo);
      } finally {
        replayTurns.leave(grant);
      }
      if (!more) return;
    }
  }

  /**
   * Reads a page after #lastSent, of what this turn and the link have room
   * for (by what this tab's frames weighed so far: #frameBytes), and sends
   * it. What the turn or the link had no room for after all is dropped, and
   * read again from #lastSent when there is: a tab that stops reading is
   * never left holding a page (500 notifications of up to 16 KB decoded, for
   * as long as it answers heartbeats). False when the stream is replayed up
   * to `upTo` or its end.
   */
  async #replayPage(stream: 'own' | 'broadcast', key: string, upTo: number): Promise<boolean> {
    // It may have closed while it waited for its turn.
    if (!this.isOpen) return false;
    const batch = this.#deps.limits.replayBatch;
    const room = Math.min(replayTurns.bytesLeft(), this.#deps.limits.maxBufferedBytes / 2 - this.#ws.bufferedAmount);
    const limit = Math.max(1, Math.min(replayTurns.framesLeft(batch), Math.ceil(room / this.#frameBytes)));
    // The clock is read for each page: a replay paced to a slow link may
    // take minutes, and what expired meanwhile is not sent.
    const page = await this.#deps.store.readAfter(key, this.#lastSent[stream], limit, this.#deps.now());
    // The stream moved on while this replay waited (for the socket, between
    // pages): sends meanwhile pushed out, by the cap, some of what it had yet
    // to send. Said as at the start of a replay, never skipped silently. The
    // gap ends at `upTo` at most: what follows it is held for the tab (#held),
    // not lost, though the store no longer has it, and goes out after the
    // replay; a RESET past it made #deliverNow drop those frames as sent.
    if (page.firstSeq - 1 > this.#lastSent[stream]) {
      const to = Math.min(page.firstSeq - 1, upTo);
      this.#lastSent[stream] = to;
      this.#reset(stream, page.epoch, to, 'too far behind');
      if (to >= upTo) return false;
    }
    let sent = 0;
    let bytes = 0;
    let largest = 0;
    try {
      for (const m of page.messages) {
        if (m.seq <= this.#lastSent[stream]) continue;
        if (m.seq > upTo || !this.isOpen) return false;
        // Before the frame, not after: a replay's last frame is followed by the held live ones at
        // once. The rest of the page is dropped here, and read again when there is room.
        if (replayTurns.full(batch) || this.#linkFull()) return true;
        this.#lastSent[stream] = m.seq;
        const frame = withDelivery(m.json, m.seq, page.epoch, stream === 'broadcast');
        replayTurns.spend(frame.length);
        sent++;
        bytes += frame.length;
        if (frame.length > largest) largest = frame.length;
        if (this.#sentOrder) this.#noteSent(frame, { stream, seq: m.seq, expiresAt: m.expiresAt });
        this.#ws.send(frame);
      }
    } finally {
      if (sent > 0) this.#frameBytes = Math.ceil(bytes / sent);
      if (largest > this.#largestFrame) this.#largestFrame = largest;
    }
    return page.messages.length >= limit;
  }

  #reset(stream: 'own' | 'broadcast', epoch: string, seq: number, reason: ResetFrame['REASON']): void {
    const frame: ResetFrame = stream === 'own'
      ? { TYPE: 'RESET', EPOCH: epoch, SEQ: seq, REASON: reason }
      : { TYPE: 'RESET', STREAM: BROADCAST_STREAM, EPOCH: epoch, SEQ: seq, REASON: reason };
    this.#send(JSON.stringify(frame));
  }

  deliver(frame: Frame, origin?: FrameOrigin): void {
    if (this.#held) {
      // Live frames pile up while a long replay is paced to a slow reader:
      // past a bound, the tab reconnects and resumes from what it has.
      if (this.#held.length >= MAX_HELD_FRAMES) {
        this.#fellBehind('replay', { held: this.#held.length });
        this.closeNow(CloseCode.TRY_AGAIN, 'too far behind, reconnect');
        return;
      }
      this.#held.push({ frame, origin });
      return;
    }
    this.#deliverNow(frame, origin);
  }

  /** Sends a live frame now, unless the replay already sent its SEQ. */
  #deliverNow(frame: Frame, origin?: FrameOrigin): void {
    if (origin) {
      if (origin.seq <= this.#lastSent[origin.stream]) return;
      this.#lastSent[origin.stream] = origin.seq;
    }
    this.#send(frame, origin);
  }

  /** Writes a frame (a stored notification's with its `origin`), unless the tab is closing or fell behind. */
  #send(frame: Frame, origin?: FrameOrigin): void {
    if (!this.isOpen) {
      // ws left OPEN without our hearing of it (see peerClosing): the close began, and this
      // frame is not sent, so the tab leaves the Hub before the send counts it.
      this.#beginClosing();
      return;
    }
    if (this.#ws.bufferedAmount > this.#deps.limits.maxBufferedBytes) {
      // It will resume where it left off when it reconnects.
      this.#fellBehind('slow consumer', { bufferedBytes: this.#ws.bufferedAmount, maxBufferedBytes: this.#deps.limits.maxBufferedBytes });
      this.closeNow(CloseCode.TOO_MANY, CloseReason.SLOW_CONSUMER);
      return;
    }
    // One write of the whole frame, built once when many tabs share it (a
    // Buffer then; one tab's ASCII frame is a latin1 string, see socketTextFrame).
    const bytes = typeof frame === 'string' ? socketTextFrame(frame) : sharedTextFrame(frame);
    if (this.#pace === undefined) {
      if (this.#sentOrder) this.#noteSent(frame, origin);
      this.#socket.write(bytes, 'latin1');
      return;
    }
    // A PACE waiting for this frame goes first, in the same write when both are strings.
    if (this.#sentOrder) {
      this.#noteSent(this.#pace, undefined);
      this.#noteSent(frame, origin);
    }
    const pace = socketTextFrame(this.#pace);
    this.#pace = undefined;
    if (typeof pace === 'string' && typeof bytes === 'string') {
      this.#socket.write(pace + bytes, 'latin1');
    } else {
      this.#socket.write(pace, 'latin1');
      this.#socket.write(bytes, 'latin1');
    }
  }

  /** Called by the Gateway's heartbeat timer. Returns false when the tab was closed for silence, or for a replay its tab stopped taking. */
  heartbeat(): boolean {
    if (!this.isOpen) {
      // ws left OPEN without our hearing of it (see peerClosing): the close began.
      this.#beginClosing();
      // A close that the peer has not answered for a whole heartbeat: it is
      // gone. It left the Hub when the close began (onClosing); this frees
      // its socket before closeTimeoutMs when heartbeats are shorter.
      // Not while an orderly close still waits for the tab's acks: its close
      // frame has not gone out, and a heartbeat shorter than ACK_WAIT_MS
      // ended the socket first (1006, and the acks on their way lost).
      if (!this.#ackWait && ++this.#closingTicks > 1) this.#ws.terminate();
      return true;
    }
    if (!this.#alive) {
      this.closeNow(CloseCode.TIMEOUT, CloseReason.HEARTBEAT_TIMEOUT);
      return false;
    }
    const wait = this.#linkWait;
    if (wait && this.#replayStalled(wait)) return false;
    this.#alive = false;
    this.#socket.write(HEARTBEAT, 'latin1');
    // The heartbeat is not part of what the tab has to take by the next one.
    if (wait) wait.unsent = this.#ws.bufferedAmount;
    return true;
  }

  /**
   * At a heartbeat while a replay waits for the link (#linkRoom): closes the
   * tab as a slow consumer when it no longer shows that it reads. Any frame
   * answers a heartbeat, and a client can send them without reading
   * (unasked pongs): it held its backlog for as long as it did. The live
   * path closes such a tab once its backlog passes maxBufferedBytes, which
   * a paced replay never lets it reach.
   *
   * Its unsent bytes alone do not tell: node hands the socket everything
   * queued behind a pending write as one batch (up to about half of
   * maxBufferedBytes), and counts all of it unsent until its last byte is
   * written, so on a link that reads steadily they drop once a batch, which
   * may take many heartbeats (2 MB is a default heartbeat at 80 KB/s): such
   * links were closed. So a tab shows that it reads when, since the last
   * heartbeat, its backlog shrank (a batch went out) or it acknowledged a
   * notification further (acks count only as far as it was written,
   * #acknowledge). It is closed when it showed neither for a heartbeat and
   * #idleMs (by default, the second or third heartbeat after it stopped
   * reading): a tab that stopped reading is closed about as soon as before,
   * one that reads and acks as the browser library does is not. And
   * whatever it acks, when its backlog has not shrunk for as long as
   * SLOWEST_LINK_BYTES_PER_S takes to send it: a client that acks what it
   * was written without reading it cannot keep its replay waiting one
   * notification at a time.
   */
  #replayStalled(wait: LinkWait): boolean {
    const now = this.#tick();
    const unsent = this.#ws.bufferedAmount;
    const acked = this.#acked.own + this.#acked.broadcast;
    if (unsent < wait.unsent) {
      wait.movedAt = wait.readAt = now;
      wait.movedFrom = unsent;
    } else if (acked > wait.acked) {
      wait.readAt = now;
    }
    wait.unsent = unsent;
    wait.acked = acked;
    const heartbeatMs = this.#deps.limits.heartbeatMs;
    const idle = now - wait.readAt >= heartbeatMs + this.#idleMs();
    const slow = now - wait.movedAt >= Math.max(heartbeatMs, (wait.movedFrom * 1000) / SLOWEST_LINK_BYTES_PER_S);
    if (!idle && !slow) return false;
    this.#fellBehind('slow consumer', { bufferedBytes: unsent, maxBufferedBytes: this.#deps.limits.maxBufferedBytes, replaying: true });
    this.closeNow(CloseCode.TOO_MANY, CloseReason.SLOW_CONSUMER);
    return true;
  }

  /**
   * How long a tab that reads its replay may go without acking more, past a
   * heartbeat: the browser library acks after a wait drawn from up to 1.5×
   * the one it was asked for on its person's stream (or its own second,
   * when longer) and up to 2× the broadcast one (src/client/delivery.ts),
   * counted from the first notification it reads after an ack; so within
   * two of the longest, and the time the largest notification it was
   * replayed takes at SLOWEST_LINK_BYTES_PER_S.
   */
  #idleMs(): number {
    const ackWait = Math.max(LIBRARY_ACK_MS, this.#toldAckMs.own, this.#toldAckMs.broadcast);
    return 2 * ackWait + (this.#largestFrame * 1000) / SLOWEST_LINK_BYTES_PER_S;
  }

  /**
   * An orderly close decided by the server (a kick, a session that ended):
   * the close notice now, the close frame once the tab has acknowledged what
   * it was sent, within ACK_WAIT_MS (closeWhenAcked). A tab that breaks the
   * protocol, falls behind or goes silent is closed at once (closeNow).
   */
  close(code: number, reason: string): void {
    this.closeWhenAcked(code, reason, ACK_WAIT_MS);
  }

  /** The close notice and the close frame together (or the socket ended, when it is not open). */
  closeNow(code: number, reason: string): void {
    if (this.#closing) return;
    this.#beginClosing();
    if (this.#ws.readyState === this.#ws.OPEN) {
      this.#ws.send(JSON.stringify({ TYPE: 'close', REASON: reason }));
      this.#ws.close(code, closeFrameReason(reason));
    } else {
      this.#ws.terminate();
    }
  }

  /**
   * An orderly close: the close notice now, the close frame once this tab
   * has acknowledged everything it was sent, or after `waitMs`, whichever
   * comes first; at once when it owes no ack. A page's code runs only after
   * its browser has read the frames that follow the notice, and Chromium
   * answers a close frame by itself, before that: the acks the browser
   * library sends from the notice's handler (its pending batch) were then
   * sent on a closing socket and lost, and the person's next new tab was
   * replayed what they had already been shown. Acks that arrive meanwhile
   * are recorded as any other (#onMessageWhileClosing). A client that
   * ignores the notice (a page whose code is stuck) gets its close frame
   * when `waitMs` ends. Nothing is sent to the tab meanwhile: it left
   * the Hub when the notice went out (onClosing). Called again during the
   * wait, the first call's code and reason stand, and the wait ends by the
   * sooner of the two bounds.
   */
  closeWhenAcked(code: number, reason: string, waitMs: number): void {
    if (this.#closing) {
      // Already closing: the first close's code and reason stand. A shutdown
      // during a kick's wait bounds that wait by its own, shorter one: the
      // shutdown ends the socket when its grace is over, and a close frame
      // still waited for then never went out (1006, and the browser library
      // reconnects as after a network failure instead of being told why).
      if (this.#ackWait && this.#ackWaitEnds > this.#tick() + waitMs) this.#waitForAcks(waitMs);
      return;
    }
    if (waitMs <= 0 || this.#ws.readyState !== this.#ws.OPEN || this.#owesNoAck()) {
      this.closeNow(code, reason);
      return;
    }
    this.#beginClosing();
    this.#ws.send(JSON.stringify({ TYPE: 'close', REASON: reason }));
    this.#ackWait = () => {
      this.#ackWait = undefined;
      clearTimeout(this.#ackTimer);
      // The peer may have closed meanwhile (ws answered its close frame).
      if (this.#ws.readyState === this.#ws.OPEN) this.#ws.close(code, closeFrameReason(reason));
    };
    this.#waitForAcks(waitMs);
  }

  /** (Re)sets the end of the ack wait: the close frame goes out `waitMs` from now, or now. */
  #waitForAcks(waitMs: number): void {
    clearTimeout(this.#ackTimer);
    if (waitMs <= 0) {
      this.#ackWait?.();
      return;
    }
    this.#ackWaitEnds = this.#tick() + waitMs;
    this.#ackTimer = setTimeout(() => this.#ackWait?.(), waitMs);
    this.#ackTimer.unref();
  }

  /** Whether this tab has acknowledged everything of its streams it was sent. */
  #owesNoAck(): boolean {
    return this.#acked.own >= this.#lastSent.own && this.#acked.broadcast >= this.#lastSent.broadcast;
  }

  /** Ends the socket now, without the close handshake (shutdown after the grace period). */
  terminate(): void {
    this.#beginClosing();
    this.#ws.terminate();
  }

  /**
   * Counts `weight` more frames (or errors); true when the last 10 s hold more
   * than the limit. Counted by the second of the clock, in a ring of the
   * eleven seconds the last 10 s touch; the oldest counts until its last frame
   * or error is 10 s old, so the count is never short and is over by at most
   * that second's frames from before the last 10 s. Two windows of 10 s, the
   * earlier taken as spread evenly over it, closed a tab that sent 950 frames
   * at once and 100 more 10.5 s later: a window began at a burst. O(1), and no
   * allocation but the ring's when a tab's frames first span two seconds.
   */
  #overLimit(kind: 'frames' | 'errors', weight = 1): boolean {
    // A clock that stepped back counts as standing still: the ring's seconds only go forward.
    const now = Math.max(this.#tick(), this.#limitAt);
    const second = Math.floor(now / 1000);
    let ring = this.#limitRing;
    if (now - this.#limitAt >= LIMIT_WINDOW_MS) {
      // Nothing counted is in the last 10 s (nor was anything counted yet: #limitAt starts at -Infinity).
      this.#frames = 0;
      this.#errors = 0;
      ring = this.#limitRing = undefined;
    } else {
      const was = Math.floor(this.#limitAt / 1000);
      if (second !== was) {
        if (!ring) {
          // All counted so far is in the second of #limitAt, its last at #limitAt (rounded up: a second is never let go early).
          ring = this.#limitRing = new Array<number>(LIMIT_SECONDS).fill(0);
          ring[slotOf(was)] = this.#errors * ERROR_UNIT + this.#frames * FRAME_UNIT + Math.ceil(this.#limitAt) - was * 1000;
        }
        // The seconds after `was` up to this one had nothing: their slots hold seconds 11 or more before them.
        for (let s = was + 1; s <= second; s++) this.#forget(ring, slotOf(s));
      }
      if (ring) {
        // The oldest second (10 before this one) counts while its last frame or error is within the
        // last 10 s: until this second is further along than it was then.
        const oldest = slotOf(second + 1);
        const held = ring[oldest]!;
        if (held !== 0 && lastMsOf(held) <= now - second * 1000) this.#forget(ring, oldest);
        if (this.#frames === 0 && this.#errors === 0) ring = this.#limitRing = undefined;
      }
    }
    this.#limitAt = now;
    // Without a ring, all counted is in this second.
    const slot = slotOf(second);
    const held = ring ? ring[slot]! : this.#errors * ERROR_UNIT + this.#frames * FRAME_UNIT;
    let frames = framesOf(held);
    let errors = errorsOf(held);
    if (kind === 'frames') {
      if (frames + weight > MAX_SECOND_FRAMES) return true;
      frames += weight;
      this.#frames += weight;
    } else {
      if (errors + weight > MAX_SECOND_ERRORS) return true;
      errors += weight;
      this.#errors += weight;
    }
    if (ring) ring[slot] = errors * ERROR_UNIT + frames * FRAME_UNIT + Math.ceil(now) - second * 1000;
    return kind === 'frames' ? this.#frames > this.#deps.limits.maxFramesPer10s : this.#errors > this.#deps.limits.maxErrorsPer10s;
  }

  /** Takes one second of the ring out of the count (#overLimit). */
  #forget(ring: number[], slot: number): void {
    const held = ring[slot]!;
    this.#frames -= framesOf(held);
    this.#errors -= errorsOf(held);
    ring[slot] = 0;
  }

  /** Takes back a frame #overLimit counted in this same turn (#ackUnnumbered), so in the second of #limitAt. */
  #uncountFrame(): void {
    this.#frames--;
    const ring = this.#limitRing;
    if (ring) {
      const slot = slotOf(Math.floor(this.#limitAt / 1000));
      ring[slot] = ring[slot]! - FRAME_UNIT;
    }
  }

  #error(code: string, message: string): void {
    if (this.#overLimit('errors')) {
      this.closeNow(CloseCode.TOO_MANY, CloseReason.TOO_MANY);
      return;
    }
    const frame: ErrorFrame = { TYPE: 'ERROR', ERROR: code, MESSAGE: message };
    this.#send(JSON.stringify(frame));
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#alive = true;
    if (this.#closing) {
      this.#onMessageWhileClosing(data, isBinary);
      return;
    }
    if (data.length > this.#deps.limits.maxFrameBytes) {
      this.closeNow(CloseCode.TOO_LARGE, CloseReason.TOO_LARGE);
      return;
    }
    if (this.#overLimit('frames')) {
      this.closeNow(CloseCode.TOO_MANY, CloseReason.TOO_MANY);
      return;
    }
    if (isBinary) {
      this.#error(FrameError.BAD_JSON, CloseReason.BINARY);
      return;
    }
    const parsed = parseClientFrame(data.toString('utf8'));
    if (!parsed.ok) {
      this.#error(parsed.error.ERROR, parsed.error.MESSAGE);
      return;
    }
    // One frame was counted above; a RESUME weighs RESUME_FRAMES in all.
    if (parsed.frame.TYPE === 'RESUME' && this.#overLimit('frames', RESUME_FRAMES - 1)) {
      this.closeNow(CloseCode.TOO_MANY, CloseReason.TOO_MANY);
      return;
    }
    const failed = (err: unknown): void => {
      this.#log.warn({ err: (err as Error).message }, 'frame handling failed');
      this.#error('INTERNAL', 'the server could not handle that frame');
    };
    try {
      this.#handle(parsed.frame)?.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /**
   * A frame that arrives after this side began to close: the tab sent it
   * before it saw the close, and the closing handshake exists so that such
   * data is not lost (RFC 6455 §1.4). An ack among them is recorded: the
   * browser library does not send an ack again once it went out, so one
   * dropped here left the notification unacknowledged for good (its status
   * said so, and the person's next new tab was sent it again). Nothing else
   * is answered, as nothing more may be sent (§5.5.1), and the frame limit
   * still bounds what is parsed.
   */
  #onMessageWhileClosing(data: Buffer, isBinary: boolean): void {
    if (isBinary || data.length > this.#deps.limits.maxFrameBytes || this.#overLimit('frames')) return;
    const parsed = parseClientFrame(data.toString('utf8'));
    if (parsed.ok && parsed.frame.TYPE === 'RESPONSE') this.#handle(parsed.frame);
  }

  /** Acks, pings and pongs (nearly every frame a tab sends) are handled at once, without a promise. */
  #handle(frame: ClientFrame): Promise<void> | undefined {
    switch (frame.TYPE) {
      case 'PING':
        this.#send(PONG_FRAME);
        return undefined;
      case 'PONG':
        return undefined;
      case 'RESPONSE': {
        if (frame.SEQ === undefined) {
          this.#ackUnnumbered();
          return undefined;
        }
        // A client that numbers its acks: the order of what it was sent is not needed.
        this.#sentOrder = undefined;
        const stream = frame.STREAM === BROADCAST_STREAM ? 'broadcast' : 'own';
        // An ack numbered in a history this tab no longer follows (sent just before a RESET) means nothing now.
        if (frame.EPOCH !== undefined && frame.EPOCH !== this.#epochs[stream]) return undefined;
        this.#acknowledge(stream, frame.SEQ);
        this.#repace();
        return undefined;
      }
      case 'CLOSE_REQUEST':
        this.closeNow(CloseCode.NORMAL, CloseReason.CLIENT_REQUEST);
        return undefined;
      case 'RESUME': {
        // The old script never resumes, and a rewind would leave SEQs in #sentOrder that this tab is sent again.
        this.#sentOrder = undefined;
        const waiting = this.#waitingResume;
        if (waiting) {
          // A replay is already queued and has not started: this RESUME takes
          // its place instead of queueing another. The latest cursor wins: it
          // says what the tab has now, and replaying an older one first would
          // only send again what this one is about to send. A broadcast cursor
          // the waiting one gave is kept when this one gives none, as the two
          // run one after the other would have replayed it.
          this.#waitingResume = frame.BROADCAST || !waiting.BROADCAST ? frame : { ...frame, BROADCAST: waiting.BROADCAST };
          return undefined;
        }
        this.#waitingResume = frame;
        this.#held ??= [];
        this.#queuedReplays++;
        // Cursors are taken when this replay starts, after the one before it ended.
        const run = async (): Promise<void> => {
          const resume = this.#waitingResume ?? frame;
          this.#waitingResume = undefined;
          // The tab began to close while this replay waited: nothing will be
          // sent, and its cursors must stay what the tab was sent. Rewound to
          // the RESUME's, an ack the tab sends during a kick's ack wait (of
          // what it was sent before) was cut to them, and lost.
          if (!this.isOpen) {
            this.#replayEnded();
            return;
          }
          let own: StreamHead;
          let broadcast: StreamHead;
          try {
            [own, broadcast] = await Promise.all([
              this.#deps.store.head(principalKey(this.principal)),
              this.#deps.store.head(broadcastStreamKey(this.principal.kind)),
            ]);
          } catch (err) {
            this.#replayEnded(err);
            throw err;
          }
          const cursors: ResumeCursors = { own: { seq: resume.SEQ, epoch: resume.EPOCH } };
          if (resume.BROADCAST) cursors.broadcast = { seq: resume.BROADCAST.SEQ, epoch: resume.BROADCAST.EPOCH };
          else cursors.broadcast = { seq: this.#lastSent.broadcast, epoch: this.#epochs.broadcast };
          await this.#replay(cursors, own, broadcast);
        };
        this.#replays = this.#replays.then(run, run);
        return this.#replays;
      }
      case 'COMMAND_CANCEL':
        return this.#cancelCommand(frame.COMMAND_ID);
    }
  }

  /** Records that this tab acknowledged `stream` up to `seq`, as far as it was sent it. */
  #acknowledge(stream: 'own' | 'broadcast', seq: number): void {
    // Acknowledging beyond what this tab was sent would mark others' messages read.
    const upTo = Math.min(seq, this.#lastSent[stream]);
    if (upTo > 0) {
      this.#deps.acks.record(stream === 'own' ? principalKey(this.principal) : broadcastStreamKey(this.principal.kind), upTo);
      if (upTo > this.#acked[stream]) this.#acked[stream] = upTo;
    }
    if (this.#ackWait && this.#owesNoAck()) this.#ackWait();
  }

  /**
   * An ack without a SEQ: the old browser script's
   * `{"TYPE":"RESPONCE","RESPONCE":"RECEIVED"}`, which it sends for every
   * frame it reads except `PING` (it answers PONG), `PONG` and `close`
   * (websocket_client.js, kept during a migration: README, step 4), one
   * each, in the order read. So it acknowledges the oldest frame in
   * #sentOrder: a stored one as a RESPONSE with that SEQ (and `STREAM:"*"`
   * for a broadcast) would. While these were ignored, an old script's page
   * was replayed the whole day's notifications at every page load. Should
   * Herald count a frame the script does not ack, its acks only lag (the
   * frame taken was written before the one acked): they never mark read
   * what the tab was not sent.
   */
  #ackUnnumbered(): void {
    const entry = this.#sentOrder?.shift();
    if (entry === undefined) return;
    // Not counted against maxFramesPer10s (the caller counted it): it answers a frame Herald
    // wrote, so a tab gets no more of these than it was sent, and an old script's page that was
    // replayed 1,000 notifications was closed with 4429 by its own acks at every load.
    this.#uncountFrame();
    if (entry !== 0) this.#acknowledge(entry > 0 ? 'own' : 'broadcast', Math.abs(entry));
  }

  /** Adds a frame just written to #sentOrder when the old script acks it; past MAX_SENT_RUNS, stops following the order. */
  #noteSent(frame: Frame, origin: FrameOrigin | undefined): void {
    // The script ignores PONG (a heartbeat's PING and a close notice are never written through here).
    if (!this.#sentOrder || frame === PONG_FRAME || !oldScriptAcks(frame)) return;
    const entry = origin === undefined ? 0 : origin.stream === 'own' ? origin.seq : -origin.seq;
    if (!this.#sentOrder.push(entry)) this.#sentOrder = undefined;
  }

  async #cancelCommand(commandId: string): Promise<void> {
    if (!this.#deps.commands) {
      this.#error(FrameError.NOT_FOUND, 'commands are not enabled');
      return;
    }
    if (this.principal.kind !== 'admin') {
      this.#error(FrameError.FORBIDDEN, 'only admins run commands');
      return;
    }
    try {
      await this.#deps.commands.cancel(commandId, this.principal);
    } catch (e) {
      if (!isHeraldError(e)) throw e;
      this.#error(e.status === 404 ? FrameError.NOT_FOUND : e.status === 409 ? FrameError.CONFLICT : e.status === 503 ? FrameError.UNAVAILABLE : FrameError.FORBIDDEN, e.message);
    }
  }
}

/** Bytes of reason a close frame can carry (RFC 6455 §5.5: 125 bytes of payload, 2 of them the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * The reason cut to what a close frame holds, at a character boundary: ws
 * throws on a longer one, and an API disconnect reason may be 200
 * characters (62 Cyrillic letters already exceed 123 bytes). The full text
 * went out in the {"TYPE":"close"} frame.
 */
function closeFrameReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    bytes += Buffer.byteLength(ch);
    if (bytes > MAX_CLOSE_REASON_BYTES) break;
    out += ch;
  }
  return out;
}

/**
 * Whether the old browser script acknowledges this frame: it acks every
 * frame it can parse but a `PING`, a `PONG` and a `close`, and of these a
 * notification can only be a `PING` (the panel's is_admin_connected probe,
 * docs/legacy.md; the others are RESERVED_TYPES). Parsed only when the
 * text holds `"PING"`. A frame Herald cannot parse counts as acked: should
 * the script not ack it, its acks only lag.
 */
function oldScriptAcks(frame: Frame): boolean {
  if (typeof frame !== 'string') return sharedOldScriptAcks(frame);
  if (!frame.includes('"PING"')) return true;
  try {
    return (JSON.parse(frame) as { TYPE?: unknown } | null)?.TYPE !== 'PING';
  } catch {
    return true;
  }
}

let lastShared: Buffer | undefined;
let lastSharedAcked = true;

/** oldScriptAcks of a frame many tabs share (a broadcast): the Hub hands them the same Buffer one after another, so it is looked at once. */
function sharedOldScriptAcks(frame: Buffer): boolean {
  if (frame !== lastShared) {
    lastSharedAcked = !frame.includes('"PING"') || oldScriptAcks(frame.toString('utf8'));
    lastShared = frame;
  }
  return lastSharedAcked;
}

/**
 * The order of the frames written to a tab that the old browser script
 * acknowledges (Connection's #sentOrder), oldest first: an entry per frame,
 * the SEQ of a stored notification of the person's own stream, minus the
 * SEQ of a broadcast, 0 for any other (WELCOME, a live-only notification,
 * RESET, ERROR, COMMAND_PROGRESS...). Kept as runs, [first entry, count],
 * each entry of a run one SEQ after the one before it (0 stays 0): a
 * stream's frames mostly go out in consecutive SEQs (a replay, a tab that
 * only receives broadcasts), so such a tab holds one run however many it
 * is sent. Unnumbered frames before the first stored one are only counted:
 * a tab sent nothing but WELCOME holds no array.
 */
class SentOrder {
  /** Entries of 0 ahead of #runs. */
  #lead = 0;
  /** Runs, flat; undefined while there are none. */
  #runs: number[] | undefined;
  /** Where the oldest run not yet taken starts in #runs. */
  #head = 0;

  /** Adds the newest entry; false when more than MAX_SENT_RUNS runs are then not taken. */
  push(entry: number): boolean {
    const runs = this.#runs;
    if (runs === undefined) {
      if (entry === 0) this.#lead++;
      else this.#runs = [entry, 1];
      return true;
    }
    // #runs holds a run not yet taken (shift drops it when the last one is taken): does the entry extend the newest?
    const last = runs.length - 2;
    const first = runs[last]!;
    const count = runs[last + 1]!;
    if (entry === (first === 0 ? 0 : first > 0 ? first + count : first - count)) {
      runs[last + 1] = count + 1;
      return true;
    }
    runs.push(entry, 1);
    return runs.length - this.#head <= 2 * MAX_SENT_RUNS;
  }

  /** Takes the oldest entry; undefined when every entry was taken. */
  shift(): number | undefined {
    if (this.#lead > 0) {
      this.#lead--;
      return 0;
    }
    const runs = this.#runs;
    if (runs === undefined) return undefined;
    const first = runs[this.#head]!;
    const count = runs[this.#head + 1]!;
    if (count > 1) {
      runs[this.#head] = first === 0 ? 0 : first > 0 ? first + 1 : first - 1;
      runs[this.#head + 1] = count - 1;
    } else if ((this.#head += 2) === runs.length) {
      this.#runs = undefined;
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= runs.length) {
      // Taken runs are dropped once they are half the array: what is moved is no more than what was taken.
      runs.splice(0, this.#head);
      this.#head = 0;
    }
    return first;
  }
}
