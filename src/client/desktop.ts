/**
 * Optional desktop notifications (the Notification API) for a tab that is
 * hidden. Off until the page opts in with `enable()`, which must be called
 * from a user gesture (a click), because browsers ignore permission requests
 * that are not; the choice is remembered in localStorage.
 */
import type { NotificationObject } from '../protocol/frames.js';
import { asText, clipTitle, isPlainTextFormat, plainText } from './sanitize.js';

const STORAGE_KEY = 'herald:desktop';

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined; // Storage can throw when cookies are blocked.
  }
}

/**
 * What tells two desktop notifications apart: the sender's ID when it gave
 * one, else the notification's place in its stream (SEQ of the person's own
 * stream or of the broadcast stream, in that history's EPOCH), the same in
 * every tab of the person. A live-only notification has neither: no tag.
 */
export function desktopTag(message: NotificationObject): string | undefined {
  if (message.ID !== undefined && message.ID !== null) return `herald:${asText(message.ID)}`;
  const m = message as NotificationObject & { SEQ?: unknown; EPOCH?: unknown; STREAM?: unknown };
  if (typeof m.SEQ === 'number' && typeof m.EPOCH === 'string') return `herald:${m.STREAM === '*' ? '*' : 'own'}:${m.EPOCH}:${m.SEQ}`;
  return undefined;
}

export interface DesktopOptions {
  /** Desktop notifications shown one by one in each `burstWindowMs`, at most; the rest are one summary. Default 3. */
  burst?: number;
  /** The window of `burst`, in ms. Default 10000. */
  burstWindowMs?: number;
  /** The summary's title for `count` more notifications in the window. Default `"<count> more notifications"`. */
  moreText?: (count: number) => string;
}

export class DesktopNotifier {
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #moreText: (count: number) => string;
  #windowStart = -Infinity;
  #shown = 0;
  #more = 0;

  /**
   * A hidden tab that connects after a day away is replayed what nobody
   * acknowledged, up to a thousand notifications in a second: one desktop
   * notification each buried the desktop. So the first `burst` of each window
   * are shown one by one, and the rest update one summary notification in
   * place (its tag), which names the latest.
   */
  constructor(options: DesktopOptions = {}) {
    this.#burst = options.burst ?? 3;
    this.#windowMs = options.burstWindowMs ?? 10_000;
    this.#moreText = options.moreText ?? ((n) => `${n} more notification${n === 1 ? '' : 's'}`);
  }

  /** True when the page opted in and the browser granted permission. */
  get enabled(): boolean {
    return typeof Notification !== 'undefined' && Notification.permission === 'granted' && storage()?.getItem(STORAGE_KEY) === '1';
  }

  /** Asks for permission (call from a click handler) and opts in when granted. */
  async enable(): Promise<NotificationPermission | 'unsupported'> {
    if (typeof Notification === 'undefined') return 'unsupported';
    const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    if (permission === 'granted') storage()?.setItem(STORAGE_KEY, '1');
    return permission;
  }

  disable(): void {
    storage()?.removeItem(STORAGE_KEY);
  }

  /** Shows a MESSAGE on the desktop when the tab is hidden and the page opted in. Returns whether it did. */
  maybeShow(message: NotificationObject): boolean {
    if (document.visibilityState !== 'hidden' || !this.enabled) return false;
    let title = clipTitle(asText(message.TITLE)) || 'Notification';
    let body = plainText(asText(message.TEXT), isPlainTextFormat(message));
    const options: NotificationOptions = {};
    const now = Date.now();
    if (now - this.#windowStart >= this.#windowMs) {
      this.#windowStart = now;
      this.#shown = 0;
      this.#more = 0;
    }
    if (this.#shown < this.#burst) {
      this.#shown++;
      if (typeof message.ICON === 'string' && /^https?:\/\//i.test(message.ICON)) options.icon = message.ICON;
      // The same notification shown in two tabs of the person (every hidden
      // tab gets it), or twice (a replay), replaces rather than stacks: it is
      // the same SEQ of the same stream, or the sender's same ID.
      const tag = desktopTag(message);
      if (tag !== undefined) options.tag = tag;
    } else {
      // One summary for the rest of the window, replaced in place as more come.
      this.#more++;
      body = title;
      title = clipTitle(this.#moreText(this.#more));
      options.tag = 'herald:more';
    }
    options.body = body;
    try {
      const n = new Notification(title, options);
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
