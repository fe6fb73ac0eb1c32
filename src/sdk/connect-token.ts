/**
 * Browser tokens minted locally, without a round trip to the server. The
 * claims match the server's TokenResolver (src/server/auth/token-resolver.ts)
 * exactly — HS256, `sub` = `admin:7`, `aud` = `herald`, `iat`, `exp`, `knd` —
 * and test/sdk-browser-sender.test.ts connects a real tab with one, so the
 * two cannot drift apart unnoticed. Duplicated rather than imported because
 * the SDK must not pull in server code.
 */
import { SignJWT } from 'jose';
import type { Principal } from '../protocol/principal.js';

/** The audience the server's TokenResolver requires. */
export const CONNECT_TOKEN_AUDIENCE = 'herald';

const encoder = new TextEncoder();

/**
 * Signs a token that admits `principal` to `/ws/admin` or `/ws/user` until
 * `ttlSec` seconds from `now` (epoch ms).
 */
export async function mintConnectToken(secret: string, principal: Principal, ttlSec: number, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.max(1, Math.round(ttlSec));
  const token = await new SignJWT({ knd: principal.kind })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(`${principal.kind}:${principal.id}`)
    .setAudience(CONNECT_TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(encoder.encode(secret));
  return { token, expiresAt: exp * 1000 };
}
