import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import { parsePrincipalKey } from '../../protocol/principal.js';
import type { Handshake, Resolution, SessionResolver } from './session-resolver.js';

/** The audience every Herald browser token carries, so tokens minted for other systems with the same secret do not admit. */
export const TOKEN_AUDIENCE = 'herald';
/** Where a browser may put its token: the `token` query parameter, or this cookie. */
export const TOKEN_COOKIE = 'herald_token';

const encoder = new TextEncoder();

/**
 * The `exp` (epoch seconds) of a token minted at `now` (epoch ms) for `ttlMs`:
 * whole seconds from the current second, at least one. Told to whoever asked
 * for the token as `expiresAt` (× 1000), so that it says when the token ends.
 */
export function tokenExpiry(ttlMs: number, now: number): number {
  return Math.floor(now / 1000) + Math.max(1, Math.round(ttlMs / 1000));
}

/** Signs a browser token (HS256 JWT): `sub` = `admin:7`, `aud` = herald, `exp`. */
export async function mintToken(secret: string, principal: Principal, ttlMs: number, now = Date.now()): Promise<string> {
  return new SignJWT({ knd: principal.kind })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(`${principal.kind}:${principal.id}`)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(tokenExpiry(ttlMs, now))
    .sign(encoder.encode(secret));
}

export interface TokenResolverOptions {
  secret: string;
  /** Accepted too, so that rotating the secret does not drop tabs. */
  previousSecret?: string;
  /** How far the minting backend's clock may be from this one (ms): `exp` and `nbf` are checked with this much slack. Default 0. */
  clockSkewMs?: number;
}

/**
 * The embedded default: signed tokens. Nothing to look up, so it is never
 * `unavailable`; a token cannot end before its expiry, so re-checks answer
 * from its claims alone.
 */
export class TokenResolver implements SessionResolver {
  readonly name = 'token';
  readonly #keys: KeyObject[];
  readonly #skewMs: number;

  constructor(options: TokenResolverOptions) {
    this.#keys = [options.secret, options.previousSecret].filter((s): s is string => !!s).map((s) => createSecretKey(Buffer.from(s, 'utf8')));
    this.#skewMs = options.clockSkewMs ?? 0;
  }

  /** Synchronous: the signature and the claims are all there is to check. */
  resolve(handshake: Handshake): Resolution {
    // An empty `?token=` is no token: the cookie's, if any, is used.
    const token = handshake.query.get('token') || handshake.cookies.get(TOKEN_COOKIE);
    if (!token) return { outcome: 'refused', reason: 'no token' };
    return this.check(handshake.kind, token);
  }

  /**
   * A token this resolver admitted: its signature was checked then, and the
   * keys cannot change while the process runs, so only the claims are
   * checked again: what time changes (`exp`, `nbf`), and the audience and
   * endpoint as at admission. No HMAC: a round over 10,000 tabs is then
   * about half the work (docs/bench-history.md, fifteenth round).
   */
  async recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    return this.#answer(kind, credential, readClaims(credential, Date.now(), this.#skewMs));
  }

  /** The token's signature and claims, checked for the `kind` endpoint at `now`. */
  check(kind: PrincipalKind, token: string, now = Date.now()): Resolution {
    return this.#answer(kind, token, verifyHs256(token, this.#keys, now, this.#skewMs));
  }

  #answer(kind: PrincipalKind, token: string, checked: Verified): Resolution {
    if (!checked.ok) return { outcome: 'refused', reason: checked.reason, ...(checked.reason === 'token expired' ? { expired: true } : {}) };
    // Only `admin:7` as minted: read loosely, `admin:07`, `admin:0x7` or `admin:7:user` admitted admin 7.
    const principal = typeof checked.payload.sub === 'string' ? parsePrincipalKey(checked.payload.sub) : undefined;
    if (principal?.kind !== kind) return { outcome: 'refused', reason: `token is not for the ${kind} endpoint` };
    // Re-checked (and its tab closed) when the slack after `exp` is over too, not before.
    return { outcome: 'admitted', principal, credential: token, expiresAt: checked.payload.exp * 1000 + this.#skewMs };
  }

  async close(): Promise<void> {}
}

