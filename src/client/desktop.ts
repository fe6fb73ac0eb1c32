/**
 * Optional desktop notifications (the Notification API) for a tab that is
 * hidden. Off until the page opts in with `enable()`, which must be called
 * from a user gesture (a click), because browsers ignore permission requests
 * that are not; the choice is remembered in localStorage.
 *
 * Every tab of the person gets every notification, so the tabs of one
 * browser profile agree through localStorage (per endpoint and person) on
 * what reaches the desktop: none while one of them is visible (it shows the
 * toast), each notification once (however much later another tab is
 * replayed it), and one burst window for all of them. Where storage is
 * unavailable, each tab decides alone.
 */
import type { NotificationObject } from '../protocol/frames.js';
import { asText, clipTitle, isPlainTextFormat, plainText, withoutBidiControls } from './sanitize.js';
import { visibility } from './dom.js';

const STORAGE_KEY = 'herald:desktop';
/** How often (ms) a visible tab says so to the others of its person. */
const VISIBLE_BEAT_MS = 4000;
/** A visible tab's word holds this long (ms): a tab that crashed or froze stops holding the others back. */
const VISIBLE_FRESH_MS = 10_000;
/**
 * Live-only notifications (no place in a stream) a burst window remembers, to
 * show each once whichever tab comes first. Every tab gets them live at the
 * same moment (they are never replayed), so the tabs are a few apart at most.
 */
const MAX_WINDOW_TAGS = 100;

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined; // Storage can throw when cookies are blocked.
  }
}

/** The JSON kept under `key` (undefined: none, or no storage, or not JSON). */
function load(key: string | undefined): unknown {
  try {
    return JSON.parse((key !== undefined && storage()?.getItem(key)) || 'null') ?? undefined;
  } catch {
    return undefined;
  }
}

/** Keeps `value` as JSON under `key` (undefined: removes it). Full or blocked: this tab decides alone. */
function save(key: string | undefined, value: unknown): void {
  try {
    if (key === undefined) return;
    if (value === undefined) storage()?.removeItem(key);
    else storage()?.setItem(key, JSON.stringify(value));
  } catch {
    // this tab decides alone
  }
}

/**
 * A notification's place in its stream (SEQ of the person's own stream,
 * "own", or of the broadcast stream, "*", in that history's EPOCH): the same
 * in every tab of the person, and no other notification's. A live-only
 * notification (or the old daemon's plain string) has none.
 */
function placeOf(message: NotificationObject): [stream: string, epoch: string, seq: number] | undefined {
  const m = message as NotificationObject & { SEQ?: unknown; EPOCH?: unknown; STREAM?: unknown };
  return typeof m.SEQ === 'number' && typeof m.EPOCH === 'string' ? [m.STREAM === '*' ? '*' : 'own', m.EPOCH, m.SEQ] : undefined;
}

/**
 * The desktop's tag of a notification, under which a later one replaces it:
 * the sender's ID when it gave one ("Ticket 42: closed" replaces "Ticket
 * 42: new"), else its place in its stream (positionOf). A live-only
 * notification without an ID has neither: no tag (see contentKey).
 */
export function desktopTag(message: NotificationObject): string | undefined {
  if (message.ID !== undefined && message.ID !== null) return `herald:${asText(message.ID)}`;
  const place = placeOf(message);
  return place && `herald:${place.join(':')}`;
}

