/**
 * The dispatcher: every notification a tab receives is handed to the
 * handlers registered for its TYPE, as the old `AMessageChecker` did
 * (`extend({TYPE, CALLBACK})`, the seed's extension point).
 *
 * - Handlers of one TYPE run in registration order.
 * - A handler that throws, or returns a promise that rejects (an async
 *   handler), is reported (onError) and the others still run.
 * - A built-in handler (the MESSAGE toast, live command progress, EVENT to
 *   listeners) runs after the page's handlers unless one of them called
 *   `ctx.preventDefault()`.
 * - A TYPE with neither a page handler nor a built-in goes to the fallback
 *   handler (by default: logged at debug level).
 */
import type { NotificationObject } from '../protocol/frames.js';

/** What a handler gets besides the notification. */
export interface HandlerContext {
  /** Skips the built-in handler for this notification (no toast for this MESSAGE). */
  preventDefault(): void;
  readonly defaultPrevented: boolean;
  /** `own` or `broadcast` when the notification came with a SEQ; undefined otherwise. */
  readonly stream: 'own' | 'broadcast' | undefined;
  /** The client it came through, when a client dispatched it (see DispatchVia). */
  readonly via: DispatchVia | undefined;
}

/**
 * The client a notification came through. A page may connect both
 * endpoints, and the script build gives both clients one dispatcher (so
 * AMessageChecker's handlers see both): the built-in handlers and the error
 * report must act for the client that received the notification, not for
 * whichever was made last (an admin's Cancel went out on the user's socket,
 * and its `event` and `error` listeners heard nothing).
 */
export interface DispatchVia {
  /** Where a handler that throws is reported, before the dispatcher's own reporter. */
  reportError: DispatchErrorReporter;
  /** What that client's built-in handlers need (defaults.ts). */
  builtins: unknown;
}

/** A page handler. It may be async: a promise it returns that rejects is reported as a throw is. */
export type Handler<T extends NotificationObject = NotificationObject> = (message: T, ctx: HandlerContext) => void;

/** The old `AMessageChecker.extend` argument. */
export interface LegacyExtension {
  TYPE: string;
  CALLBACK: (message: NotificationObject) => void;
}

export type DispatchErrorReporter = (error: unknown, message: NotificationObject, type: string) => void;

export interface DispatchResult {
  /** How many page handlers ran (including those that threw). */
  handled: number;
  /** True when a built-in ran. */
  builtin: boolean;
  /** True when the fallback ran (nobody knew this TYPE). */
  fallback: boolean;
}

export class Dispatcher {
  readonly #handlers = new Map<string, Handler[]>();
  readonly #builtins = new Map<string, Handler>();
  #fallback: Handler = (message) => console.debug('[herald] no handler for TYPE', message.TYPE);
  #onError: DispatchErrorReporter = (error, _message, type) => console.error(`[herald] a handler of ${type} threw`, error);

  /** Registers a page handler for `type`; returns a function that removes it. */
  on<T extends NotificationObject = NotificationObject>(type: string, handler: Handler<T>): () => void {
    if (typeof type !== 'string' || type === '') throw new TypeError('on(type, handler): type must be a non-empty string');
    if (typeof handler !== 'function') throw new TypeError('on(type, handler): handler must be a function');
    const list = this.#handlers.get(type) ?? [];
    // A wrapper per registration, so that registering the same function twice
    // yields two independent subscriptions and each unsubscribe removes one.
    const entry: Handler = (m, c) => handler(m as T, c);
    list.push(entry);
    this.#handlers.set(type, list);
    return () => {
      const current = this.#handlers.get(type);
      if (!current) return;
      const i = current.indexOf(entry);
      if (i >= 0) current.splice(i, 1);
      if (current.length === 0) this.#handlers.delete(type);
    };
  }

