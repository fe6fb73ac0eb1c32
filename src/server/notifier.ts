import type { Logger } from 'pino';
import { ThrottledLog } from './throttled-log.js';
import { CloseCode } from '../protocol/close-codes.js';
import type { NotificationObject, NotificationPayload } from '../protocol/frames.js';
import type { Principal, PrincipalKind } from '../protocol/principal.js';
import { principalKey } from '../protocol/principal.js';
import type { Broker } from './broker/broker.js';
import { HeraldError } from './errors.js';
import { LiveKeys, type LiveKeysOptions } from './live-keys.js';
import type { AppendInput, MessageStore } from './store/message-store.js';

/**
 * A TTL given in seconds (both doors take seconds) as SendOptions.ttlMs: a TTL above 0 keeps
 * at least 1 ms, since 0 means "tabs open now only". Rounded, `"ttl":0.0004` was 0: a send
 * meant to be stored was not, and its answer had no messageId.
 */
export function ttlMsFromSeconds(seconds: number): number {
  return seconds > 0 ? Math.max(1, Math.round(seconds * 1000)) : 0;
}

export interface SendOptions {
  /**
   * How long the notification waits for a tab, in milliseconds. `0` delivers
   * only to tabs open now and stores nothing. Default: the configured TTL.
   */
  ttlMs?: number;
  /**
   * Same key for the same recipient → delivered once: within the message's TTL
   * for a stored send, within a few minutes on this node for a live-only one
   * that reached a tab (LiveKeys; one that reached nobody keeps no key). A
   * repeat's result says `duplicate`.
   */
  idempotencyKey?: string;
}

export interface SendResult {
  /**
   * Tabs that had it pushed now. With one process (the local broker): the
   * tabs it was written to, open when it was published, after the store
   * answered (a tab that began to close meanwhile is not counted). With a
   * broker that publishes over a network: cluster-wide presence when the
   * send was planned.
   */
  delivered: number;
  /** Stored for tabs that connect or resume later. */
  queued: boolean;
  /** The stored message (absent when not stored). */
  id?: string;
  seq?: number;
  epoch?: string;
  /** The idempotency key was seen before; nothing new was sent. */
  duplicate: boolean;
  /** Broadcasts: how many people of the kind were online, counted as `delivered` is (delivered is 0 for a duplicate). */
  people?: number;
  /** Older messages dropped from the recipient's stream by its cap. */
  dropped: number;
}

export interface NotifierOptions {
  store: MessageStore;
  broker: Broker;
  logger: Logger;
  /** Default time-to-live of a notification, ms. */
  defaultTtlMs: number;
  /** Upper bound for a caller's TTL, ms. */
  maxTtlMs: number;
  now?: () => number;
  /** The record of live-only sends' idempotency keys (window, bound). Default: LiveKeys' defaults. */
  liveKeys?: Omit<LiveKeysOptions, 'onFull'>;
  /**
   * Most one sendBatch may store and deliver (the option maxSendBytes): the
   * length of each item's JSON, a recipient's item each; past it the batch is
   * refused with 413 before anything is stored. Default: no bound.
   */
  maxSendBytes?: number;
}

/** Who one send goes to: a person, or every person of a kind (a broadcast, stored once in the kind's broadcast stream). */
export type Target = Principal | { readonly all: PrincipalKind };

/** One notification of a batch. */
export interface BatchSend {
  to: Target;
  payload: NotificationPayload;
  options?: SendOptions;
}

/** What sendBatch decided for one item before the store answered. */
interface Plan {
  to: Target;
  /** Set for a broadcast: the kind it goes to. */
  kind: PrincipalKind | undefined;
  /**
   * Tabs of the person, or people of the kind online (a broadcast's reach):
   * read when planned, then replaced by what the publish reached when the
   * broker answers that at once (a local one).
   */
  tabs: number;
  /** Index of its append (stored sends). */
  input?: number;
  /** The frame of a live-only send. */
  live?: string;
  /** A live-only send's idempotency key and its stream: claimed when it is published. */
  liveKey?: { stream: string; key: string };
}

const NO_OPTIONS: SendOptions = {};

/** Fields Herald owns on a delivered frame; a backend's own values for them are dropped. */
const DELIVERY_FIELDS = ['SEQ', 'EPOCH', 'STREAM'] as const;

/**
 * TYPEs of Herald's own frames to the browser. A notification of one of these
 * would be taken for the frame itself, not shown: a stored `RESET` (it gets a
 * SEQ and an EPOCH) would move the tab's place in its stream, a `WELCOME` its
 * heartbeat, a `close` its close notice. `PING` is not among them: the old
 * panel sends one to learn whether a tab answers (docs/legacy.md).
 */
