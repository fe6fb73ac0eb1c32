/**
 * The HTTP API's bearer token is compared whole, and only under the Bearer
 * scheme (http-api.ts, bearerMatches): a token that merely starts like the
 * right one, or the right one under another scheme, is refused with 401.
 * Each case here was let through by a change of that comparison that the
 * rest of the suite did not notice (mutation review rA).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

describe('the API token is compared whole, under the Bearer scheme only', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  /** The answer to GET /api/v1/ping with this Authorization header. */
  const ping = (authorization: string) => s.api('GET', '/api/v1/ping', undefined, { authorization });

  test('the right token is admitted, with the scheme in any case', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      const r = await ping(`${scheme} ${s.apiToken}`);
      assert.equal(r.status, 200, `${scheme}: ${JSON.stringify(r.body)}`);
    }
  });

  test('a token that only starts, or only ends, like the right one is refused with 401', async () => {
    const token = s.apiToken;
    const other = (c: string) => (c === 'A' ? 'B' : 'A');
    const cases: Array<[string, string]> = [
      ['one character more', `${token}x`],
      ['the right token twice', `${token}${token}`],
      ['its first 8 characters', token.slice(0, 8)],
      ['all but its last character', token.slice(0, -1)],
      ['its last character changed', `${token.slice(0, -1)}${other(token.at(-1)!)}`],
      ['its first character changed', `${other(token[0]!)}${token.slice(1)}`],
      ['its last 8 characters', token.slice(-8)],
      ['one character', token[0]!],
    ];
    for (const [what, given] of cases) {
      const r = await ping(`Bearer ${given}`);
      assert.equal(r.status, 401, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HERALD_ERR_UNAUTHORIZED', what);
    }
  });

  test('the right token under another scheme, or with no scheme, is refused with 401', async () => {
    const token = s.apiToken;
    // "Digest " is as long as "Bearer ": only the scheme's name tells them apart.
    for (const header of [`Digest ${token}`, `Basic  ${token}`, `BearerX${token}`, `Bearer${token}`, `X${token.slice(0, 6)}${token}`, token, `Bearer `, 'Bearer']) {
      const r = await ping(header);
      assert.equal(r.status, 401, `${JSON.stringify(header)}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.code, 'HERALD_ERR_UNAUTHORIZED', header);
    }
  });
});
