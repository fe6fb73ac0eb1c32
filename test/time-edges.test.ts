/**
 * Edges of time in what Herald hands out: the lifetime of a token the SDK
 * signs, and the `expiresAt` the demo page is told.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CONNECT_TOKEN_MAX_TTL_SEC, mintConnectToken } from '../src/sdk/connect-token.js';
import { isHeraldSdkError } from '../src/sdk/errors.js';
import { startHerald } from './helpers/server.js';

const SECRET = 's'.repeat(40);

function claims(token: string): { iat: number; exp: number } {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { iat: number; exp: number };
}

test('mintConnectToken takes a ttl from 1 s to 31 days, as the server does, and refuses any other with HERALD_ERR_BAD_ARGUMENT', async () => {
  const now = Date.UTC(2026, 10, 30, 12) + 250;
  for (const ttl of [1, 60, 1.4, CONNECT_TOKEN_MAX_TTL_SEC]) {
    const minted = await mintConnectToken(SECRET, { kind: 'admin', id: 1 }, ttl, now);
    const { iat, exp } = claims(minted.token);
    assert.equal(exp - iat, Math.round(ttl), `ttl ${ttl}`);
    assert.equal(minted.expiresAt, exp * 1000);
  }
  // Before: 0, -100 and 0.4 gave a 1 s token; 1e20 one that never expired, its expiresAt no date.
  for (const ttl of [0, -100, 0.4, CONNECT_TOKEN_MAX_TTL_SEC + 1, 1e12, 1e20, Number.NaN, Infinity, '60' as unknown as number]) {
    await assert.rejects(mintConnectToken(SECRET, { kind: 'admin', id: 1 }, ttl, now), (e: unknown) => {
      assert.ok(isHeraldSdkError(e), `ttl ${String(ttl)}: ${String(e)}`);
      assert.equal(e.code, 'HERALD_ERR_BAD_ARGUMENT');
      assert.match(e.message, /ttl must be a number of seconds from 1 up to 2678400/);
      return true;
    }, `ttl ${String(ttl)}`);
  }
});

test('mintConnectToken signs only a person as the server reads one: a kind of admin or user and a positive integer id', async () => {
  // Before: {kind: 'admin:7 ', id: 1} was signed as `admin:7 :1` and {kind: 'user', id: '0x10'} as `user:0x10`.
  const odd: unknown[] = [{ kind: 'admin:7 ', id: 1 }, { kind: 'user', id: '0x10' }, { kind: 'user', id: '16' }, { kind: 'root', id: 1 }, { kind: 'admin', id: 0 }, { kind: 'admin', id: 1.5 }, { kind: 'admin', id: 10n }, null];
  for (const principal of odd) {
    await assert.rejects(mintConnectToken(SECRET, principal as { kind: 'admin'; id: number }, 60), (e: unknown) => {
      assert.ok(isHeraldSdkError(e), String(e));
      assert.equal(e.code, 'HERALD_ERR_BAD_ARGUMENT');
      assert.match(e.message, /principal must be \{kind: 'admin' \| 'user', id: a positive integer\}/);
      return true;
    }, String((principal as { kind?: unknown } | null)?.kind));
  }
});

test('the demo page is told when its token really ends: the token\'s exp, not now + tokenTtlMs', async () => {
  // 1.5 s rounds to a 2 s token from the current whole second: now + 1500 was off by up to a second.
  const s = await startHerald({ tokenTtlMs: 1500 });
  try {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${s.url}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'admin', id: 1 }) });
      assert.equal(res.status, 200);
      const answer = (await res.json()) as { token: string; expiresAt: number };
      assert.equal(answer.expiresAt, claims(answer.token).exp * 1000);
    }
  } finally {
    await s.close();
  }
});
