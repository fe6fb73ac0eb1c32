import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createSecretKey } from 'node:crypto';
import fc from 'fast-check';
import { SignJWT, UnsecuredJWT, jwtVerify } from 'jose';
import { TokenResolver, mintToken, verifyHs256 } from '../src/server/auth/token-resolver.js';

const SECRET = 's'.repeat(40);
const OTHER = 'o'.repeat(40);
const enc = new TextEncoder();
const keys = [createSecretKey(Buffer.from(SECRET))];

async function joseAccepts(token: string, now: number, skewSec = 0): Promise<boolean> {
  try {
    await jwtVerify(token, enc.encode(SECRET), { audience: 'herald', algorithms: ['HS256'], requiredClaims: ['exp'], currentDate: new Date(now), clockTolerance: skewSec });
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

/** One case of the differential test: the token's claims as offsets from the current second, and the slack. */
interface TokenCase {
  secret: string;
  aud: string | string[] | undefined;
  expDelta: number | undefined;
  nbfDelta: number | undefined;
  tamperPart: number | undefined;
  tamperAt: number;
  unsecured: boolean;
  skewSec: number;
}

/**
 * The edges of `exp` and `nbf`, run first every time: a token whose exp is
 * the current second is expired (RFC 7519 §4.1.4: "on or after"), one a
 * second later is not; an nbf of the current second is valid, one a second
 * later is not; each moved by the slack when there is one. Drawn at random
 * they came up in some runs only (an exp check of `<` for `<=` survived).
 */
const EDGE_CASES: TokenCase[] = [0, 30].flatMap((skewSec) => [-skewSec - 1, -skewSec, -skewSec + 1, 0, 1].flatMap((d) => [
  { secret: SECRET, aud: 'herald', expDelta: d, nbfDelta: undefined, tamperPart: undefined, tamperAt: 0, unsecured: false, skewSec },
  { secret: SECRET, aud: 'herald', expDelta: 600, nbfDelta: d + 2 * skewSec, tamperPart: undefined, tamperAt: 0, unsecured: false, skewSec },
]));

test('the HS256 verifier accepts exactly what jose accepts (differential, on valid, tampered, foreign and odd tokens, with and without clock skew)', async () => {
  const now = Date.UTC(2026, 10, 30, 12) + 250;
  const nowSec = Math.floor(now / 1000);
  await fc.assert(fc.asyncProperty(
    fc.record<TokenCase>({
      secret: fc.constantFrom(SECRET, OTHER),
      aud: fc.constantFrom<string | string[] | undefined>('herald', 'other', ['x', 'herald'], undefined),
      expDelta: fc.option(fc.integer({ min: -100, max: 100 }), { nil: undefined }),
      nbfDelta: fc.option(fc.integer({ min: -100, max: 100 }), { nil: undefined }),
      tamperPart: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      tamperAt: fc.nat(),
      unsecured: fc.boolean(),
      skewSec: fc.constantFrom(0, 0, 30),
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
      const ours = verifyHs256(token, keys, now, c.skewSec * 1000).ok;
      assert.equal(ours, await joseAccepts(token, now, c.skewSec), `token ${token}, skew ${c.skewSec} s`);
    },
  ), { numRuns: 400, examples: EDGE_CASES.map((c) => [c]) });
});

test('exp is refused from its own second on, nbf admitted from its own second on, each moved by the slack (fixed edges, any millisecond of the second)', async () => {
  const second = Math.floor(Date.UTC(2026, 10, 30, 12) / 1000);
  const sign = (claims: { exp: number; nbf?: number }): Promise<string> => {
    const jwt = new SignJWT({ sub: 'admin:1' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setAudience('herald').setExpirationTime(claims.exp);
    if (claims.nbf !== undefined) jwt.setNotBefore(claims.nbf);
    return jwt.sign(enc.encode(SECRET));
  };
  const resolver = new TokenResolver({ secret: SECRET });
  const lenient = new TokenResolver({ secret: SECRET, clockSkewMs: 30_000 });
  // `now` at the first and the last millisecond of `second`: both read as that second.
  for (const now of [second * 1000, second * 1000 + 999]) {
    const cases: Array<[string, { exp: number; nbf?: number }, number, boolean]> = [
      ['exp one second ago', { exp: second - 1 }, 0, false],
      ['exp this second', { exp: second }, 0, false],
      ['exp next second', { exp: second + 1 }, 0, true],
      ['exp 31 s ago, 30 s of slack', { exp: second - 31 }, 30, false],
      ['exp 30 s ago, 30 s of slack', { exp: second - 30 }, 30, false],
      ['exp 29 s ago, 30 s of slack', { exp: second - 29 }, 30, true],
      ['nbf this second', { exp: second + 600, nbf: second }, 0, true],
      ['nbf next second', { exp: second + 600, nbf: second + 1 }, 0, false],
      ['nbf in 30 s, 30 s of slack', { exp: second + 600, nbf: second + 30 }, 30, true],
      ['nbf in 31 s, 30 s of slack', { exp: second + 600, nbf: second + 31 }, 30, false],
    ];
    for (const [what, claims, skewSec, admitted] of cases) {
      const token = await sign(claims);
      const at = `${what}, now = the second + ${now % 1000} ms`;
      assert.equal(verifyHs256(token, keys, now, skewSec * 1000).ok, admitted, at);
      assert.equal(await joseAccepts(token, now, skewSec), admitted, `jose agrees: ${at}`);
      const answer = (skewSec === 0 ? resolver : lenient).check('admin', token, now);
      assert.equal(answer.outcome, admitted ? 'admitted' : 'refused', `the resolver: ${at}`);
      if (!admitted && claims.nbf === undefined) assert.deepEqual(answer, { outcome: 'refused', reason: 'token expired', expired: true }, at);
    }
  }
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

test('with clockSkewMs, a token is admitted that long past its exp (and before its nbf), and its admission ends that much later', async () => {
  const now = Date.now();
  // Expired 10 s ago by this clock: a backend whose clock is 10 s behind minted it a moment ago.
  const lapsed = await mintToken(SECRET, { kind: 'admin', id: 7 }, 1_000, now - 11_000);
  const exact = new TokenResolver({ secret: SECRET });
  const lenient = new TokenResolver({ secret: SECRET, clockSkewMs: 30_000 });
  assert.deepEqual(exact.check('admin', lapsed, now), { outcome: 'refused', reason: 'token expired', expired: true });
  const admitted = lenient.check('admin', lapsed, now);
  assert.equal(admitted.outcome, 'admitted');
  const exp = JSON.parse(Buffer.from(lapsed.split('.')[1]!, 'base64url').toString()).exp as number;
  assert.equal(admitted.outcome === 'admitted' && admitted.expiresAt, exp * 1000 + 30_000);
  assert.equal((await lenient.recheck('admin', lapsed)).outcome, 'admitted');
  // Past the slack too: refused, by the check and by the re-check.
  const older = await mintToken(SECRET, { kind: 'admin', id: 7 }, 1_000, now - 45_000);
  assert.equal(lenient.check('admin', older, now).outcome, 'refused');
  assert.deepEqual(await lenient.recheck('admin', older), { outcome: 'refused', reason: 'token expired', expired: true });
  // A token not valid for another 20 s (a backend whose clock is ahead): admitted only with the slack.
  const early = await new SignJWT({ sub: 'admin:7' }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setAudience('herald')
    .setNotBefore(Math.floor(now / 1000) + 20).setExpirationTime(Math.floor(now / 1000) + 600).sign(enc.encode(SECRET));
  assert.equal(exact.check('admin', early, now).outcome, 'refused');
  assert.equal(lenient.check('admin', early, now).outcome, 'admitted');
});

test('an iat that is present must be a number, as jose requires; a future one is no reason to refuse', async () => {
  const now = Date.UTC(2026, 10, 30, 12) + 250;
  const nowSec = Math.floor(now / 1000);
  // Signed by hand: jose's SignJWT would not put a string in iat.
  const sign = (payload: Record<string, unknown>): string => {
    const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
  };
  const base = { sub: 'admin:1', aud: 'herald', exp: nowSec + 60 };
  const cases: Array<[string, unknown, boolean]> = [
    ['a number', nowSec, true],
    ['in the future', nowSec + 100_000, true],
    ['a fraction', nowSec - 0.5, true],
    ['a string', 'yesterday', false],
    ['a numeric string', String(nowSec), false],
    ['null', null, false],
    ['true', true, false],
    ['an object', { at: nowSec }, false],
  ];
  for (const [what, iat, accepted] of cases) {
    const token = sign({ ...base, iat });
    assert.equal(verifyHs256(token, keys, now).ok, accepted, `iat ${what}`);
    assert.equal(await joseAccepts(token, now), accepted, `jose, iat ${what}`);
  }
  // Not representable in JSON but readable from it (1e999 parses as Infinity): no date either.
  const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const p = Buffer.from(`{"sub":"admin:1","aud":"herald","exp":${nowSec + 60},"iat":1e999}`).toString('base64url');
  const infinite = `${h}.${p}.${createHmac('sha256', SECRET).update(`${h}.${p}`).digest('base64url')}`;
  assert.equal(verifyHs256(infinite, keys, now).ok, false);
});