type Verified = { ok: true; payload: Record<string, unknown> & { exp: number } } | { ok: false; reason: string };

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** The last header accepted: every token Herald mints has the same one, so it is decoded once, not per handshake. */
let knownHeader = '';

function acceptableHeader(h: string): boolean {
  if (h === knownHeader) return true;
  const header = decodeJson(h);
  if (!header || header.alg !== 'HS256' || header.crit !== undefined || header.b64 !== undefined) return false;
  knownHeader = h;
  return true;
}

/**
 * Verifies a compact HS256 JWT (RFC 7515 §5.2, RFC 7519 §7.2) with node's own
 * HMAC, synchronously. Tokens are signed with jose (mintToken); verifying
 * them through jose's WebCrypto path cost ~90 µs a handshake here against
 * ~8 µs for this, and the handshake is the connect rate's hot path
 * (docs/bench-history.md, second round). It accepts exactly what mintToken
 * produces: the header's `alg` must be HS256 and nothing else (no `none`, no
 * `crit`), the signature is compared in constant time, `aud` must name
 * Herald, `exp` is required and `nbf` honoured, each with `skewMs` of slack,
 * `iat` must be a number when present
 * for a minting backend whose clock is off (jose's `clockTolerance`).
 * test/auth-token-verify.test.ts checks it against jose.
 */
export function verifyHs256(token: string, keys: readonly KeyObject[], now = Date.now(), skewMs = 0): Verified {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((p) => B64URL.test(p))) return { ok: false, reason: 'invalid token' };
  const [h, p, sig] = parts as [string, string, string];
  if (!acceptableHeader(h)) return { ok: false, reason: 'invalid token' };
  const given = Buffer.from(sig, 'base64url');
  let signed = false;
  for (const key of keys) {
    const mac = createHmac('sha256', key).update(`${h}.${p}`).digest();
    if (mac.length === given.length && timingSafeEqual(mac, given)) {
      signed = true;
      break;
    }
  }
  if (!signed) return { ok: false, reason: 'bad token signature' };
  return checkClaims(p, now, skewMs);
}

/** The claims of a token whose signature was checked before (TokenResolver.recheck). */
function readClaims(token: string, now: number, skewMs: number): Verified {
  const parts = token.split('.');
  if (parts.length !== 3 || !B64URL.test(parts[1]!)) return { ok: false, reason: 'invalid token' };
  return checkClaims(parts[1]!, now, skewMs);
}

/**
 * The payload's claims at `now`: `aud` names Herald, `exp` is required and
 * in the future, `nbf` is past; `exp` and `nbf` each `skewMs` more lenient;
 * `iat`, when present, is a number.
 */
function checkClaims(p: string, now: number, skewMs: number): Verified {
  const payload = decodeJson(p);
  if (!payload) return { ok: false, reason: 'invalid token' };
  const aud = payload.aud;
  if (!(aud === TOKEN_AUDIENCE || (Array.isArray(aud) && aud.includes(TOKEN_AUDIENCE)))) return { ok: false, reason: 'invalid token' };
  const exp = payload.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return { ok: false, reason: 'invalid token' };
  if (exp <= Math.floor((now - skewMs) / 1000)) return { ok: false, reason: 'token expired' };
  if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf > Math.floor((now + skewMs) / 1000))) return { ok: false, reason: 'invalid token' };
  // Not compared with anything (a future `iat` is no reason to refuse, for jose either), but one
  // that is there must be a date: jose refuses `"iat": "yesterday"` ("iat" claim must be a number).
  if (payload.iat !== undefined && (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat))) return { ok: false, reason: 'invalid token' };
  return { ok: true, payload: payload as Record<string, unknown> & { exp: number } };
}
