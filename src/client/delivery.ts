/**
 * Delivery tracking on the browser side (docs/delivery.md, "Streams, SEQ and
 * EPOCH"). A tab follows two streams: its person's own stream and the
 * broadcast stream of its kind (frames with `STREAM:"*"`). For each it keeps
 * a cursor — the last SEQ seen and its EPOCH — in memory and in
 * sessionStorage, so that a reconnect or a reload resumes where it left off:
 *
 * - at connect, the cursors go into the query (`seq`, `epoch`, `bseq`,
 *   `bepoch`; `after`/`bafter` for one WELCOME's ACKED placed, before any
 *   notification of its stream) and the server replays what came after them;
 * - a frame with SEQ ≤ cursor and the same EPOCH is a duplicate (the seam
 *   between replay and live delivery) and is dropped;
 * - accepted frames are acknowledged cumulatively with
 *   `{"TYPE":"RESPONSE","SEQ":n,"EPOCH":e}` (plus `"STREAM":"*"`), batched;
 * - a RESET frame (the server cannot replay from our cursor) moves the cursor
 *   to what the server says and tells the page it may have missed some.
 */
import type { ClientFrame, PaceFrame, ResetFrame, StreamCursor, WelcomeFrame } from '../protocol/frames.js';
import { BROADCAST_STREAM } from '../protocol/frames.js';

export type StreamName = 'own' | 'broadcast';

/**
 * A stream's cursor as this tab keeps it. `START`: the tab was shown nothing
 * of the stream since WELCOME's ACKED placed it there; it resumes with
 * `after` instead of `seq`, and the server does not take it for a tab that
 * missed what the cap or expiry removed.
 */
interface TabCursor extends StreamCursor {
  START?: true;
}

interface StoredCursors {
  /** Whose streams these are (from WELCOME); cursors of another person are discarded. */
  id?: number;
  own?: TabCursor;
  broadcast?: TabCursor;
}

export interface DeliveryOptions {
  /** sessionStorage key; undefined keeps cursors in memory only. */
  storageKey: string | undefined;
  /**
   * What the tabs of one browser profile showed, in localStorage (shared by its
   * tabs, kept after they close): the highest SEQ of each stream seen by any
   * tab of this endpoint, and whose streams they are. Acks are batched (up to
   * seconds), so a tab closed while the server was unreachable takes its last
   * acks with it, and the server replays those notifications to the person's
   * next new tab. That tab drops (and acknowledges) what this record says was
   * already shown here, instead of showing it again.
   *
   * This is its localStorage key; undefined: not kept.
   */
  shownKey?: string | undefined;
  /** Sends an ack frame; returns false when the socket is not open (the ack stays pending). */
  send: (frame: ClientFrame) => boolean;
  /**
   * Acks of the person's own stream are batched: about one per this many ms
   * at least (each wait drawn from 0.5–1.5× it, so tabs do not ack in step).
   * Default 1000: a busy tab's acks stay a small part of what crosses the
   * socket. With many tabs open the server may ask for a longer wait
   * (WELCOME's ACK_MS); the longer of the two is used. A closing page still
   * sends what is pending.
   */
  ackDelayMs?: number;
  /**
   * Acks of the broadcast stream: about one per this many ms at least.
   * Default 2000. One tab's ack marks a broadcast read for every tab of its
   * kind, so the server may ask for a longer wait when many are open
   * (WELCOME's BROADCAST.ACK_MS); the longer of the two is used. Each wait
   * is drawn from 0–2× it: among thousands of tabs, the first ack of a
   * broadcast still comes soon, and the rest of them rarely. A closing page
   * still sends what is pending.
   */
  broadcastAckDelayMs?: number;
}

export type Verdict =
  | { kind: 'untracked' }
  | { kind: 'duplicate'; stream: StreamName }
  /** Shown by another tab of this browser before this one connected: acknowledged, not shown again. */
  | { kind: 'seen'; stream: StreamName; seq: number }
  | { kind: 'new'; stream: StreamName; seq: number };

function isCursor(v: unknown): v is StreamCursor {
  if (typeof v !== 'object' || v === null) return false;
  const c = v as Record<string, unknown>;
  return typeof c.SEQ === 'number' && Number.isSafeInteger(c.SEQ) && c.SEQ >= 0 && typeof c.EPOCH === 'string';
}

