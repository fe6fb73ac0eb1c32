/**
 * Optional desktop notifications (the Notification API) for a tab that is
 * hidden. Off until the page opts in with `enable()`, which must be called
 * from a user gesture (a click), because browsers ignore permission requests
 * that are not; the choice is remembered in localStorage.
 */
import type { NotificationObject } from '../protocol/frames.js';
import { isPlainTextFormat, plainText } from './sanitize.js';

const STORAGE_KEY = 'herald:desktop';

function storage(): Storage | undefined {
  try {
    return globalThis.localStorage;
  } catch {
    return undefined; // Storage can throw when cookies are blocked.
  }
}

export class DesktopNotifier {
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
    const title = typeof message.TITLE === 'string' && message.TITLE !== '' ? message.TITLE : 'Notification';
    const body = typeof message.TEXT === 'string' ? plainText(message.TEXT, isPlainTextFormat(message)) : '';
    const options: NotificationOptions = { body };
    if (typeof message.ICON === 'string' && /^https?:\/\//i.test(message.ICON)) options.icon = message.ICON;
    // The same ID shown in two tabs (or twice) replaces rather than stacks.
    if (message.ID !== undefined) options.tag = `herald:${String(message.ID)}`;
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
