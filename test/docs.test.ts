import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { optionsMarkdownTable } from '../src/server/options.js';
import { errorsMarkdownTable, replaceBetween } from '../scripts/update-readme.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('README configuration table matches the option schema (run scripts/update-readme.ts)', () => {
  assert.equal(replaceBetween(readme, 'options', optionsMarkdownTable()), readme);
});

test('README error table lists every HERALD_ERR_* code (run scripts/update-readme.ts)', () => {
  assert.equal(replaceBetween(readme, 'errors', errorsMarkdownTable()), readme);
});

test('README quick start shows the two command lines', () => {
  assert.match(readme, /npm ci && npm start/);
  assert.match(readme, /npm ci && npm test/);
});
