/**
 * Browser tokens minted locally, without a round trip to the server. The
 * claims match the server's TokenResolver (src/server/auth/token-resolver.ts)
 * exactly — HS256, `sub` = `admin:7`, `aud` = `herald`, `iat`, `exp`, `knd` —
 * and test/sdk-browser-sender.test.ts connects a real tab with one, so the
 * two cannot drift apart unnoticed. Duplicated rather than imported because
 * the SDK must not pull in server code.
 */
import { SignJWT } from 'jose';
import { isPersonId, type Principal } from '../protocol/principal.js';
import { HeraldSdkError, shownValue } from './errors.js';

/** The audience the server's TokenResolver requires. */
export const CONNECT_TOKEN_AUDIENCE = 'herald';

/** The longest a browser token may live, in seconds: 31 days, as POST /api/v1/tokens allows. */
export const CONNECT_TOKEN_MAX_TTL_SEC = 31 * 86400;

/** The shortest signing secret the server takes (its option `secret`), in characters. */
export const MIN_SECRET_CHARS = 32;

/**
 * What is wrong with a signing secret, or undefined when the server could
 * have it: a token signed with a shorter one is one no server admits. The
 * one check of BrowserSender's `secret` option and of
 * {@link mintConnectToken}; says how long it is, never what it is.
 */
export function secretFault(secret: unknown): string | undefined {
  if (typeof secret !== 'string') return `must be a string of at least ${MIN_SECRET_CHARS} characters, got ${secret === null ? 'null' : typeof secret}`;
  if (secret.length < MIN_SECRET_CHARS) return `must be at least ${MIN_SECRET_CHARS} characters (the server refuses shorter ones), got ${secret.length}`;
  return undefined;
}

const encoder = new TextEncoder();

/**
 * Signs a token that admits `principal` to `/ws/admin` or `/ws/user` until
 * `ttlSec` seconds from `now` (epoch ms). `secret` is the server's (at least
 * {@link MIN_SECRET_CHARS} characters); `ttlSec` is from 1 to 31 days' worth
 * of seconds, as the server's POST /api/v1/tokens takes it; anything else
 * rejects with HeraldSdkError HERALD_ERR_BAD_ARGUMENT. (Unchecked, 0, -100 or
 * 0.4 gave a 1 s token and 1e20 one that never expired, with an `expiresAt`
 * that is no date; a 5-character secret a token no server admits, and `''`
 * a DOMException.)
 */
export async function mintConnectToken(secret: string, principal: Principal, ttlSec: number, now = Date.now()): Promise<{ token: string; expiresAt: number }> {
  const fault = secretFault(secret);
  if (fault !== undefined) throw new HeraldSdkError('HERALD_ERR_BAD_ARGUMENT', `secret ${fault}`);
  if (typeof ttlSec !== 'number' || !Number.isFinite(ttlSec) || ttlSec < 1 || ttlSec > CONNECT_TOKEN_MAX_TTL_SEC) {
    throw new HeraldSdkError('HERALD_ERR_BAD_ARGUMENT', `ttl must be a number of seconds from 1 up to ${CONNECT_TOKEN_MAX_TTL_SEC} (31 days), got ${shownValue(ttlSec)}`);
  }
  // Unchecked, a kind or id from an untrusted source named someone else: `{kind:'admin:7 ', id:1}`
  // signed `admin:7 :1`, and `{kind:'user', id:'0x10'}` `user:0x10`.
  if ((principal?.kind !== 'admin' && principal?.kind !== 'user') || !isPersonId(principal.id)) {
    throw new HeraldSdkError('HERALD_ERR_BAD_ARGUMENT', `principal must be {kind: 'admin' | 'user', id: a positive integer}, got kind ${shownValue(principal?.kind)} and id ${shownValue(principal?.id)}`);
  }
  const iat = Math.floor(now / 1000);
  const exp = iat + Math.round(ttlSec);
  const token = await new SignJWT({ knd: principal.kind })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(`${principal.kind}:${principal.id}`)
    .setAudience(CONNECT_TOKEN_AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(encoder.encode(secret));
  return { token, expiresAt: exp * 1000 };
}