  /**
   * The old `AMessageChecker.extend({TYPE, CALLBACK})`. Accepts one extension
   * or a list of them; returns the unsubscribe function(s) of `on`.
   */
  extend(extension: LegacyExtension): () => void;
  extend(extensions: readonly LegacyExtension[]): Array<() => void>;
  extend(ext: LegacyExtension | readonly LegacyExtension[]): (() => void) | Array<() => void> {
    if (Array.isArray(ext)) return ext.map((e: LegacyExtension) => this.extend(e));
    const one = ext as LegacyExtension;
    if (!one || typeof one.TYPE !== 'string' || typeof one.CALLBACK !== 'function') {
      throw new TypeError('extend({TYPE, CALLBACK}): TYPE must be a string and CALLBACK a function');
    }
    const callback = one.CALLBACK;
    return this.on(one.TYPE, (message) => callback(message));
  }

  /** Sets (or, with undefined, removes) the built-in handler of a TYPE. */
  setBuiltin(type: string, handler: Handler | undefined): void {
    if (handler) this.#builtins.set(type, handler);
    else this.#builtins.delete(type);
  }

  hasBuiltin(type: string): boolean {
    return this.#builtins.has(type);
  }

  /** The handler for TYPEs nobody registered. */
  setFallback(handler: Handler): void {
    this.#fallback = handler;
  }

  /** Where handler errors go (the client turns them into an `error` event). */
  setErrorReporter(reporter: DispatchErrorReporter): void {
    this.#onError = reporter;
  }

  /** Number of page handlers registered for a TYPE. */
  count(type: string): number {
    return this.#handlers.get(type)?.length ?? 0;
  }

  /** Runs the handlers for one notification. Never throws. */
  dispatch(message: NotificationObject, stream?: 'own' | 'broadcast', via?: DispatchVia): DispatchResult {
    const type = message.TYPE;
    let prevented = false;
    const ctx: HandlerContext = {
      preventDefault: () => {
        prevented = true;
      },
      get defaultPrevented() {
        return prevented;
      },
      stream,
      via,
    };
    // Copy first: a handler that unsubscribes itself (or adds another) must
    // not change who runs for this notification.
    const list = [...(this.#handlers.get(type) ?? [])];
    for (const handler of list) this.#run(handler, message, ctx, type);
    const builtin = this.#builtins.get(type);
    if (builtin && !prevented) {
      this.#run(builtin, message, ctx, type);
      return { handled: list.length, builtin: true, fallback: false };
    }
    if (list.length === 0 && !builtin) {
      this.#run(this.#fallback, message, ctx, type);
      return { handled: 0, builtin: false, fallback: true };
    }
    return { handled: list.length, builtin: false, fallback: false };
  }

  #run(handler: Handler, message: NotificationObject, ctx: HandlerContext, type: string): void {
    const report = (error: unknown) => {
      try {
        (ctx.via?.reportError ?? this.#onError)(error, message, type);
      } catch {
        // A broken reporter must not break dispatch either.
      }
    };
    try {
      const result: unknown = handler(message, ctx);
      // An async handler (`async (m) => { ... }`) does not throw, it rejects:
      // unwatched, that is an unhandled rejection the client never reports.
      // Not awaited: the next handler does not wait for it.
      if (isThenable(result)) result.then(undefined, report);
    } catch (error) {
      report(error);
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * Turns whatever arrived into a notification object: the old daemon could
 * deliver a plain string (docs/browser.md, "The dispatcher's rules"), which the page sees as a MESSAGE
 * whose TEXT is that string.
 */
export function toNotification(value: unknown): NotificationObject | undefined {
  if (typeof value === 'string') return { TYPE: 'MESSAGE', TEXT: value };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    if (typeof obj.TYPE === 'string' && obj.TYPE !== '') return obj as NotificationObject;
    // The legacy protocol gives DATA without a TYPE the TYPE MESSAGE; do the same here.
    if (obj.TYPE === undefined) return { ...obj, TYPE: 'MESSAGE' };
  }
  return undefined;
}
