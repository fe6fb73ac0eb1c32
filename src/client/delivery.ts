/**
 * Delivery tracking on the browser side (issue 6, PROTOCOL.md §1 "Herald's
 * additions"). A tab follows two streams: its person's own stream and the
 * broadcast stream of its kind (frames with `STREAM:"*"`). For each it keeps
 * a cursor — the last SEQ seen and its EPOCH — in memory and in
 * sessionStorage, so that a reconnect or a reload resumes where it left off:
 *
 * - at connect, the cursors go into the query (`seq`, `epoch`, `bseq`,
 *   `bepoch`) and the server replays what came after them;
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

interface StoredCursors {
  /** Whose streams these are (from WELCOME); cursors of another person are discarded. */
  id?: number;
  own?: StreamCursor;
  broadcast?: StreamCursor;
}

export interface DeliveryOptions {
  /** sessionStorage key; undefined keeps cursors in memory only. */
  storageKey: string | undefined;
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

export type Verdict = { kind: 'untracked' } | { kind: 'duplicate'; stream: StreamName } | { kind: 'new'; stream: StreamName; seq: number };

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
    return c ? { ...c } : undefined;
  }

  /** Query parameters that ask the server to resume after our cursors. */
  resumeParams(): Record<string, string> {
    const out: Record<string, string> = {};
    const own = this.#state.own;
    const b = this.#state.broadcast;
    if (own) {
      out.seq = String(own.SEQ);
      out.epoch = own.EPOCH;
    }
    if (b) {
      out.bseq = String(b.SEQ);
      out.bepoch = b.EPOCH;
    }
    return out;
  }

  /** Called with every WELCOME: cursors that belong to somebody else are dropped. */
  welcome(frame: WelcomeFrame): void {
    if (this.#state.id !== undefined && this.#state.id !== frame.ID) {
      this.#state = {};
      this.#pending.own = undefined;
      this.#pending.broadcast = undefined;
    }
    this.#state.id = frame.ID;
    this.#save();
    this.pace(frame);
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
    // A new EPOCH without a RESET first should not happen; adopting it is the
    // only way forward (the old history is gone on the server anyway).
    this.#state[stream] = { SEQ: seq, EPOCH: epoch };
    this.#save();
    this.#pending[stream] = seq;
    this.#schedule(stream);
    return { kind: 'new', stream, seq };
  }

  /** A RESET frame: continue after the server's position on that stream. */
  reset(frame: ResetFrame): StreamName {
    const stream: StreamName = frame.STREAM === BROADCAST_STREAM ? 'broadcast' : 'own';
    this.#state[stream] = { SEQ: frame.SEQ, EPOCH: frame.EPOCH };
    this.#pending[stream] = undefined;
    this.#save();
    return stream;
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
    const key = this.#options.storageKey;
    if (!key) return;
    try {
      const raw = sessionStore()?.getItem(key);
      if (!raw) return;
      const parsed = JSON.parse(raw) as Record<string, unknown>;
      const state: StoredCursors = {};
      if (typeof parsed.id === 'number') state.id = parsed.id;
      if (isCursor(parsed.own)) state.own = { SEQ: parsed.own.SEQ, EPOCH: parsed.own.EPOCH };
      if (isCursor(parsed.broadcast)) state.broadcast = { SEQ: parsed.broadcast.SEQ, EPOCH: parsed.broadcast.EPOCH };
      this.#state = state;
    } catch {
      // A corrupt entry is as good as none: the server replays by its own rules.
    }
  }

  #save(): void {
    const key = this.#options.storageKey;
    if (!key) return;
    try {
      sessionStore()?.setItem(key, JSON.stringify(this.#state));
    } catch {
      // Quota or privacy mode: memory still works for this page's life.
    }
  }
}
