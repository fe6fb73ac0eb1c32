import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import { isPersonId } from '../../protocol/principal.js';
import type { Handshake, Resolution, SessionResolver } from './session-resolver.js';

/** The audience every Herald browser token carries, so tokens minted for other systems with the same secret do not admit. */
export const TOKEN_AUDIENCE = 'herald';
/** Where a browser may put its token: the `token` query parameter, or this cookie. */
export const TOKEN_COOKIE = 'herald_token';

const encoder = new TextEncoder();

/** Signs a browser token (HS256 JWT): `sub` = `admin:7`, `aud` = herald, `exp`. */
export async function mintToken(secret: string, principal: Principal, ttlMs: number, now = Date.now()): Promise<string> {
  const iat = Math.floor(now / 1000);
  return new SignJWT({ knd: principal.kind })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(`${principal.kind}:${principal.id}`)
    .setAudience(TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + Math.max(1, Math.round(ttlMs / 1000)))
    .sign(encoder.encode(secret));
}

export interface TokenResolverOptions {
  secret: string;
  /** Accepted too, so that rotating the secret does not drop tabs. */
  previousSecret?: string;
}

/**
 * The embedded default: signed tokens. Nothing to look up, so it is never
 * `unavailable`; a token cannot end before its expiry, so re-checks answer
 * from the signature and `exp` alone.
 */
export class TokenResolver implements SessionResolver {
  readonly name = 'token';
  readonly #keys: Uint8Array[];

  constructor(options: TokenResolverOptions) {
    this.#keys = [options.secret, options.previousSecret].filter((s): s is string => !!s).map((s) => encoder.encode(s));
  }

  async resolve(handshake: Handshake): Promise<Resolution> {
    const token = handshake.query.get('token') ?? handshake.cookies.get(TOKEN_COOKIE);
    if (!token) return { outcome: 'refused', reason: 'no token' };
    return this.verify(handshake.kind, token);
  }

  recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    return this.verify(kind, credential);
  }

  async verify(kind: PrincipalKind, token: string): Promise<Resolution> {
    let lastReason = 'invalid token';
    for (const key of this.#keys) {
      try {
        const { payload } = await jwtVerify(token, key, { audience: TOKEN_AUDIENCE, algorithms: ['HS256'] });
        const [k, id] = (payload.sub ?? '').split(':');
        const n = Number(id);
        if (k !== kind || !isPersonId(n)) return { outcome: 'refused', reason: `token is not for the ${kind} endpoint` };
        return { outcome: 'admitted', principal: { kind, id: n }, credential: token, ...(payload.exp ? { expiresAt: payload.exp * 1000 } : {}) };
      } catch (e) {
        if (e instanceof joseErrors.JWTExpired) return { outcome: 'refused', reason: 'token expired' };
        if (e instanceof joseErrors.JWSSignatureVerificationFailed) {
          lastReason = 'bad token signature';
          continue;
        }
        return { outcome: 'refused', reason: 'invalid token' };
      }
    }
    return { outcome: 'refused', reason: lastReason };
  }

  async close(): Promise<void> {}
}
