/**
 * Entry of the script-tag build (herald.min.js, an IIFE). It defines two
 * globals:
 *
 * - `Herald`: everything index.ts exports; `Herald.connect({kind, token})`
 *   returns a connected client that shares one dispatcher with...
 * - `AMessageChecker`: the old daemon's dispatcher, for pages written
 *   against it (the seed's extension point): `AMessageChecker.extend({TYPE,
 *   CALLBACK})` and `AMessageChecker.processData(message)`. Handlers added
 *   before `Herald.connect` are kept. It also has the rest of the panel's own
 *   messageChecker.js object (`start`, `stop`, `unsubscribe`, `seenMessage`,
 *   `showMessage`), since the panel's page footer calls `start` before its
 *   `extend`: an unchanged footer runs. When the page loads its own
 *   messageChecker.js too, before or after this script, see adopt().
 *
 * A page that loads the script twice (a layout includes it for
 * AMessageChecker, a widget's template includes the snippet again) keeps the
 * first copy's globals: see install().
 */
import type * as api from './index.js';
import { Backoff, CloseCode, DesktopNotifier, Emitter, isSafeUrl, sanitizeHtml, TERMINAL_CLOSE_CODES, Toaster, VERSION, ALLOWED_ATTR, ALLOWED_TAGS } from './index.js';
import { Dispatcher, toNotification, type LegacyExtension } from './dispatcher.js';
import { endpointOf, HeraldClient, setDefaultBaseUrl, type HeraldClientOptions } from './herald-client.js';
import { currentScript } from './dom.js';

/**
 * Marks a `Herald` global as this library's (a non-enumerable property, so
 * it does not show among the API's names). Symbol.for: the same symbol in
 * every copy of the script, whatever its version.
 */
const MARK = Symbol.for('herald');
const g = globalThis as unknown as Record<string, unknown>;

/** The global `AMessageChecker`: Herald's dispatcher, with the rest of the old object's members. */
interface MessageChecker {
  /** `extend({TYPE, CALLBACK})`, or a list of them; returns the unsubscribe function(s). */
  extend(ext: LegacyExtension | LegacyExtension[]): (() => void) | Array<() => void>;
  /** `on(TYPE, handler)`, the modern form. */
  on: Dispatcher['on'];
  /** Hands a notification (object or JSON string) to the handlers, as if it had arrived. */
  processData(data: unknown): void;
  dispatcher: Dispatcher;
  /** Nothing to start: `Herald.connect` connects. The footer's `start(EVENT_PARAMS)` must not throw. */
  start(parameters?: unknown): void;
  /** Nothing to stop (`Herald.client.close()` closes). */
  stop(): void;
  unsubscribe(): void;
  seenMessage(id?: unknown): void;
  /** Shows a MESSAGE (object, or a string as its TEXT) as a toast, without running the page's handlers. */
  showMessage(message: unknown): void;
  /** What a page's own messageChecker.js brought besides (adopt()). */
  [member: string]: unknown;
}

/**
 * The members that stay Herald's when the page's own messageChecker.js is
 * met: through them the page's handlers see Herald's notifications. The
 * others (`start`, `showMessage`, ...) become the page's own, which keep
 * doing what they did beside the old script (the panel's own polling).
 */
const HERALD_MEMBERS: ReadonlySet<string> = new Set(['extend', 'on', 'processData', 'dispatcher']);

