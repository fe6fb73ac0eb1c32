/**
 * Herald's browser library: the public API of the ES module build
 * (`herald/client`, dist/client/herald.esm.js). The script-tag build
 * (herald.min.js) exposes the same through the global `Herald`, plus the
 * old `AMessageChecker` (see global.ts).
 */
export { HeraldClient, type HeraldClientOptions, type HeraldEvents, type ConnectionState, type TokenSource } from './herald-client.js';
export { Dispatcher, toNotification, type Handler, type HandlerContext, type LegacyExtension, type DispatchResult, type DispatchVia } from './dispatcher.js';
export { Emitter, type Listener } from './emitter.js';
export { Backoff, type BackoffOptions } from './backoff.js';
export { Toaster, type ToasterOptions } from './toaster.js';
export { DesktopNotifier, type DesktopOptions } from './desktop.js';
export { sanitizeHtml, isSafeUrl, ALLOWED_TAGS, ALLOWED_ATTR } from './sanitize.js';
export type { StreamName } from './delivery.js';
export type { NotificationObject, WelcomeFrame, ResetFrame, StreamCursor, ClientFrame } from '../protocol/frames.js';
export type { CommandProgressFrame, CommandState, CommandSummary } from '../protocol/commands.js';
export { CloseCode, TERMINAL_CLOSE_CODES } from '../protocol/close-codes.js';

import { HeraldClient, type HeraldClientOptions } from './herald-client.js';

/** Creates a client and connects it: `const herald = connect({ kind: 'admin', token })`. */
export function connect(options: HeraldClientOptions = {}): HeraldClient {
  return new HeraldClient({ ...options, autoConnect: options.autoConnect ?? true });
}

declare const __HERALD_VERSION__: string | undefined;
/** The library's version (the package's, stamped in by the build). */
export const VERSION: string = typeof __HERALD_VERSION__ === 'string' ? __HERALD_VERSION__ : 'dev';