export const RESERVED_TYPES: ReadonlySet<unknown> = new Set(['WELCOME', 'RESET', 'PACE', 'PONG', 'close', 'ERROR']);

/**
 * A UTF-16 code unit of a surrogate pair without its other half (with the `u`
 * flag a whole pair is one code point, outside the class). JSON can carry one
 * (`"\\ud800"`), but UTF-8 cannot: the SQLite store's journal would get back
 * three U+FFFD for it, the lengths in its row would no longer match, and the
 * store would refuse to open after a restart. Only keys can hold one: a
 * notification is serialised by JSON.stringify, which escapes them.
 */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/**
 * The limits of what a notification may be, for every door (docs/http-api.md):
 * a TYPE of 1–64 characters, a plain string of at most 65,536. The HTTP API's
 * schemas say the same; kept here too so that the legacy door (TCP and
 * `POST /api/v1/legacy`), whose requests no schema checks, cannot take what the
 * API refuses. Characters are code points, as the schemas' validator counts
 * them (an emoji is one).
 */
export const MAX_TYPE_CHARS = 64;
export const MAX_STRING_MESSAGE_CHARS = 65536;

/** How many code points `s` holds: a surrogate pair is one, a lone surrogate one too. */
function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

/**
 * Whether `s` holds more than `max` code points. One compare for any string
 * of at most `max` UTF-16 units (every ordinary one); only a longer one, which
 * may still be within `max` if it holds surrogate pairs, is counted.
 */
function longerThan(s: string, max: number): boolean {
  if (s.length <= max) return false;
  return s.length > 2 * max || codePoints(s) > max;
}

/** Stream key of a kind's broadcast stream. */
export function broadcastStreamKey(kind: PrincipalKind): string {
  return `${kind}:*`;
}

/**
 * Appends Herald's delivery fields to an already serialised object without
 * parsing or serialising it again (the payload is serialised once per send).
 */
export function withDelivery(json: string, seq: number, epoch: string, broadcast: boolean): string {
  const tail = `"SEQ":${seq},"EPOCH":${JSON.stringify(epoch)}${broadcast ? ',"STREAM":"*"' : ''}}`;
  return json.length <= 2 ? `{${tail}` : `${json.slice(0, -1)},${tail}`;
}

/**
 * The application core. Every front door (HTTP API, legacy TCP, CLI and SDK
 * through the API) calls these methods, so they cannot drift apart.
 */
export class Notifier {
  readonly #store: MessageStore;
  readonly #broker: Broker;
  readonly #log: Logger;
  readonly #defaultTtlMs: number;
  readonly #maxTtlMs: number;
  readonly #now: () => number;
  readonly #liveKeys: LiveKeys;
  readonly #maxSendBytes: number;
  /**
   * Notifications dropped from full streams: a sender past a person's
   * maxPerStream drops one with each send, and each wrote a line (18,000 in
   * a burst of 20,000 sends to two people).
   */
  readonly #capLog: ThrottledLog;

