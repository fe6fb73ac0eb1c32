import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions, optionsMarkdownTable, type OptionKey } from '../src/server/options.js';
import { ensureSecrets } from '../src/server/secrets.js';
import { ErrorCodes } from '../src/server/errors.js';
import { ClientErrorCodes } from '../src/sdk/errors.js';
import { errorsMarkdownTable, replaceBetween } from '../scripts/update-readme.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('README configuration table matches the option schema (run scripts/update-readme.ts)', () => {
  assert.equal(replaceBetween(readme, 'options', optionsMarkdownTable()), readme);
});

test('README says "(generated)" of exactly the options a first start generates (src/server/secrets.ts)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-docs-'));
  try {
    const defaults = loadOptions({ env: { HERALD_DATA_DIR: dataDir } });
    const started = ensureSecrets(defaults).options;
    const generated = (Object.keys(defaults) as OptionKey[]).filter((k) => defaults[k] !== started[k]).sort();
    const saysGenerated = [...readme.matchAll(/^\| `(\w+)` \| `\w+` \| `\(generated\)`/gm)].map((m) => m[1]).sort();
    assert.deepEqual(saysGenerated, generated);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('README error table lists every HERALD_ERR_* code (run scripts/update-readme.ts)', () => {
  assert.equal(replaceBetween(readme, 'errors', errorsMarkdownTable()), readme);
});

test('the SDK\'s own error codes are none of the server\'s: a caller tells "no answer in time" from a 408', () => {
  for (const code of Object.keys(ClientErrorCodes)) assert.equal(code in ErrorCodes, false, code);
});

test('README quick start shows the two command lines', () => {
  assert.match(readme, /npm ci && npm start/);
  assert.match(readme, /npm ci && npm test/);
});
