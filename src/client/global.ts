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
 */
import * as api from './index.js';
import { Dispatcher, type LegacyExtension } from './dispatcher.js';
import { HeraldClient, setDefaultBaseUrl, type HeraldClientOptions } from './herald-client.js';
import { currentScript } from './dom.js';

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
  const client = new HeraldClient({ dispatcher: shared, ...options });
  const previous = byEndpoint.get(client.endpoint);
  if (previous) void previous.close();
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

const g = globalThis as unknown as Record<string, unknown>;
g.Herald = { ...api, connect, dispatcher: shared, get client() { return current; } };
g.AMessageChecker = AMessageChecker;
