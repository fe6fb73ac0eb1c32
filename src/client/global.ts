/**
 * Entry of the script-tag build (herald.min.js, an IIFE). It defines two
 * globals:
 *
 * - `Herald`: everything index.ts exports; `Herald.connect({kind, token})`
 *   returns a connected client that shares one dispatcher with...
 * - `AMessageChecker`: the old daemon's dispatcher, for pages written
 *   against it (the seed's extension point): `AMessageChecker.extend({TYPE,
 *   CALLBACK})` and `AMessageChecker.processData(message)`. Handlers added
 *   before `Herald.connect` are kept.
 *
 * A page that loads the script twice (a layout includes it for
 * AMessageChecker, a widget's template includes the snippet again) keeps the
 * first copy's globals: see install().
 */
import * as api from './index.js';
import { Dispatcher, type LegacyExtension } from './dispatcher.js';
import { endpointOf, HeraldClient, setDefaultBaseUrl, type HeraldClientOptions } from './herald-client.js';
import { currentScript } from './dom.js';

/**
 * Marks a `Herald` global as this library's (a non-enumerable property, so
 * it does not show among the API's names). Symbol.for: the same symbol in
 * every copy of the script, whatever its version.
 */
const MARK = Symbol.for('herald');
const g = globalThis as unknown as Record<string, unknown>;

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

  const AMessageChecker = {
    /** `extend({TYPE, CALLBACK})`, or a list of them; returns the unsubscribe function(s). */
    extend(ext: LegacyExtension | LegacyExtension[]) {
      return Array.isArray(ext) ? shared.extend(ext) : shared.extend(ext);
    },
    /** `on(TYPE, handler)`, the modern form. */
    on: shared.on.bind(shared),
    /** Hands a notification (object or JSON string) to the handlers, as if it had arrived. */
    processData(data: unknown): void {
      if (current) {
        current.process(data);
        return;
      }
      // No connection yet: make one without connecting so the built-in handlers exist.
      current = new HeraldClient({ dispatcher: shared, autoConnect: false });
      current.process(data);
    },
    dispatcher: shared,
  };

  const herald = { ...api, connect, dispatcher: shared, get client() { return current; } };
  Object.defineProperty(herald, MARK, { value: true });
  g.Herald = herald;
  g.AMessageChecker = AMessageChecker;
}

const existing = g.Herald;
// A second copy of the script leaves the first one's globals in place: its
// own dispatcher, client map and toast stack would start empty, so the
// handlers the page added through the first copy would stop running, and a
// second Herald.connect would not find (and close) the first copy's client:
// two sockets, every toast twice.
if (!(typeof existing === 'object' && existing !== null && (existing as Record<symbol, unknown>)[MARK] === true)) install();
