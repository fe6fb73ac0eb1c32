/**
 * tokenClockSkewMs: a backend that mints browser tokens itself (the SDK's
 * mintConnectToken) on a host whose clock is behind Herald's mints tokens
 * that Herald finds already expired. With the option, real handshakes on
 * 127.0.0.1 are admitted within the slack and refused past it.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mintConnectToken } from '../src/sdk/connect-token.js';
import { loadOptions } from '../src/server/options.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';

describe('tokenClockSkewMs', () => {
  let exact: TestServer;
  let lenient: TestServer;
  before(async () => {
    exact = await startHerald();
    lenient = await startHerald({ tokenClockSkewMs: 60_000 }, { secret: exact.secret });
  });
  after(async () => {
    await exact?.close();
    await lenient?.close();
  });

  test('a token minted 40 s behind Herald\'s clock for 30 s is refused (401) without the option and admitted with 60 s of slack; one 90 s behind is refused by both', async () => {
    const behind = await mintConnectToken(exact.secret, { kind: 'admin', id: 5 }, 30, Date.now() - 40_000);
    assert.equal((await TestTab.status(`${exact.wsUrl}/ws/admin`, { query: { token: behind.token } })).status, 401);
    assert.equal((await TestTab.status(`${lenient.wsUrl}/ws/admin`, { query: { token: behind.token } })).status, 101);
    const tooFar = await mintConnectToken(exact.secret, { kind: 'admin', id: 5 }, 30, Date.now() - 100_000);
    assert.equal((await TestTab.status(`${lenient.wsUrl}/ws/admin`, { query: { token: tooFar.token } })).status, 401);
  });

  test('the option reads from the environment as HERALD_TOKEN_CLOCK_SKEW_MS, and more than an hour is refused by name', () => {
    assert.equal(loadOptions({ env: { HERALD_TOKEN_CLOCK_SKEW_MS: '30000' } }).tokenClockSkewMs, 30_000);
    assert.equal(loadOptions({ env: {} }).tokenClockSkewMs, 0);
    assert.throws(() => loadOptions({ env: { HERALD_TOKEN_CLOCK_SKEW_MS: '3600001' } }), /tokenClockSkewMs/);
  });
});
