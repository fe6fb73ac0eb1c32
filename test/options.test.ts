/** Option limits that protect the store: a TTL so long that `now + ttl` stops being a plain integer is refused at start. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadOptions } from '../src/server/options.js';

describe('options', () => {
  test('maxTtlMs is at most ten years, and the refusal names the key', () => {
    assert.equal(loadOptions({ env: { HERALD_MAX_TTL_MS: String(315_360_000_000) } }).maxTtlMs, 315_360_000_000);
    assert.throws(() => loadOptions({ env: { HERALD_MAX_TTL_MS: '1000000000000000000000' } }), /option "maxTtlMs" \(environment HERALD_MAX_TTL_MS\)/);
  });

  test('defaultTtlMs may not exceed maxTtlMs', () => {
    assert.throws(() => loadOptions({ env: { HERALD_DEFAULT_TTL_MS: '2000', HERALD_MAX_TTL_MS: '1000' } }), /"defaultTtlMs" \(2000\) exceeds "maxTtlMs" \(1000\)/);
  });
});
