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