  constructor(options: NotifierOptions) {
    this.#store = options.store;
    this.#broker = options.broker;
    this.#log = options.logger;
    this.#defaultTtlMs = options.defaultTtlMs;
    this.#maxTtlMs = options.maxTtlMs;
    this.#now = options.now ?? Date.now;
    this.#maxSendBytes = options.maxSendBytes ?? Infinity;
    this.#liveKeys = new LiveKeys({
      ...options.liveKeys,
      onFull: (maxKeys) => this.#log.warn({ maxKeys }, 'idempotency keys of live-only sends: record full, the oldest are forgotten before their window ends'),
    });
    this.#capLog = new ThrottledLog(this.#log, this.#now, {
      summary: (byKey, windowMs, perWindow) => ({
        fields: { dropped: byKey.dropped ?? 0, windowMs },
        message: `stream cap reached: oldest notifications dropped, more than ${perWindow} times in ${windowMs / 1000} s (the count is of notifications not logged one by one)`,
      }),
    });
  }

  /**
   * Herald's close: says what the bounded log lines counted and have not said yet, and
   * stops the timer that forgets the keys of live-only sends (LiveKeys).
   */
  close(): void {
    this.#capLog.flush();
    this.#liveKeys.close();
  }

  get store(): MessageStore {
    return this.#store;
  }

  #ttl(options: SendOptions): number {
    const ttl = options.ttlMs ?? this.#defaultTtlMs;
    if (Number.isNaN(ttl) || ttl < 0) throw new HeraldError('HERALD_ERR_VALIDATION', 'ttl must be a non-negative number');
    // Any TTL past the bound is the bound, one that overflowed to Infinity
    // (`"ttl":1e308` seconds) too: a backend asking for "as long as you keep
    // anything" gets that, not an error.
    return Math.min(ttl, this.#maxTtlMs);
  }

  /** Sends to every tab of one person, storing it for later tabs within its TTL. */
  async send(to: Principal, payload: NotificationPayload, options: SendOptions = {}): Promise<SendResult> {
    return (await this.sendBatch([{ to, payload, options }]))[0]!;
  }

  /** Sends the same notification to several people; one result per person, in order. */
  sendMany(to: readonly Principal[], payload: NotificationPayload, options: SendOptions = {}): Promise<SendResult[]> {
    // An idempotency key is per recipient, so the same key may be used for the whole list.
    return this.sendBatch(to.map((p) => ({ to: p, payload, options })));
  }

  /**
   * Sends many notifications, to people or to every person of a kind, one
   * result per item, in order. The stored ones go to the store together (one
   * transaction), then every item is published in order, so the sends to one
   * person keep their order, and a batch costs one wait instead of one per
   * notification. All or nothing: an invalid item (a bad TTL) fails the batch
   * before anything is stored or sent, and so does a store that refuses the
   * transaction, so a failed batch can be sent again as it was.
   */
  async sendBatch(items: readonly BatchSend[]): Promise<SendResult[]> {
    const now = this.#now();
    const plans: Plan[] = new Array(items.length);
    const inputs: AppendInput[] = [];
    let waits: Array<Promise<number>> | undefined;
    // A payload object several items share (a send to a list of people) is serialised once,
    // not once per recipient: the last one serialised is kept with its JSON.
    let lastPayload: NotificationPayload | undefined;
    let lastJson = '';
    // What the batch stores and delivers, bounded by maxSendBytes (refused before anything is stored).
    let bytes = 0;
    for (let i = 0; i < items.length; i++) {
      const { to, payload, options = NO_OPTIONS } = items[i]!;
      const ttl = this.#ttl(options);
      const kind = 'all' in to ? to.all : undefined;
      // The hot path of every send: no await where the answer is already at hand (a local broker).
      const tabs = kind === undefined ? this.#broker.tabs(to as Principal) : this.#broker.onlineCount(kind);
      if (typeof tabs !== 'number') {
        // Awaited below; handled here too, in case a later item throws before then.
        tabs.catch(() => undefined);
        (waits ??= [])[i] = tabs;
      }
      const key = options.idempotencyKey;
      // The same rule for every key, whether or not the send is stored (only the SQLite file needs it).
      if (key !== undefined && LONE_SURROGATE.test(key)) {
        throw new HeraldError('HERALD_ERR_VALIDATION', 'idempotencyKey must be Unicode text: it holds a lone surrogate (an unpaired \\uD800–\\uDFFF)');
      }
      let json: string;
      if (payload === lastPayload) {
        json = lastJson;
      } else {
        // Checked once per distinct payload, as it is serialised (a send to a list of people: once).
        if (typeof payload === 'string') {
          if (longerThan(payload, MAX_STRING_MESSAGE_CHARS)) throw stringTooLong(payload);
          json = JSON.stringify(payload);
        } else {
          json = serialise(payload);
        }
        lastPayload = payload;
        lastJson = json;
      }
      if ((bytes += json.length) > this.#maxSendBytes) throw this.#tooLarge(items, i, bytes, lastPayload, lastJson);
      // A plain string is delivered as that string (docs/browser.md, "The dispatcher's rules") and cannot carry SEQ: live only.
      if (typeof payload === 'string' || ttl === 0) {
        const plan: Plan = { to, kind, tabs: typeof tabs === 'number' ? tabs : 0, live: json };
        if (key !== undefined) plan.liveKey = { stream: kind === undefined ? principalKey(to as Principal) : broadcastStreamKey(kind), key };
        plans[i] = plan;
        continue;
      }
      const input: AppendInput = { stream: kind === undefined ? principalKey(to as Principal) : broadcastStreamKey(kind), json, expiresAt: now + ttl };
      if (key !== undefined) input.idempotencyKey = key;
      plans[i] = { to, kind, tabs: typeof tabs === 'number' ? tabs : 0, input: inputs.length };
      inputs.push(input);
    }
    if (waits) {
      const counted = await Promise.all(waits);
      counted.forEach((n, i) => {
        if (n !== undefined) plans[i]!.tabs = n;
      });
    }
    const stored = inputs.length === 0 ? [] : await this.#store.appendMany(inputs, now);
    const results: SendResult[] = new Array(items.length);
    let publishing: Array<void | Promise<void>> | undefined;
    // Live keys claimed by this batch: forgotten again if its publishing fails, so that the
    // caller's resend is delivered rather than taken for a repeat of what never went out.
    let claimed: Array<{ stream: string; key: string }> | undefined;
    // The window counts from the publish (after the store's wait), read once per batch.
    let claimedAt: number | undefined;
    try {
      for (let i = 0; i < plans.length; i++) {
        const plan = plans[i]!;
        const kind = plan.kind;
        if (plan.input === undefined) {
          // Looked up and claimed here, with its publish and no await between (not when planned):
          // two sends of one key that cross each other cannot both go out, and a batch that failed
          // before publishing (a bad item, the store refusing) has claimed nothing.
          const liveKey = plan.liveKey;
          const keyedAt = liveKey === undefined ? 0 : (claimedAt ??= this.#now());
          if (liveKey !== undefined && this.#liveKeys.has(liveKey.stream, liveKey.key, keyedAt)) {
            results[i] = withPeople({ delivered: 0, queued: false, duplicate: true, dropped: 0 }, plan);
            continue;
          }
          // Counted before the store's wait for the batch's stored items: a tab that connected
          // meanwhile was sent the stored items around this one, and is sent this one too.
          if (kind === undefined && plan.tabs === 0 && inputs.length > 0) {
            const now = this.#broker.tabs(plan.to as Principal);
            if (typeof now === 'number') plan.tabs = now;
          }
          // A live broadcast goes out even when nobody seemed online here: other nodes may have some.
          if (kind !== undefined || plan.tabs > 0) {
            const p = this.#broker.publish(kind === undefined
              ? { type: 'person', to: plan.to as Principal, frame: plan.live! }
              : { type: 'kind', kind, frame: plan.live! });
            if (typeof p === 'number') plan.tabs = p;
            else (publishing ??= []).push(p);
          }
          // The key is kept only when the send reached a tab (what its answer says: `delivered`).
          // One that reached nobody, with nothing stored, is not a send to be repeated once: kept,
          // its key answered the resend after the person came online "duplicate", and the
          // notification never arrived. Decided in the same turn as the look-up above, so no
          // other send of the key sees it claimed in between.
          if (liveKey !== undefined && plan.tabs > 0) {
            this.#liveKeys.claim(liveKey.stream, liveKey.key, keyedAt);
            (claimed ??= []).push(liveKey);
          }
          results[i] = withPeople({ delivered: plan.tabs, queued: false, duplicate: false, dropped: 0 }, plan);
          continue;
        }
        const r = stored[plan.input]!;
        if (r.duplicate) {
          results[i] = withPeople({ delivered: 0, queued: true, id: r.id, seq: r.seq, epoch: r.epoch, duplicate: true, dropped: r.dropped }, plan);
          continue;
        }
        // Published even when nobody seemed online: a tab that connected between
        // the presence check and the append must not miss it (its replay read may
        // have run before the append; the Gateway drops the copy it already has).
        const { json, expiresAt } = inputs[plan.input]!;
        const frame = withDelivery(json, r.seq, r.epoch, kind !== undefined);
        const p = this.#broker.publish(kind === undefined
          ? { type: 'person', to: plan.to as Principal, frame, origin: { stream: 'own', seq: r.seq, expiresAt } }
          : { type: 'kind', kind, frame, origin: { stream: 'broadcast', seq: r.seq, expiresAt } });
        // What the publish reached, not what was counted before the store's wait: a tab
        // that began to close meanwhile (a kick, its own close) was counted, and never got it.
        if (typeof p === 'number') plan.tabs = p;
        else (publishing ??= []).push(p);
        if (r.dropped > 0) this.#capLog.log('warn', 'dropped', { to: inputs[plan.input]!.stream, dropped: r.dropped }, 'stream cap reached: oldest notifications dropped', r.dropped);
        results[i] = withPeople({ delivered: plan.tabs, queued: true, id: r.id, seq: r.seq, epoch: r.epoch, duplicate: false, dropped: r.dropped }, plan);
      }
      if (publishing) await Promise.all(publishing);
    } catch (e) {
      if (claimed) for (const { stream, key } of claimed) this.#liveKeys.release(stream, key);
      throw e;
    }
    return results;
  }

  /**
   * The refusal of a batch past maxSendBytes, found at item `at` with `bytes`
   * counted so far: the rest is counted too (serialised: the distinct payloads
   * of a request are no larger than its body), so that the answer says what
   * the whole request comes to.
   */
  #tooLarge(items: readonly BatchSend[], at: number, bytes: number, lastPayload: NotificationPayload, lastJson: string): HeraldError {
    let total = bytes;
    for (let i = at + 1; i < items.length; i++) {
      const { payload } = items[i]!;
      if (payload !== lastPayload) {
        try {
          lastJson = typeof payload === 'string' ? JSON.stringify(payload) : serialise(payload);
        } catch {
          // Refused for what it is, not counted: the answer is about the size.
          lastJson = '';
        }
        lastPayload = payload;
      }
      total += lastJson.length;
    }
    return new HeraldError(
      'HERALD_ERR_TOO_LARGE',
      `the notifications of this request come to ${total} bytes (each one's JSON once per recipient), past maxSendBytes (${this.#maxSendBytes}): `
      + 'send it to fewer people per request, or make it smaller (a link to the text rather than the text)',
      { option: 'maxSendBytes', bytes: total, maxSendBytes: this.#maxSendBytes },
    );
  }

  /**
   * Sends to every person of a kind. Stored once in the kind's broadcast
   * stream (which every tab of that kind follows) and framed once.
   */
  async broadcast(kind: PrincipalKind, payload: NotificationPayload, options: SendOptions = {}): Promise<SendResult & { people: number }> {
    const r = (await this.sendBatch([{ to: { all: kind }, payload, options }]))[0]!;
    return { ...r, people: r.people ?? 0 };
  }

  online(kind: PrincipalKind): Promise<number[]> {
    return this.#broker.online(kind);
  }

  async tabs(principal: Principal): Promise<number> {
    return this.#broker.tabs(principal);
  }

  /** Closes every tab of a person, with a reason they are told. Returns how many tabs were open. */
  async disconnect(principal: Principal, reason: string, code: number = CloseCode.FORBIDDEN): Promise<number> {
    const tabs = await this.#broker.tabs(principal);
    await this.#broker.publish({ type: 'disconnect', to: principal, code, reason });
    return tabs;
  }

  status(id: string) {
    return this.#store.status(id, this.#now());
  }
}