function install(): void {
  // Where this script came from is where Herald is (unless the page says
  // otherwise): the real <script> element, never an element the page's HTML
  // named "currentScript" (dom.ts), which would send the token elsewhere.
  const script = currentScript();
  if (script?.src) setDefaultBaseUrl(new URL('.', script.src).toString());

  const shared = new Dispatcher();
  let current: HeraldClient | undefined;
  /** The clients Herald.connect made, one per endpoint. */
  const byEndpoint = new Map<string, HeraldClient>();

  /**
   * A client that uses the shared dispatcher, so AMessageChecker's handlers see
   * its notifications. One per endpoint: a page that runs the snippet twice (a
   * template included twice) would otherwise keep two sockets for one person,
   * show every toast twice, and have two clients keep the endpoint's cursors;
   * the earlier client is closed. A page may still connect both endpoints.
   */
  function connect(options: HeraldClientOptions = {}): HeraldClient {
    // The earlier client is closed before the new one is made: from close()
    // on it hands on and records nothing (herald-client.ts, #onText), so the
    // cursors the new client reads from sessionStorage are final, and what
    // the old socket still receives comes again, once, through the new one.
    const previous = byEndpoint.get(endpointOf(options));
    if (previous) void previous.close();
    const client = new HeraldClient({ dispatcher: shared, ...options });
    byEndpoint.set(client.endpoint, client);
    current = client;
    return client;
  }

  /** The last client connected, or (none yet) one made without connecting, so the built-in handlers and the toaster exist. */
  function client(): HeraldClient {
    current ??= new HeraldClient({ dispatcher: shared, autoConnect: false });
    return current;
  }

  /** The page's own AMessageChecker (its messageChecker.js), once met. */
  let pageChecker: Record<string, unknown> | undefined;

  const AMessageChecker: MessageChecker = {
    extend(ext: LegacyExtension | LegacyExtension[]) {
      const off = Array.isArray(ext) ? shared.extend(ext) : shared.extend(ext);
      // Also with the page's own object, so that what its own polling hands
      // to its own processData still reaches the handler, as before Herald.
      const pageExtend = pageChecker?.extend;
      if (typeof pageExtend === 'function') {
        for (const one of Array.isArray(ext) ? ext : [ext]) {
          try {
            pageExtend.call(pageChecker, one);
          } catch (error) {
            console.error("[herald] the page's own AMessageChecker.extend threw", error);
          }
        }
      }
      return off;
    },
    on: shared.on.bind(shared),
    processData(data: unknown): void {
      client().process(data);
    },
    dispatcher: shared,
    start(): void {},
    stop(): void {},
    unsubscribe(): void {},
    seenMessage(): void {},
    showMessage(message: unknown): void {
      const m = toNotification(message);
      if (m) client().toaster?.show(m);
    },
  };

  /**
   * Takes in the page's own AMessageChecker (the panel's messageChecker.js):
   * its members other than HERALD_MEMBERS replace Herald's stand-ins, so its
   * `start` still starts what it started, while `extend` and `processData`
   * stay Herald's (handlers added through them see Herald's notifications).
   * Met two ways: already the global when this script runs (loaded before
   * it), or assigned to the global later (loaded after it: `var
   * AMessageChecker = ...` calls the setter below instead of replacing
   * Herald's object, whose handlers would then never run).
   */
  function adopt(value: unknown): void {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null || value === AMessageChecker) return;
    pageChecker = value as Record<string, unknown>;
    for (const [key, member] of Object.entries(pageChecker)) if (!HERALD_MEMBERS.has(key)) AMessageChecker[key] = member;
  }

  // Named one by one, not spread from `import * as`: the bundler's namespace
  // object is built with a for-in loop that also walks Object.prototype, and a
  // page's enumerable non-function there (`Object.prototype.x = 1`) made it
  // throw as the script loaded. `satisfies`: every name index.ts exports is here.
  const herald = {
    HeraldClient,
    Dispatcher,
    toNotification,
    Emitter,
    Backoff,
    Toaster,
    DesktopNotifier,
    sanitizeHtml,
    isSafeUrl,
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    CloseCode,
    TERMINAL_CLOSE_CODES,
    VERSION,
    connect,
    dispatcher: shared,
    get client() {
      return current;
    },
  } satisfies Record<keyof typeof api, unknown> & Record<string, unknown>;
  Object.defineProperty(herald, MARK, { value: true });
  g.Herald = herald;
  adopt(g.AMessageChecker);
  const own = Object.getOwnPropertyDescriptor(globalThis, 'AMessageChecker');
  if (own && !own.configurable) {
    // The page's `var AMessageChecker` made a property that cannot be
    // redefined; it ran already (adopted above), so plain assignment will do.
    g.AMessageChecker = AMessageChecker;
  } else {
    // Configurable, so a page's `function AMessageChecker` still declares.
    Object.defineProperty(globalThis, 'AMessageChecker', {
      get: () => AMessageChecker,
      set: adopt,
      enumerable: true,
      configurable: true,
    });
  }
}

const existing = g.Herald;
// A second copy of the script leaves the first one's globals in place: its
// own dispatcher, client map and toast stack would start empty, so the
// handlers the page added through the first copy would stop running, and a
// second Herald.connect would not find (and close) the first copy's client:
// two sockets, every toast twice.
if (!(typeof existing === 'object' && existing !== null && (existing as Record<symbol, unknown>)[MARK] === true)) install();
