/** Option limits that protect the store: a TTL so long that `now + ttl` stops being a plain integer is refused at start. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions, OptionsSchema, TIMER_MAX_MS, type OptionKey } from '../src/server/options.js';
import { SERVER_STOP_GRACE_MS } from '../src/server/auth/sql-pool.js';

/**
 * Options in ms that never reach a timer: each is compared with the clock (an
 * expiry, a request's age), so a long one is harmless. Every other ms option
 * sets a timer, and Node fires a timer past TIMER_MAX_MS after 1 ms.
 */
const CLOCK_ONLY: readonly OptionKey[] = ['requestTimeoutMs', 'defaultTtlMs', 'maxTtlMs', 'tokenTtlMs', 'authCacheMs', 'authNegativeCacheMs'];
/**
 * How a timer option's value becomes a delay: the browser library waits 2.5 heartbeats; `herald start` exits 5 s
 * after the shutdown grace; the sql pools give a query's connection up SERVER_STOP_GRACE_MS after sqlTimeoutMs.
 */
const DELAY_OF: Partial<Record<OptionKey, (ms: number) => number>> = {
  heartbeatMs: (ms) => ms * 2.5,
  shutdownGraceMs: (ms) => ms + 5000,
  sqlTimeoutMs: (ms) => ms + SERVER_STOP_GRACE_MS,
};

describe('options', () => {
  test('maxTtlMs is at most ten years, and the refusal names the key', () => {
    assert.equal(loadOptions({ env: { HERALD_MAX_TTL_MS: String(315_360_000_000) } }).maxTtlMs, 315_360_000_000);
    assert.throws(() => loadOptions({ env: { HERALD_MAX_TTL_MS: '1000000000000000000000' } }), /option "maxTtlMs" \(environment HERALD_MAX_TTL_MS\)/);
  });

  test('an option that sets a timer is refused at start past what a timer can wait, naming the key', () => {
    const timers = Object.entries(OptionsSchema.properties)
      .filter(([key, schema]) => schema.unit === 'ms' && !CLOCK_ONLY.includes(key as OptionKey))
      .map(([key]) => key as OptionKey);
    // Those the earlier review found unbounded are among them (and the seconds option is bounded already).
    for (const key of ['commandsKillGraceMs', 'heartbeatMs', 'shutdownGraceMs', 'sessionRecheckMs', 'legacyIdleTimeoutMs', 'pruneIntervalMs'] as const) assert.ok(timers.includes(key), key);
    for (const key of timers) {
      const schema = OptionsSchema.properties[key] as { maximum?: number };
      assert.ok(schema.maximum !== undefined, `${key} has no maximum`);
      const max = schema.maximum;
      // The largest accepted value still makes a delay a timer keeps.
      assert.equal(loadOptions({ env: {}, overrides: { [key]: max } })[key], max);
      assert.ok((DELAY_OF[key] ?? ((ms: number) => ms))(max) <= TIMER_MAX_MS, `${key}: ${max}`);
      assert.throws(() => loadOptions({ env: {}, overrides: { [key]: 3_000_000_000 } }), new RegExp(`option "${key}" \\(command line\\): .*≤ ${max}, got 3000000000`));
    }
    assert.throws(() => loadOptions({ env: { HERALD_COMMANDS_KILL_GRACE_MS: '3000000000' } }), /option "commandsKillGraceMs" \(environment HERALD_COMMANDS_KILL_GRACE_MS\)/);
    // The command timeout (seconds, also a request's own, which is cut to commandsMaxTimeoutSec) is a timer too.
    assert.ok((OptionsSchema.properties.commandsMaxTimeoutSec.maximum as number) * 1000 <= TIMER_MAX_MS);
    assert.ok((OptionsSchema.properties.commandsTimeoutSec.maximum as number) * 1000 <= TIMER_MAX_MS);
  });

  test('sqlTimeoutMs is refused at the largest timer, naming its bound: the pools arm timers 1 s past it', () => {
    // Accepted, every look-up failed: Node fired the pools' timers of sqlTimeoutMs + 1000 after 1 ms.
    const bound = TIMER_MAX_MS - SERVER_STOP_GRACE_MS;
    assert.throws(
      () => loadOptions({ env: { HERALD_SQL_TIMEOUT_MS: String(TIMER_MAX_MS) } }),
      new RegExp(`option "sqlTimeoutMs" \\(environment HERALD_SQL_TIMEOUT_MS\\): .*≤ ${bound}, got ${TIMER_MAX_MS}`),
    );
    assert.equal(loadOptions({ env: { HERALD_SQL_TIMEOUT_MS: String(bound) } }).sqlTimeoutMs, bound);
    assert.match(OptionsSchema.properties.sqlTimeoutMs.description ?? '', new RegExp(`At most ${bound}\\b`));
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
