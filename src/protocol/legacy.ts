/**
 * The old daemon's TCP control protocol ("Internal" plugin, docs/legacy.md, "Requests and answers"):
 * the answers a backend gets back. Shared with the SDK (whose `jsonRequest`
 * answers as the old daemon would), so it imports neither Node nor the DOM.
 */

/** Any JSON value (what `JSON.parse` can produce). */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/**
 * The error texts of the old daemon, kept byte for byte: old backends compare
 * them. Herald's own errors (which say what exactly is wrong) add a `CODE`.
 */
export const LegacyErrorText = {
  /** Not JSON, not an object, or no `TYPE` (the old daemon's wording). */
  INCORRECT_REQUEST: 'INCORRECT REQUEST',
  /** A `TYPE` the protocol does not know (the old daemon's wording). */
  UNKNOWN_TYPE: 'UNKNOWN MESSAGE TYPE',
} as const;

export interface LegacyPongAnswer { TYPE: 'PONG' }
/** A MESSAGE reached tabs: one `1` per tab. */
export interface LegacyResultAnswer { TYPE: 'RESULT'; RESULT: number[] }
/** REQUEST_LIST: the ids online now, a flat list (the old daemon nested it by mistake). */
export interface LegacyListAnswer { TYPE: 'RESULT'; LIST: number[] }
export interface LegacyErrorAnswer {
  TYPE: 'ERROR';
  ERROR: string;
  /** Herald's stable error code (HERALD_ERR_*); absent on the old daemon's own two errors. */
  CODE?: string;
}

/**
 * One answer of the legacy protocol. `0` and `1` are the old daemon's bare
 * answers (MESSAGE that reached no tab, broadcast to nobody; accepted); a
 * PROXY to the Internal plugin answers its `ECHO` value, any JSON value.
 */
export type LegacyAnswer = LegacyPongAnswer | LegacyResultAnswer | LegacyListAnswer | LegacyErrorAnswer | 0 | 1 | JsonValue;

/** The ABillS default port of the legacy listener. */
export const LEGACY_DEFAULT_PORT = 19444;
