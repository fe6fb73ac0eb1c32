/**
 * How each source of options is read, as an operator writes them: a config
 * file, environment variables, `--set`. Names that are not options are
 * refused, whatever they are called.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions } from '../src/server/options.js';
import { startOverrides } from '../src/cli/start.js';

/** Runs `fn` with a config file holding `text`, removed afterwards. */
function withConfigFile<T>(text: string, fn: (file: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'herald-options-sources-'));
  try {
    const file = join(dir, 'herald.json');
    writeFileSync(file, text);
    return fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('option sources', () => {
  test('a config file key named like a member of every object (constructor, toString, __proto__) is an unknown option', () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      withConfigFile(`{"port": 0, "${key}": {"demo": false}}`, (file) => {
        assert.throws(() => loadOptions({ env: {}, file }), new RegExp(`config file .*herald\\.json: unknown option "${key}"`), key);
      });
    }
  });

  test('--set of a name like constructor or __proto__ is an unknown option, not dropped', () => {
    for (const key of ['constructor', 'toString', '__proto__']) {
      assert.throws(() => loadOptions({ env: {}, overrides: startOverrides({ set: [`${key}={"demo":false}`] }, false) }), new RegExp(`unknown option "${key}"`), key);
    }
  });
});

describe('config file', () => {
  test('a config file that starts with a UTF-8 byte order mark is read', () => {
    withConfigFile('\uFEFF{"port": 8081, "demo": false}\n', (file) => {
      const o = loadOptions({ env: {}, file });
      assert.deepEqual([o.port, o.demo], [8081, false]);
    });
  });
});

describe('numbers', () => {
  test('Infinity is refused as what was given, not as null', () => {
    assert.throws(() => loadOptions({ env: { HERALD_PORT: 'Infinity' } }), /option "port" \(environment HERALD_PORT\): .*got Infinity$/);
    assert.throws(() => loadOptions({ env: { HERALD_COMMANDS_TIMEOUT_SEC: '-Infinity' } }), /option "commandsTimeoutSec" .*got -Infinity$/);
    assert.throws(() => loadOptions({ env: {}, overrides: startOverrides({ set: ['heartbeatMs=1e999'] }, false) }), /option "heartbeatMs" \(command line\): .*got Infinity$/);
  });
});

describe('empty values', () => {
  test('an empty host, legacyHost or dataDir is refused naming the option, not read as every interface or the current directory', () => {
    for (const [env, key] of [['HERALD_HOST', 'host'], ['HERALD_LEGACY_HOST', 'legacyHost'], ['HERALD_DATA_DIR', 'dataDir']] as const) {
      // With publicUrl set, HERALD_HOST= listened on [::] (every interface); without it, start failed blaming publicUrl.
      assert.throws(() => loadOptions({ env: { [env]: '', HERALD_PUBLIC_URL: 'https://panel.example.net/herald', HERALD_LEGACY_TOKEN: 'legacy-token-0123' } }), new RegExp(`option "${key}" is empty`), env);
      assert.throws(() => loadOptions({ env: {}, overrides: { [key]: ' ' } }), new RegExp(`option "${key}" is empty`), key);
    }
    // legacyHost means nothing while the legacy listener is off.
    assert.equal(loadOptions({ env: { HERALD_LEGACY_HOST: '', HERALD_LEGACY_ENABLED: 'false' } }).legacyHost, '');
    // The addresses and directories an operator means are still accepted.
    const o = loadOptions({ env: { HERALD_HOST: '0.0.0.0', HERALD_LEGACY_HOST: '::', HERALD_LEGACY_TOKEN: 'legacy-token-0123', HERALD_DATA_DIR: '.' } });
    assert.deepEqual([o.host, o.legacyHost, o.dataDir], ['0.0.0.0', '::', '.']);
  });
});

describe('listeners', () => {
  test('two listeners on the same port are refused naming both options', () => {
    const refused = [
      [{ HERALD_PORT: '19443', HERALD_ADMIN_PORT: '19443' }, /options "port" and "adminPort" are both 19443 on 127\.0\.0\.1/],
      [{ HERALD_ADMIN_PORT: '20000', HERALD_USER_PORT: '20000' }, /options "adminPort" and "userPort" are both 20000/],
      [{ HERALD_PORT: '19444' }, /options "port" and "legacyPort" are both 19444 on 127\.0\.0\.1/],
      // A wildcard address takes the port on every address, loopback included.
      [{ HERALD_HOST: '0.0.0.0', HERALD_PORT: '8080', HERALD_LEGACY_PORT: '8080', HERALD_ALLOWED_ORIGINS: 'https://panel.example.net' }, /options "port" and "legacyPort" are both 8080 on 0\.0\.0\.0 and 127\.0\.0\.1/],
    ] as const;
    for (const [env, message] of refused) assert.throws(() => loadOptions({ env }), message, JSON.stringify(env));
    // The old daemon's layout, port 0 (any free port, or off), a disabled legacy listener, and distinct addresses are fine.
    const accepted: Array<Record<string, string>> = [
      { HERALD_PORT: '19446', HERALD_ADMIN_PORT: '19443', HERALD_USER_PORT: '19445', HERALD_LEGACY_PORT: '19444' },
      { HERALD_PORT: '0', HERALD_LEGACY_PORT: '0' },
      { HERALD_PORT: '19444', HERALD_LEGACY_ENABLED: 'false' },
      { HERALD_HOST: '127.0.0.2', HERALD_PORT: '19444' },
    ];
    for (const env of accepted) assert.doesNotThrow(() => loadOptions({ env }), JSON.stringify(env));
  });
});

describe('integers', () => {
  test('an integer option past 2^53 - 1 is a configuration error naming it, not a stack trace from the part that uses it', () => {
    for (const [env, key] of [['HERALD_REQUEST_TIMEOUT_MS', 'requestTimeoutMs'], ['HERALD_MAX_PER_STREAM', 'maxPerStream'], ['HERALD_COMMANDS_AUDIT_KEEP', 'commandsAuditKeep']] as const) {
      // Written out: the environment takes plain decimal only (1e16 is refused as text, see config-hardening.test.ts).
      assert.throws(() => loadOptions({ env: { [env]: '10000000000000000' } }), new RegExp(`option "${key}" \\(environment ${env}\\): .*≤ 9007199254740991, got 10000000000000000$`), env);
      assert.equal(loadOptions({ env: { [env]: String(Number.MAX_SAFE_INTEGER) } })[key], Number.MAX_SAFE_INTEGER);
    }
  });
});