/** A notification without a place in a stream, known by what it says (FNV-1a of ID, TITLE and TEXT): every tab got the same words. */
function contentKey(message: NotificationObject): string {
  const id = message.ID !== undefined && message.ID !== null ? `${asText(message.ID)}\n` : '';
  const text = `${id}${asText(message.TITLE)}\n${asText(message.TEXT)}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return `herald:live:${(hash >>> 0).toString(36)}`;
}

/**
 * How far each stream ("own", "*") reached the desktop, from any tab of the
 * person: [EPOCH, SEQ]. A tab gets a stream's notifications in the order of
 * their SEQ (delivery.ts drops what it had), so one at or below the mark was
 * shown or summed up already, whichever tab is replayed it and however much
 * later (a tab back from an outage, a frozen tab woken). One mark a stream,
 * raised and never lowered, as delivery.ts keeps what the tabs showed: it
 * stays small whatever a replay brings (maxPerStream, 1000 by default), and
 * needs no expiry (a SEQ of an EPOCH is one notification for ever; a new
 * EPOCH replaces the mark).
 */
type Marks = Record<string, [epoch: string, seq: number]>;

/** One burst window: when it began, how many it showed one by one and summed up, and which live-only ones (tags); and the marks, which outlive it. */
interface BurstWindow {
  start: number;
  shown: number;
  more: number;
  tags: string[];
  marks?: Marks;
}

/** A burst window of the tabs, if `value` is one and `now` is in it. */
function current(value: unknown, now: number, windowMs: number): BurstWindow | undefined {
  const w = value as Partial<BurstWindow> | undefined;
  return typeof w?.start === 'number' && now >= w.start && now - w.start < windowMs && Array.isArray(w.tags) ? { start: w.start, shown: Number(w.shown) || 0, more: Number(w.more) || 0, tags: w.tags } : undefined;
}

export interface DesktopOptions {
  /** Desktop notifications shown one by one in each `burstWindowMs`, at most; the rest are one summary. Default 3. */
  burst?: number;
  /** The window of `burst`, in ms. Default 10000. */
  burstWindowMs?: number;
  /** The summary's title for `count` more notifications in the window. Default `"<count> more notifications"`. */
  moreText?: (count: number) => string;
  /** The title of a notification that has none (no TITLE, or an empty one), and the summary's line for it. Default "Notification". */
  untitledText?: string;
}

export class DesktopNotifier {
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #moreText: (count: number) => string;
  readonly #untitled: string;
  /** The burst window where the tabs share none (no scope, no storage). */
  #window: BurstWindow = { start: -Infinity, shown: 0, more: 0, tags: [] };
  /** Whose tabs this one agrees with (endpoint and person); undefined: none. */
  readonly #scope: () => string | undefined;
  readonly #tabId = Math.random().toString(36).slice(2, 10);
  #beatTimer: ReturnType<typeof setInterval> | undefined;

  /**
   * A hidden tab that connects after a day away is replayed what nobody
   * acknowledged, up to a thousand notifications in a second: one desktop
   * notification each buried the desktop. So the first `burst` of each window
   * are shown one by one, and the rest update one summary notification in
   * place (its tag), which names the latest.
   *
   * `scope` names the tabs that are one person's in this browser profile (a
   * client's endpoint and the ID its WELCOME gave); undefined, or while it
   * returns undefined, this tab coordinates with none.
   */
  constructor(options: DesktopOptions = {}, scope: () => string | undefined = () => undefined) {
    this.#burst = options.burst ?? 3;
    this.#windowMs = options.burstWindowMs ?? 10_000;
    this.#moreText = options.moreText ?? ((n) => `${n} more notification${n === 1 ? '' : 's'}`);
    this.#untitled = typeof options.untitledText === 'string' && options.untitledText.trim() !== '' ? clipTitle(options.untitledText) : 'Notification';
    this.#scope = scope;
  }

  /** True when the page opted in and the browser granted permission. */
  get enabled(): boolean {
    return typeof Notification !== 'undefined' && Notification.permission === 'granted' && load(STORAGE_KEY) === 1;
  }

  /** Asks for permission (call from a click handler) and opts in when granted. */
  async enable(): Promise<NotificationPermission | 'unsupported'> {
    if (typeof Notification === 'undefined') return 'unsupported';
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (permission === 'granted') {
      save(STORAGE_KEY, 1);
      this.#beat();
    }
    return permission;
  }

  disable(): void {
    save(STORAGE_KEY, undefined);
  }

  /**
   * Tells the person's other tabs whether this one is visible: a client
   * calls it with `running` true at WELCOME and at every visibilitychange,
   * and with false when it stops (the others no longer wait for it). While
   * this tab runs and is visible, it says so again every VISIBLE_BEAT_MS.
   */
  sync(running: boolean): void {
    if (running && visibility() === 'visible') {
      this.#beat();
      this.#beatTimer ??= setInterval(() => this.#beat(), VISIBLE_BEAT_MS);
      return;
    }
    clearInterval(this.#beatTimer);
    this.#beatTimer = undefined;
    const tabs = this.#visibleTabs(Date.now());
    if (!(this.#tabId in tabs)) return;
    delete tabs[this.#tabId];
    save(this.#key('visible'), Object.keys(tabs).length > 0 ? tabs : undefined);
  }

  /** Says this tab is visible, beside the others of the person that said so lately. */
  #beat(): void {
    const now = Date.now();
    if (visibility() === 'visible' && this.enabled) save(this.#key('visible'), { ...this.#visibleTabs(now), [this.#tabId]: now });
  }

  #key(what: 'visible' | 'window'): string | undefined {
    const scope = this.#scope();
    return scope === undefined ? undefined : `herald:desktop-${what}:${scope}`;
  }

  /** The tabs of the person that said they are visible, recently enough to believe them: tab → when. */
  #visibleTabs(now: number): Record<string, number> {
    const tabs = load(this.#key('visible'));
    return Object.fromEntries(Object.entries(typeof tabs === 'object' && tabs !== null ? tabs : {}).filter(([, at]) => now - at >= 0 && now - at < VISIBLE_FRESH_MS)) as Record<string, number>;
  }

  /** Shows a MESSAGE on the desktop when the tab is hidden and the page opted in. Returns whether it did. */
  maybeShow(message: NotificationObject): boolean {
    if (visibility() !== 'hidden' || !this.enabled) return false;
    const now = Date.now();
    // The person is looking at another of their tabs: it shows the toast.
    if (Object.keys(this.#visibleTabs(now)).some((tab) => tab !== this.#tabId)) return false;
    const tag = desktopTag(message);
    const place = placeOf(message);
    const windowKey = this.#key('window');
    const stored = load(windowKey) as Partial<BurstWindow> | undefined;
    const w = current(stored, now, this.#windowMs) ?? current(this.#window, now, this.#windowMs) ?? { start: now, shown: 0, more: 0, tags: [] };
    // The marks outlive the window: the tabs' (storage) over this tab's own, all it has when storage is
    // unavailable or full. Spread, so anything else found under the key reads as no marks.
    const marks: Marks = { ...this.#window.marks, ...stored?.marks };
    // Another hidden tab of the person showed it (or summed it up) already: by its place in its
    // stream, not by its ID, which a later notification shares to replace it ("Ticket 42: closed"
    // after "Ticket 42: new" never came). One known only by its words is the same notification
    // only in another tab: the same words twice in one tab are two notifications (a second "New
    // chat message" was not shown).
    if (place) {
      const [stream, epoch, seq] = place;
      const mark = marks[stream];
      if (mark?.[0] === epoch && mark[1] >= seq) return false;
      marks[stream] = [epoch, seq];
    } else {
      const key = contentKey(message);
      const entry = `${key}@${this.#tabId}`;
      if (w.tags.some((t) => t !== entry && t.startsWith(`${key}@`))) return false;
      w.tags = [...w.tags.filter((t) => t !== entry), entry].slice(-MAX_WINDOW_TAGS);
    }
    w.marks = marks;
    const title = withoutBidiControls(asText(message.TITLE));
    const options: NotificationOptions = {};
    let heading: string;
    if (w.shown < this.#burst) {
      w.shown++;
      heading = clipTitle(title) || this.#untitled;
      options.body = plainText(asText(message.TEXT), isPlainTextFormat(message));
      if (typeof message.ICON === 'string' && /^https?:\/\//i.test(message.ICON)) options.icon = message.ICON;
      // The same notification shown in two tabs of the person (every hidden
      // tab gets it), or twice (a replay), replaces rather than stacks: it is
      // the same SEQ of the same stream, or the sender's same ID. One with
      // neither is known by its words within a window's time: where the tabs
      // share no window (no storage) it still replaces, and the same words
      // an hour later are a new notification.
      options.tag = tag ?? `${contentKey(message)}:${Math.floor(now / this.#windowMs)}`;
    } else {
      // One summary for the rest of the window, replaced in place as more come.
      w.more++;
      heading = clipTitle(this.#moreText(w.more));
      options.body = clipTitle(title) || this.#untitled;
      options.tag = 'herald:more';
    }
    this.#window = w;
    save(windowKey, w);
    try {
      const n = new Notification(heading, options);
      n.onclick = () => {
        window.focus();
        n.close();
      };
      return true;
    } catch {
      return false; // e.g. Android Chrome only allows ServiceWorker notifications.
    }
  }
}
