/** Option limits that protect the store: a TTL so long that `now + ttl` stops being a plain integer is refused at start. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions } from '../src/server/options.js';

describe('options', () => {
  test('maxTtlMs is at most ten years, and the refusal names the key', () => {
    assert.equal(loadOptions({ env: { HERALD_MAX_TTL_MS: String(315_360_000_000) } }).maxTtlMs, 315_360_000_000);
    assert.throws(() => loadOptions({ env: { HERALD_MAX_TTL_MS: '1000000000000000000000' } }), /option "maxTtlMs" \(environment HERALD_MAX_TTL_MS\)/);
  });

  test('a secret option of the wrong type is refused without its value', () => {
    const refusal = (input: Parameters<typeof loadOptions>[0]): string => {
      try {
        loadOptions(input);
      } catch (e) {
        return (e as Error).message;
      }
      assert.fail('the options were accepted');
    };
    const fromOverride = refusal({ env: {}, overrides: { legacyToken: 20261203 } });
    assert.match(fromOverride, /option "legacyToken" \(command line\): .*got a number \(not shown: the option is a secret\)/);
    assert.ok(!fromOverride.includes('20261203'), fromOverride);
    const fromUrl = refusal({ env: {}, overrides: { sqlUrl: ['mysql://herald:hunter2-hunter2@127.0.0.1/abills'] } });
    assert.match(fromUrl, /option "sqlUrl".*got a list \(not shown/);
    assert.ok(!fromUrl.includes('hunter2'), fromUrl);
    // Other options still show what they got: it is the quickest way to the typo.
    assert.match(refusal({ env: { HERALD_PORT: 'eighty' } }), /got "eighty"/);
  });

  test('a config file that is not JSON is refused without quoting its text', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-options-'));
    try {
      const file = join(dir, 'herald.json');
      writeFileSync(file, '{"apiToken": hunter2-hunter2-hunter2}');
      assert.throws(() => loadOptions({ env: {}, file }), (e: Error) => {
        assert.match(e.message, /cannot read config file .*herald\.json: not valid JSON$/);
        assert.ok(!e.message.includes('hunter2'), e.message);
        return true;
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('defaultTtlMs may not exceed maxTtlMs', () => {
    assert.throws(() => loadOptions({ env: { HERALD_DEFAULT_TTL_MS: '2000', HERALD_MAX_TTL_MS: '1000' } }), /"defaultTtlMs" \(2000\) exceeds "maxTtlMs" \(1000\)/);
  });
});
