/**
 * The public types of HeraldClient: its options, states and connection
 * events.
 */
import type { NotificationObject, WelcomeFrame } from '../protocol/frames.js';
import type { PrincipalKind } from '../protocol/principal.js';
import type { BackoffOptions } from './backoff.js';
import type { StreamName } from './delivery.js';
import type { Dispatcher } from './dispatcher.js';
import type { ToasterOptions } from './toaster.js';
import type { DesktopOptions } from './desktop.js';

export type ConnectionState = 'idle' | 'connecting' | 'open' | 'waiting' | 'closing' | 'closed' | 'rejected';

/** The connection events, with their payloads. */
export interface HeraldEvents {
  /** A WebSocket is being opened (attempt 0 is the first). */
  connecting: { attempt: number };
  /** The server welcomed this tab: who it is, the heartbeat, its streams' heads. */
  connected: { welcome: WelcomeFrame; resumed: boolean };
  /** The connection ended; `willReconnect` says whether the client will try again. */
  disconnected: { code: number; reason: string; willReconnect: boolean };
  /** The next attempt is scheduled in `delayMs`. */
  reconnecting: { attempt: number; delayMs: number };
  /** The credential was refused (4401/4403): no more attempts until `connect()` is called again. */
  rejected: { code: number; reason: string };
  /** The server could not replay from this tab's position: notifications may have been missed. */
  reset: { stream: StreamName; epoch: string; seq: number; reason: string };
  /** An `EVENT` notification (the built-in EVENT handler). */
  event: NotificationObject;
  /** Every frame as received (after JSON parsing), before anything else; for logs and debugging. */
  frame: unknown;
  /** A handler threw, or the server sent an ERROR frame. */
  error: { error: unknown; message?: NotificationObject | undefined; type?: string | undefined };
  /** The connection state changed. */
  state: ConnectionState;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface HeraldClientOptions {
  /** Which endpoint: `admin` (default) or `user`. */
  kind?: PrincipalKind;
  /**
   * Herald's base URL (http(s) or ws(s)), e.g. `https://panel.example.net/herald`.
   * Default: where the script was loaded from, else the page's origin.
   */
  url?: string;
  /** The full WebSocket URL, when it is not `<url>/ws/<kind>` (e.g. the compatibility ports). */
  endpoint?: string;
  /** A signed token, or a function that returns a fresh one before every attempt. Omit to rely on cookies. */
  token?: TokenSource;
  /** Connect in the constructor. Default true. */
  autoConnect?: boolean;
  /** The dispatcher to use (the script build shares one with `AMessageChecker`). Default: a new one. */
  dispatcher?: Dispatcher;
  /** Install the built-in handlers (toasts, command progress, EVENT). Default true. */
  defaultHandlers?: boolean;
  /** Toast options, or false for no toasts. */
  toasts?: ToasterOptions | false;
  /** How many desktop notifications a burst shows one by one before one summary (once the page opted in: `desktop.enable()`). */
  desktop?: DesktopOptions;
  /** Reconnect delays (full jitter, default 500 ms base, 30 s cap; a cap past 2147483647 ms is lowered to it). */
  reconnect?: BackoffOptions;
  /** Heartbeat assumed until WELCOME states the server's, in ms. Default 25000; at most 858993458 (2.5 heartbeats must fit one browser timer), as the server's. */
  heartbeatMs?: number;
  /**
   * How long one attempt — the token function, the WebSocket handshake and
   * the server's WELCOME together — may take before it is given up and
   * retried with backoff, in ms. Default 20000. Shorter finds a server or
   * proxy that accepts connections but never answers sooner; too short
   * never lets a slow token endpoint or a slow network through. `Infinity`:
   * no limit; a finite value past 2147483647 (a browser timer's most) is refused.
   */
  connectTimeoutMs?: number;
  /** Keep delivery cursors in sessionStorage, so a reload resumes. Default true. */
  persistCursors?: boolean;
  /** Batch acks of the person's own stream: about one per this many ms at least (each wait 0.5–1.5× it, so tabs do not ack in step), or longer when WELCOME's ACK_MS asks (many tabs open). Default 1000. */
  ackDelayMs?: number;
  /** Batch acks of the broadcast stream: about one per this many ms at least (each wait 0–2× it), or longer when WELCOME's BROADCAST.ACK_MS asks. Default 2000 (one tab's ack serves all). */
  broadcastAckDelayMs?: number;
  /** The WebSocket constructor (tests, or a polyfill). Default: the global one. */
  WebSocket?: typeof WebSocket;
}
