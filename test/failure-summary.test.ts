/**
 * scripts/failure-summary.mjs, the reporter the suite's runner ends its output
 * with: after a real `node --test` run of a fixture file, it names each failed
 * test by file, line and name with the start of its error, leaves out the
 * suites that failed only through their tests and the runner's own stack
 * frames, and prints nothing when everything passed.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('../', import.meta.url));
const reporter = pathToFileURL(join(root, 'scripts', 'failure-summary.mjs')).href;
const dir = join(root, 'test-output', `failure-summary-${process.pid}`);

/** Runs `source` as a test file under node's runner with the reporter alone; its output and exit status. */
function run(name: string, source: string): { out: string; status: number | null; file: string } {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, source);
  return runFile(file);
}

/** Runs a test file (without --enable-source-maps, as the suite's runner does off a terminal). */
function runFile(file: string): { out: string; status: number | null; file: string } {
  // A runner started by a test file's process takes itself for a file's child unless told otherwise.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--test', `--test-reporter=${reporter}`, '--test-reporter-destination=stdout', file], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  return { out: r.stdout, status: r.status, file: relative(root, file) };
}

describe('the failure summary at the end of the test output', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('lists each failed test with its file:line, its name and its error, and not the suite that holds it', () => {
    const { out, status, file } = run('fixture.test.mjs', [
      "import { describe, test } from 'node:test';",
      "import assert from 'node:assert/strict';",
      "describe('a suite', () => {",
      "  test('adds wrong', () => { assert.equal(1 + 1, 3); });",
      "  test('passes', () => {});",
      '});',
      "test('throws', () => { throw new Error('boom'); });",
      "test('also passes', () => {});",
      '',
    ].join('\n'));
    assert.equal(status, 1);
    const lines = out.trimEnd().split('\n');
    assert.equal(lines[0], '', 'a blank line before the summary');
    assert.equal(lines[1], '# 2 failed:');
    assert.ok(lines.includes(`#   ${file}:4  adds wrong`), out);
    assert.ok(lines.includes(`#   ${file}:7  throws`), out);
    assert.ok(out.includes('#       AssertionError'), out);
    assert.ok(out.includes('2 !== 3'), out);
    assert.ok(out.includes('#       Error: boom'), out);
    assert.ok(lines.some((l) => l.includes(`${file}:7:`)), 'the test\'s own frame stays');
    assert.ok(!out.includes('node:internal'), 'no frame of the runner itself');
    assert.ok(!out.includes('a suite'), 'the suite failed only through its test');
    assert.ok(lines.every((l) => l === '' || l.startsWith('#')), 'every line a TAP comment');
  });

  test('cuts a long error to its first lines and says how many it left out', () => {
    const { out } = run('long.test.mjs', [
      "import { test } from 'node:test';",
      "test('long', () => { throw new Error(Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\\n')); });",
      '',
    ].join('\n'));
    assert.ok(out.includes('#       Error: line 0'), out);
    assert.ok(out.includes('#       line 11'), out);
    assert.ok(!out.includes('line 12\n'), out);
    assert.match(out, /#       \.\.\. \(\d+ more lines\)/);
  });

  test('names the TypeScript a bundled file was made from, through its inline source map: the test\'s line and its stack\'s frames', () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'helper.ts'), [
      '/** Types and comments that the bundle leaves out, so its lines are not the source\'s. */',
      'export interface Three {',
      '  value: 3;',
      '}',
      '',
      'export function mustBeThree(v: number): void {',
      "  if (v !== 3) throw new Error(`not three: ${v}`);",
      '}',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'bundled-src.ts'), [
      "import { test } from 'node:test';",
      "import { mustBeThree, type Three } from './helper.ts';",
      '',
      'interface Unused {',
      '  a: number;',
      '  b: string;',
      '}',
      '',
      "test('two is not three', () => {",
      '  const two: number = 2;',
      '  mustBeThree(two);',
      '});',
      '',
    ].join('\n'));
    const bundle = join(dir, 'bundled.test.mjs');
    buildSync({ entryPoints: [join(dir, 'bundled-src.ts')], outfile: bundle, bundle: true, format: 'esm', platform: 'node', sourcemap: 'inline', sourcesContent: false, logLevel: 'silent' });
    const { out, status } = runFile(bundle);
    assert.equal(status, 1);
    const src = relative(root, join(dir, 'bundled-src.ts'));
    const helper = relative(root, join(dir, 'helper.ts'));
    assert.ok(out.split('\n').includes(`#   ${src}:9  two is not three`), out);
    assert.ok(out.includes('#       Error: not three: 2'), out);
    assert.ok(out.includes(`(${helper}:7:`), `the throwing frame names helper.ts's line 7: ${out}`);
    assert.ok(out.includes(`(${src}:11:`), `the test's frame names its line 11: ${out}`);
    assert.ok(!out.includes('bundled.test.mjs:'), `no frame left in the bundle: ${out}`);
  });

  test('prints nothing when every test passed', () => {
    const { out, status } = run('green.test.mjs', "import { test } from 'node:test';\ntest('fine', () => {});\n");
    assert.equal(status, 0);
    assert.equal(out, '');
  });
});
