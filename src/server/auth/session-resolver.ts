import type { IncomingHttpHeaders } from 'node:http';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';

/**
 * What a resolver sees of a WebSocket handshake: enough to find a session
 * (cookies, headers, query) and nothing that lets it touch the socket.
 */
export interface Handshake {
  /** Which endpoint the tab asked for: `/ws/admin` → admin, `/ws/user` → user. */
  readonly kind: PrincipalKind;
  readonly headers: IncomingHttpHeaders;
  readonly cookies: ReadonlyMap<string, string>;
  readonly query: URLSearchParams;
  readonly remoteAddress: string | undefined;
}

/**
 * The outcome of a look-up. `refused` means the credential admits nobody
 * (HTTP 401; the browser stops retrying). `unavailable` means the resolver
 * could not tell (database down, panel timing out: HTTP 503, retry later).
 * Never confuse the two.
 */
export type Resolution =
  | { readonly outcome: 'admitted'; readonly principal: Principal; /** Opaque, stable id of the credential, used to re-check it; never logged. */ readonly credential: string; /** Epoch ms after which it must be re-checked or dropped, if known. */ readonly expiresAt?: number }
  | { readonly outcome: 'refused'; readonly reason: string; /** The credential was valid and has expired: a fresh one may admit the same person. */ readonly expired?: boolean }
  | { readonly outcome: 'unavailable'; readonly reason: string };

export interface SessionResolver {
  /** A short name for logs and metrics: `token`, `sql`, `http`. */
  readonly name: string;
  /**
   * A resolver that knows at once (a signed token) answers without a
   * promise: the handshake is the connect rate's hot path, and each promise
   * on it is an allocation and a turn of the microtask queue.
   */
  resolve(handshake: Handshake): Resolution | Promise<Resolution>;
  /**
   * Re-checks a credential admitted earlier; `refused` closes that tab with
   * "session ended". Resolvers whose credentials cannot end early (signed
   * tokens until expiry) may answer from `expiresAt` alone.
   */
  recheck(kind: PrincipalKind, credential: string): Promise<Resolution>;
  close(): Promise<void>;
}

/**
 * Parses a Cookie header (RFC 6265 §4.2.1). The first occurrence of a name
 * wins. Only spaces and tabs around a name or value are dropped (§5.2's
 * WSP): String#trim() also dropped U+00A0 (a header byte 0xA0 read as
 * Latin-1), U+FEFF and the like, and a session id sent with one of them
 * passed for printable ASCII.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = withoutWsp(part.slice(0, eq));
    let value = withoutWsp(part.slice(eq + 1));
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (!out.has(name)) {
      try {
        out.set(name, decodeURIComponent(value));
      } catch {
        out.set(name, value);
      }
    }
  }
  return out;
}

/** `text` without the spaces and tabs at either end (HTTP's white space, RFC 6265 §5.2, RFC 9110 §5.6.3). */
function withoutWsp(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && isWsp(text.charCodeAt(start))) start++;
  while (end > start && isWsp(text.charCodeAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

function isWsp(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

/** A refusal, as a resolver answers before it asks anyone (no or malformed credential). */
export type Refusal = Extract<Resolution, { outcome: 'refused' }>;

/**
 * A resolver that asks someone else (a database, the panel) and whose answer
 * depends only on one credential string it can take out of the handshake.
 * That split lets `CachedResolver` cache and share look-ups by credential.
 * `recheck(kind, credential)` is the look-up itself.
 */
export interface CredentialResolver extends SessionResolver {
  /** The credential this handshake carries (never logged), or why there is none. */
  credentialOf(handshake: Handshake): string | Refusal;
}

/** The first value of a header (node joins most repeated headers; a few stay arrays). */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}