function sessionStore(): Storage | undefined {
  try {
    return globalThis.sessionStorage;
  } catch {
    return undefined;
  }
}

function localStore(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined;
  }
}

/**
 * An ack wait drawn from 0.5–1.5× the configured delay (the same on
 * average). Tabs that got the same frames at the same moment (a broadcast,
 * a burst to everyone) would otherwise all ack in the same instant, every
 * time: thousands of frames landing on the server at once, which stalls
 * delivery to everyone for a moment (seen in the W4 benchmark as a latency
 * spike every second).
 */
function jittered(delayMs: number): number {
  return delayMs * (0.5 + Math.random());
}

/**
 * A broadcast ack wait: drawn from 0–2× the delay (the same on average).
 * Every tab of the kind got the broadcast and any one ack serves them all;
 * the server stretches the delay with the number of tabs, and a wait that
 * may be short for some of them keeps the first ack near, however long the
 * delay (0.5–1.5× would hold every ack back for at least half of it).
 */
function spread(delayMs: number): number {
  return delayMs * 2 * Math.random();
}

/** The longest ack wait taken from a server: a tab acks at least every 20 minutes or so. */
const MAX_SERVER_ACK_MS = 600_000;

/** An ack wait WELCOME or PACE asks for, bounded; 0 when it asks for none (an older server). */
function serverAckMs(asked: unknown): number {
  return typeof asked === 'number' && Number.isFinite(asked) ? Math.min(asked, MAX_SERVER_ACK_MS) : 0;
}

export class DeliveryTracker {
  readonly #options: DeliveryOptions;
  readonly #ackDelay: Record<StreamName, number>;
  /** The page's own ack delays; WELCOME may lengthen #ackDelay past them. */
  readonly #ownAckDelay: number;
  readonly #broadcastAckDelay: number;
  #state: StoredCursors = {};
  readonly #pending: Partial<Record<StreamName, number>> = {};
  readonly #timers: Partial<Record<StreamName, ReturnType<typeof setTimeout>>> = {};
  /**
   * For a stream this tab connected to without a cursor (the server then
   * replays what nobody acknowledged): the highest SEQ other tabs of this
   * browser had shown by then. What the replay brings up to it is not shown again.
   */
  readonly #floor: Partial<Record<StreamName, StreamCursor>> = {};
  /** The page is being left (pagehide): what arrives now is not recorded as shown (see leaving()). */
  #leaving = false;

  constructor(options: DeliveryOptions) {
    this.#options = options;
    this.#ownAckDelay = options.ackDelayMs ?? 1000;
    this.#broadcastAckDelay = options.broadcastAckDelayMs ?? 2000;
    this.#ackDelay = { own: this.#ownAckDelay, broadcast: this.#broadcastAckDelay };
    this.#load();
  }

  /** The cursor of a stream, if any frame of it was seen (or restored). */
  cursor(stream: StreamName): StreamCursor | undefined {
    const c = this.#state[stream];
    return c ? { SEQ: c.SEQ, EPOCH: c.EPOCH } : undefined;
  }

  /** Query parameters that ask the server to resume after our cursors. */
  resumeParams(): Record<string, string> {
    const out: Record<string, string> = {};
    const own = this.#state.own;
    const b = this.#state.broadcast;
    if (own) {
      out[own.START ? 'after' : 'seq'] = String(own.SEQ);
      out.epoch = own.EPOCH;
    }
    if (b) {
      out[b.START ? 'bafter' : 'bseq'] = String(b.SEQ);
      out.bepoch = b.EPOCH;
    }
    return out;
  }

