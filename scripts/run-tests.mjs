// Runs every test file under test/ with node's own test runner. The
// TypeScript is compiled first to test-output/compiled/, each test file is
// bundled from there into test-output/bundled/ (scripts/test-tree.mjs says
// why), and the runner runs the bundles; a failure points at the TypeScript
// through their source maps. Each file runs in its own process; two
// at a time on this two-core machine class. Pass file paths (test/x.test.ts)
// to run just those. One file also runs as is through tsx:
// node --import tsx --test test/x.test.ts
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleTests, compileTestTree } from './test-tree.mjs';

const root = new URL('..', import.meta.url).pathname;
function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.ts')) out.push(relative(root, p));
  }
  return out;
}
const files = process.argv.length > 2 ? process.argv.slice(2).map((f) => relative(root, resolve(f))) : find(join(root, 'test')).sort();
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const tree = await compileTestTree(root);
const bundled = await bundleTests(root, tree, files.map((f) => join(tree, f.replace(/\.ts$/, '.js'))));
const compiled = bundled.map((f) => relative(root, f));
// The CLI the tests run as a child process, bundled once here rather than once in
// each of the thirty-odd files that run it (about 0.6 s each; test/helpers/cli.ts).
const { buildCliBundle } = await import(pathToFileURL(join(tree, 'test', 'helpers', 'cli.js')).href);
const cliDir = join(root, 'test-output', 'cli-suite');
rmSync(cliDir, { recursive: true, force: true });
const cli = buildCliBundle(cliDir);
const env = { ...process.env, HERALD_TEST_CLI_BUNDLE: cli };
// One Chromium for every test file that drives one, which connects to it
// instead of launching its own (test/helpers/browser.ts, launchBrowser). Where
// there is no Chromium the files say so themselves (browserSkipReason).
const browserHelper = await import(pathToFileURL(join(tree, 'test', 'helpers', 'browser.js')).href);
const drivesBrowser = files.some((f) => readFileSync(join(root, f), 'utf8').includes('launchBrowser('));
const browser = drivesBrowser && existsSync(browserHelper.CHROMIUM) ? await browserHelper.launchBrowserServer() : undefined;
if (browser) env.HERALD_TEST_BROWSER_WS = browser.wsEndpoint();
const concurrency = process.env.HERALD_TEST_CONCURRENCY ?? '2';
// Not spawnSync: the browser's endpoint is served from this process's event loop.
const runner = spawn(
  process.execPath,
  [
    // On a terminal node maps every stack to the TypeScript itself. Elsewhere (CI) the
    // closing failure list maps what failed, reading a bundle's source map only then:
    // node's own mapping reads every map of every module a file loads, in each of the
    // suite's files (about 0.1 s of CPU each; scripts/failure-summary.mjs).
    ...(process.stdout.isTTY ? ['--enable-source-maps'] : []),
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-timeout=120000',
    // On a terminal node's own spec report, which ends with what failed; elsewhere (CI) TAP,
    // then a list of what failed at the very end (scripts/failure-summary.mjs).
    ...(process.stdout.isTTY
      ? ['--test-reporter=spec']
      : ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${pathToFileURL(join(root, 'scripts', 'failure-summary.mjs')).href}`]),
    '--test-reporter-destination=stdout',
    ...compiled,
  ],
  { stdio: 'inherit', cwd: root, env },
);
const status = await new Promise((done) => runner.on('exit', (code) => done(code ?? 1)));
await browser?.close();
process.exit(status);
