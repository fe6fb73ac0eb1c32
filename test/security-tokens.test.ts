/**
 * Forged and misused browser tokens against real handshakes on a real
 * Herald (token resolver): every one is refused with 401 before the upgrade,
 * none crashes or hangs the server, and none of them reaches the log, which
 * is captured at trace level.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';
import { TestTab } from './helpers/ws-client.js';
import { mintToken } from '../src/server/auth/token-resolver.js';

const SECRET = randomBytes(32).toString('base64url');
const OTHER_SECRET = randomBytes(32).toString('base64url');
const enc = new TextEncoder();
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A token with any header and claims, signed with HMAC-SHA256 under `secret` whatever the header says. */
function forge(header: Record<string, unknown>, claims: Record<string, unknown>, secret = SECRET): string {
  const signingInput = `${b64(header)}.${b64(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

describe('forged and misused tokens', () => {
  let h: AuthHerald;
  let good: string;
  const nowSec = () => Math.floor(Date.now() / 1000);
  const used: string[] = [];

  before(async () => {
    h = await startAuthHerald({ secret: SECRET });
    good = await mintToken(SECRET, { kind: 'admin', id: 7 }, 60_000);
  });
  after(() => h?.close());

  async function status(token: string, kind: 'admin' | 'user' = 'admin'): Promise<number> {
    used.push(token);
    return h.status(kind, { query: { token } });
  }

  test('the genuine token is admitted (the refusals below are not for want of one)', async () => {
    assert.equal(await status(good), 101);
  });

  const claims = () => ({ sub: 'admin:7', aud: 'herald', exp: nowSec() + 60 });
  const cases: Array<[string, () => Promise<string> | string]> = [
    ['alg none, unsigned', () => new UnsecuredJWT(claims()).encode()],
    ['alg none with the genuine signature kept', () => {
      const [, p, s] = good.split('.');
      return `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`;
    }],
    ['alg "None" (case games)', () => forge({ alg: 'None' }, claims())],
    ['alg HS512 header over an HS256 MAC (alg confusion)', () => forge({ alg: 'HS512', typ: 'JWT' }, claims())],
    ['alg RS256 header over an HMAC keyed with the secret', () => forge({ alg: 'RS256' }, claims())],
    ['crit header the verifier does not understand', () => forge({ alg: 'HS256', crit: ['exp'] }, claims())],
    ['a valid signature under another secret', () => new SignJWT(claims()).setProtectedHeader({ alg: 'HS256' }).sign(enc.encode(OTHER_SECRET))],
    ['expired', () => forge({ alg: 'HS256' }, { ...claims(), exp: nowSec() - 1 })],
    ['not valid yet (nbf in the future)', () => forge({ alg: 'HS256' }, { ...claims(), nbf: nowSec() + 3600 })],
    ['no exp at all', () => forge({ alg: 'HS256' }, { sub: 'admin:7', aud: 'herald' })],
    ['exp as a string', () => forge({ alg: 'HS256' }, { ...claims(), exp: String(nowSec() + 60) })],
    ['another audience', () => forge({ alg: 'HS256' }, { ...claims(), aud: 'billing' })],
    ['a subject that is not a person id', () => forge({ alg: 'HS256' }, { ...claims(), sub: 'admin:0' })],
    ['a subject of another kind', () => forge({ alg: 'HS256' }, { ...claims(), sub: 'root:7' })],
    // Signed with the real secret, so only the reading of `sub` refuses them: each admitted admin 7.
    ...['admin:07', 'admin:7.0', 'admin:0x7', 'admin: 7', 'admin:7e0', 'admin:7:user', 'admin:7 ', 'admin:+7'].map(
      (sub): [string, () => string] => [`a subject written otherwise than minted (${JSON.stringify(sub)})`, () => forge({ alg: 'HS256' }, { ...claims(), sub })],
    ),
    ['the payload swapped, the signature kept', () => {
      const [h0, , s] = good.split('.');
      return `${h0}.${b64({ ...claims(), sub: 'admin:1' })}.${s}`;
    }],
    ['the signature cut short', () => good.slice(0, -10)],
    ['the signature empty', () => good.slice(0, good.lastIndexOf('.') + 1)],
    ['malformed base64 in every part', () => '!!!.@@@.###'],
    ['standard base64 (+ and /) instead of base64url', () => good.replace(/-/g, '+').replace(/_/g, '/') + (good.includes('-') || good.includes('_') ? '' : '+')],
    ['four parts', () => `${good}.x`],
    ['a JSON payload that is not an object', () => forge({ alg: 'HS256' }, ['admin:7'] as unknown as Record<string, unknown>)],
  ];
  for (const [what, make] of cases) {
    test(`refused with 401: ${what}`, async () => {
      assert.equal(await status(await make()), 401);
    });
  }

  test('a user\'s token on /ws/admin, and an admin\'s on /ws/user, are refused', async () => {
    const user = await mintToken(SECRET, { kind: 'user', id: 7 }, 60_000);
    assert.equal(await status(user, 'admin'), 401);
    assert.equal(await status(good, 'user'), 401);
    assert.equal(await status(user, 'user'), 101);
  });

  test('a huge token is refused without hurting the server', async () => {
    const huge = forge({ alg: 'HS256' }, { ...claims(), pad: 'x'.repeat(12_000) }, OTHER_SECRET);
    assert.equal(await status(huge), 401);
    // Past node's header limit (16 KiB): the request line itself is refused (431).
    const over = forge({ alg: 'HS256' }, { ...claims(), pad: 'x'.repeat(40_000) }, OTHER_SECRET);
    assert.equal(await status(over), 431);
    assert.equal(await status(good), 101);
  });

  test('duplicate token parameters: the first one decides, on the handshake and the probe alike', async () => {
    const wsBase = `${h.wsUrl}/ws/admin`;
    const probe = async (q: string) => (await fetch(`${wsBase.replace('ws:', 'http:')}?${q}`, { method: 'POST' })).status;
    used.push(good);
    assert.equal(await probe(`token=bad&token=${good}`), 401);
    assert.equal(await probe(`token=${good}&token=bad`), 426);
    const upgrade = async (q: string) => (await TestTab.status(`${wsBase}?${q}`, {})).status;
    assert.equal(await upgrade(`token=bad&token=${good}`), 401);
    assert.equal(await upgrade(`token=${good}&token=bad`), 101);
  });

  test('a token is read from the query or the herald_token cookie, not from an Authorization header', async () => {
    assert.equal(await h.status('admin', { headers: { authorization: `Bearer ${good}` } }), 401);
    assert.equal(await h.status('admin', { headers: { cookie: `herald_token=${good}` } }), 101);
  });

  test('no token, forged or genuine, reaches the log', () => {
    const log = h.log();
    assert.match(log, /handshake refused/, 'the refusals were logged');
    for (const t of used) {
      for (const part of [t, t.split('.')[2] ?? '', encodeURIComponent(t)]) {
        if (part.length < 16) continue;
        assert.ok(!log.includes(part), `the log holds ${part.slice(0, 40)}…`);
      }
    }
  });
});