  /**
   * Called with every WELCOME: cursors that belong to somebody else are
   * dropped. Returns true when it dropped some (they were sent at connect:
   * the server answers them with a RESET that means nothing for this person).
   */
  welcome(frame: WelcomeFrame): boolean {
    const foreign = this.#state.id !== undefined && this.#state.id !== frame.ID;
    if (foreign) {
      this.#state = {};
      this.#pending.own = undefined;
      this.#pending.broadcast = undefined;
    }
    this.#state.id = frame.ID;
    this.pace(frame);
    const shown = this.#readShown();
    for (const stream of ['own', 'broadcast'] as const) {
      // With a cursor the server replays from it, and duplicates are dropped by it alone.
      // `shown` is undefined when nothing was recorded, and so is a WELCOME's missing ID: no match then.
      const floor = shown !== undefined && shown.id === frame.ID && this.#state[stream] === undefined ? shown[stream] : undefined;
      if (floor) this.#floor[stream] = floor;
      else delete this.#floor[stream];
      // A new tab is replayed what follows ACKED: that is its cursor until a notification
      // moves it. Without one, a reconnect before its first notification came back as a new
      // tab again, and missed what another tab acknowledged meanwhile (a broadcast, most often).
      const head = stream === 'own' ? frame : frame.BROADCAST;
      const start = { SEQ: head?.ACKED, EPOCH: head?.EPOCH };
      if (this.#state[stream] === undefined && isCursor(start) && start.SEQ <= (head?.SEQ ?? -1)) this.#state[stream] = { ...start, START: true };
      else this.#ackAgain(stream, head);
    }
    this.#save();
    return foreign;
  }

  /**
   * A resumed stream's cursor is acknowledged again, unless WELCOME's ACKED
   * shows the server has it. Its ack may have been lost: written onto a
   * socket that turned out dead (the write "worked", so it was not kept), or
   * still waiting when the page was reloaded during an outage. Resumed after
   * it, the tab is replayed nothing that would ack it, and the server kept
   * it unacknowledged for good: the person's next new tab elsewhere showed
   * it again. Only the cursor of a notification this tab took in (not
   * START's; one a RESET placed is at most ACKED), of the history WELCOME
   * names and within it: an ack of another would mark read what the tab
   * never had.
   */
  #ackAgain(stream: StreamName, head: StreamCursor & { ACKED?: number } | undefined): void {
    const c = this.#state[stream];
    if (!c || c.START || !head || c.EPOCH !== head.EPOCH || c.SEQ > head.SEQ) return;
    if (typeof head.ACKED === 'number' && c.SEQ <= head.ACKED) return;
    this.#pending[stream] ??= c.SEQ;
  }

  /** The ack waits the server asks for, from WELCOME or a later PACE frame; each wait from now on uses them. */
  pace(frame: Pick<WelcomeFrame | PaceFrame, 'ACK_MS' | 'BROADCAST'>): void {
    this.#ackDelay.own = Math.max(this.#ownAckDelay, serverAckMs(frame.ACK_MS));
    this.#ackDelay.broadcast = Math.max(this.#broadcastAckDelay, serverAckMs(frame.BROADCAST?.ACK_MS));
  }

