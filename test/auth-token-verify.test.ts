import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSecretKey } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT, jwtVerify } from 'jose';
import { TokenResolver, mintToken, verifyHs256 } from '../src/server/auth/token-resolver.js';

const SECRET = 's'.repeat(40);
const OTHER = 'o'.repeat(40);
const enc = new TextEncoder();
const keys = [createSecretKey(Buffer.from(SECRET))];

async function joseAccepts(token: string, now: number): Promise<boolean> {
  try {
    await jwtVerify(token, enc.encode(SECRET), { audience: 'herald', algorithms: ['HS256'], requiredClaims: ['exp'], currentDate: new Date(now) });
    return true;
  } catch {
    return false;
  }
}

function tamper(token: string, part: number, at: number): string {
  const parts = token.split('.');
  const p = parts[part]!;
  if (p.length === 0) return token;
  const i = at % p.length;
  const c = p[i] === 'A' ? 'B' : 'A';
  parts[part] = p.slice(0, i) + c + p.slice(i + 1);
  return parts.join('.');
}

test('the HS256 verifier accepts exactly what jose accepts (differential, on valid, tampered, foreign and odd tokens)', async () => {
  const now = Date.UTC(2026, 10, 30, 12);
  const nowSec = Math.floor(now / 1000);
  await fc.assert(fc.asyncProperty(
    fc.record({
      secret: fc.constantFrom(SECRET, OTHER),
      aud: fc.constantFrom<string | string[] | undefined>('herald', 'other', ['x', 'herald'], undefined),
      expDelta: fc.option(fc.integer({ min: -100, max: 100 }), { nil: undefined }),
      nbfDelta: fc.option(fc.integer({ min: -100, max: 100 }), { nil: undefined }),
      tamperPart: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      tamperAt: fc.nat(),
      unsecured: fc.boolean(),
    }),
    async (c) => {
      let token: string;
      if (c.unsecured) {
        const u = new UnsecuredJWT({ sub: 'admin:1' }).setAudience('herald').setExpirationTime(nowSec + 60);
        token = u.encode();
      } else {
        const jwt = new SignJWT({ sub: 'admin:1' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' });
        if (c.aud !== undefined) jwt.setAudience(c.aud);
        if (c.expDelta !== undefined) jwt.setExpirationTime(nowSec + c.expDelta);
        if (c.nbfDelta !== undefined) jwt.setNotBefore(nowSec + c.nbfDelta);
        token = await jwt.sign(enc.encode(c.secret));
      }
      if (c.tamperPart !== undefined) token = tamper(token, c.tamperPart, c.tamperAt);
      const ours = verifyHs256(token, keys, now).ok;
      assert.equal(ours, await joseAccepts(token, now), `token ${token}`);
    },
  ), { numRuns: 400 });
});

test('garbage is refused, never thrown', () => {
  fc.assert(fc.property(fc.string(), (s) => {
    assert.equal(verifyHs256(s, keys).ok, false);
  }), { numRuns: 1000 });
  assert.equal(verifyHs256('eyJhbGciOiJub25lIn0.eyJhdWQiOiJoZXJhbGQifQ.', keys).ok, false);
});

test('a re-check of an admitted token asks what time can change: expiry, the endpoint, and garbage is refused, never thrown', async () => {
  const resolver = new TokenResolver({ secret: SECRET });
  const now = Date.now();
  const token = await mintToken(SECRET, { kind: 'admin', id: 7 }, 60_000, now);
  const admitted = await resolver.recheck('admin', token);
  assert.equal(admitted.outcome, 'admitted');
  assert.deepEqual(admitted.outcome === 'admitted' && admitted.principal, { kind: 'admin', id: 7 });
  // The user endpoint never admitted an admin token.
  assert.equal((await resolver.recheck('user', token)).outcome, 'refused');
  // Expired since admission: refused, and marked expired (the tab may come back with a fresh one).
  const lapsed = await mintToken(SECRET, { kind: 'user', id: 3 }, 1_000, now - 60_000);
  assert.deepEqual(await resolver.recheck('user', lapsed), { outcome: 'refused', reason: 'token expired', expired: true });
  for (const bad of ['', 'a.b', 'a.!!.c', `${token}.x`, 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbjo3In0.x']) {
    assert.equal((await resolver.recheck('admin', bad)).outcome, 'refused', bad);
  }
  await fc.assert(fc.asyncProperty(fc.string(), async (s) => {
    assert.equal((await resolver.recheck('admin', s)).outcome, 'refused');
  }), { numRuns: 300 });
});