/** A broadcast's result also says how many people of the kind were online. */
function withPeople(result: SendResult, plan: Plan): SendResult {
  if (plan.kind !== undefined) result.people = plan.tabs;
  return result;
}

/** The refusal of a plain-string notification past MAX_STRING_MESSAGE_CHARS. */
function stringTooLong(payload: string): HeraldError {
  return new HeraldError(
    'HERALD_ERR_VALIDATION',
    `a plain-string notification may be at most ${MAX_STRING_MESSAGE_CHARS} characters; this one has ${codePoints(payload)}: send an object (TITLE, TEXT) or a link to the text`,
  );
}

/**
 * Serialises a notification once, dropping any delivery fields the backend put
 * in it. Refuses a TYPE that is empty, longer than MAX_TYPE_CHARS or one of
 * Herald's own frames (RESERVED_TYPES). The legacy door gives a DATA with an
 * empty or no TYPE the TYPE `MESSAGE` before it gets here (docs/legacy.md).
 */
export function serialise(payload: NotificationObject): string {
  const type = payload.TYPE;
  if (typeof type === 'string' && (type.length === 0 || longerThan(type, MAX_TYPE_CHARS))) {
    throw new HeraldError(
      'HERALD_ERR_VALIDATION',
      type.length === 0
        ? 'a notification\'s TYPE may not be empty: 1–64 characters'
        : `a notification's TYPE may be at most ${MAX_TYPE_CHARS} characters; this one has ${codePoints(type)} (${JSON.stringify(type.slice(0, 20))}…)`,
    );
  }
  if (RESERVED_TYPES.has(type)) {
    throw new HeraldError('HERALD_ERR_VALIDATION', `TYPE ${JSON.stringify(type)} is one of Herald's own frames to the browser; the tab would not show it as a notification`);
  }
  try {
    if ('SEQ' in payload || 'EPOCH' in payload || 'STREAM' in payload) {
      const copy: Record<string, unknown> = { ...payload };
      for (const f of DELIVERY_FIELDS) delete copy[f];
      return JSON.stringify(copy);
    }
    return JSON.stringify(payload);
  } catch (e) {
    // JSON.parse takes any depth; JSON.stringify recurses, and a payload
    // nested some thousands deep overflows the stack. Caught here rather
    // than measured before: every send would pay for a walk of its payload.
    if (e instanceof RangeError) throw new HeraldError('HERALD_ERR_VALIDATION', 'the notification is nested too deeply to send');
    throw e;
  }
}