  /**
   * Decides what to do with an incoming notification and, when it is new,
   * advances the cursor and schedules an ack.
   */
  accept(frame: Record<string, unknown>): Verdict {
    const seq = frame.SEQ;
    const epoch = frame.EPOCH;
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || typeof epoch !== 'string') return { kind: 'untracked' };
    const stream: StreamName = frame.STREAM === BROADCAST_STREAM ? 'broadcast' : 'own';
    const current = this.#state[stream];
    if (current && current.EPOCH === epoch && seq <= current.SEQ) return { kind: 'duplicate', stream };
    const floor = this.#floor[stream];
    const seen = floor !== undefined && floor.EPOCH === epoch && seq <= floor.SEQ;
    if (!seen) delete this.#floor[stream];
    // A new EPOCH without a RESET first should not happen; adopting it is the
    // only way forward (the old history is gone on the server anyway).
    this.#state[stream] = { SEQ: seq, EPOCH: epoch };
    // Not while the page is being left: the page reloaded resumes before
    // this notification and shows it, instead of acknowledging it unseen (#ackAgain).
    if (!this.#leaving) this.#save();
    this.#pending[stream] = seq;
    this.#schedule(stream);
    if (seen) return { kind: 'seen', stream, seq };
    if (!this.#leaving) this.#saveShown(stream, seq, epoch);
    return { kind: 'new', stream, seq };
  }

  /** A RESET frame: continue after the server's position on that stream. */
  reset(frame: ResetFrame): StreamName {
    const stream: StreamName = frame.STREAM === BROADCAST_STREAM ? 'broadcast' : 'own';
    // Placed where the server says, with nothing shown past it: a START
    // cursor, sent as `after` (`bafter`). Sent as `seq`, it was told "too far
    // behind" again at every reconnect once its stream went idle and was
    // evicted (the SEQ floor rises with anyone's eviction), though nothing
    // was sent past it.
    this.#state[stream] = { SEQ: frame.SEQ, EPOCH: frame.EPOCH, START: true };
    this.#pending[stream] = undefined;
    delete this.#floor[stream];
    this.#save();
    return stream;
  }

  /**
   * The page is being left (pagehide; false again on pageshow, back from the
   * back/forward cache). Its acks were sent at pagehide; a notification that
   * arrives between then and the socket's end is on a page nobody looks at,
   * so it is not recorded as shown here, and the next tab shows it.
   */
  leaving(on: boolean): void {
    this.#leaving = on;
  }

  /** Sends the pending acks now (before a close, or after a reconnect). */
  flush(): void {
    this.#flushStream('own');
    this.#flushStream('broadcast');
  }

  #flushStream(stream: StreamName): void {
    clearTimeout(this.#timers[stream]);
    this.#timers[stream] = undefined;
    const seq = this.#pending[stream];
    if (seq === undefined) return;
    const frame: Extract<ClientFrame, { TYPE: 'RESPONSE' }> = { TYPE: 'RESPONSE', SEQ: seq };
    if (stream === 'broadcast') frame.STREAM = BROADCAST_STREAM;
    // The epoch the acked SEQ belongs to: the server ignores an ack of a history it has replaced.
    const epoch = this.#state[stream]?.EPOCH;
    if (epoch !== undefined) frame.EPOCH = epoch;
    if (this.#options.send(frame)) this.#pending[stream] = undefined;
  }

  /** Forgets everything (memory and sessionStorage). */
  clear(): void {
    this.dispose();
    this.#state = {};
    this.#pending.own = undefined;
    this.#pending.broadcast = undefined;
    const key = this.#options.storageKey;
    if (key) sessionStore()?.removeItem(key);
  }

  dispose(): void {
    for (const stream of ['own', 'broadcast'] as const) {
      clearTimeout(this.#timers[stream]);
      this.#timers[stream] = undefined;
    }
  }

  #schedule(stream: StreamName): void {
    if (this.#timers[stream] !== undefined) return;
    const delay = this.#ackDelay[stream];
    this.#timers[stream] = setTimeout(() => this.#flushStream(stream), stream === 'broadcast' ? spread(delay) : jittered(delay));
  }

  #load(): void {
    this.#state = readCursors(sessionStore, this.#options.storageKey) ?? {};
  }

  #readShown(): StoredCursors | undefined {
    return readCursors(localStore, this.#options.shownKey);
  }

  /** Raises the shared record of what this browser showed (never lowers it: other tabs may be ahead). */
  #saveShown(stream: StreamName, seq: number, epoch: string): void {
    const id = this.#state.id;
    if (id === undefined) return;
    const old = this.#readShown();
    // Another person's record (the browser signed in as someone else) is replaced.
    const record: StoredCursors = old?.id === id ? old : { id };
    const prev = record[stream];
    if (prev && prev.EPOCH === epoch && prev.SEQ >= seq) return;
    record[stream] = { SEQ: seq, EPOCH: epoch };
    // Quota or privacy mode: this tab still works; a later tab may show these again.
    writeCursors(localStore, this.#options.shownKey, record);
  }

  #save(): void {
    // Quota or privacy mode: memory still works for this page's life.
    writeCursors(sessionStore, this.#options.storageKey, this.#state);
  }
}

/** Cursors stored under `key`; undefined when there are none, or they are corrupt (as good as none). */
function readCursors(store: () => Storage | undefined, key: string | undefined): StoredCursors | undefined {
  if (!key) return undefined;
  try {
    const raw = store()?.getItem(key);
    if (!raw) return undefined;
    const parsed = JSON.parse(raw) as Record<string, unknown>;
    const state: StoredCursors = {};
    if (typeof parsed.id === 'number') state.id = parsed.id;
    for (const stream of ['own', 'broadcast'] as const) {
      const c = parsed[stream];
      if (isCursor(c)) state[stream] = (c as TabCursor).START === true ? { SEQ: c.SEQ, EPOCH: c.EPOCH, START: true } : { SEQ: c.SEQ, EPOCH: c.EPOCH };
    }
    return state;
  } catch {
    return undefined;
  }
}

function writeCursors(store: () => Storage | undefined, key: string | undefined, value: StoredCursors): void {
  if (!key) return;
  try {
    store()?.setItem(key, JSON.stringify(value));
  } catch {
    // Quota exceeded or storage denied: see the callers.
  }
}
