// Runs every test file under test/ with node's own test runner. The
// TypeScript is compiled first to test-output/compiled/, each test file is
// bundled from there into test-output/bundled/ (scripts/test-tree.mjs says
// why), and the runner runs the bundles; a failure points at the TypeScript
// through their source maps. Three processes at a time on this two-core
// machine class (HERALD_TEST_CONCURRENCY), longest first, since most files
// wait for part of their time; short files that change nothing process-wide
// share a process, a few at a time, one after the other, and files that
// mostly wait share one at the same time (scripts/test-groups.mjs). Pass file
// paths (test/x.test.ts) to run just those. One file also runs as is through
// tsx: node --import tsx --test test/x.test.ts
//
// `--durations` runs every file (or those named) alone instead, one at a
// time, and writes how long each took, and how much CPU time it used, to
// test/durations.json, which the grouping reads.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { reapedChildrenSeconds, treeSeconds } from './cpu-seconds.mjs';
import { FILE_TIMEOUT_MS, PROCESS_TIMEOUT_MS, groupEntry, planProcesses } from './test-groups.mjs';
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
const args = process.argv.slice(2);
const measuring = args.includes('--durations');
const named = args.filter((a) => a !== '--durations');
const files = named.length > 0 ? named.map((f) => relative(root, resolve(f))) : find(join(root, 'test')).sort();
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
const drivesBrowser = files.some((f) => /launchBrowser\(|openDemoPage\(/.test(readFileSync(join(root, f), 'utf8')));
const browser = drivesBrowser && existsSync(browserHelper.CHROMIUM) ? await browserHelper.launchBrowserServer() : undefined;
if (browser) env.HERALD_TEST_BROWSER_WS = browser.wsEndpoint();
const durationsFile = join(root, 'test', 'durations.json');
const durations = existsSync(durationsFile) ? JSON.parse(readFileSync(durationsFile, 'utf8')) : {};

/** Runs `args` with node, from this process's event loop (which serves the browser's endpoint), to its exit status. */
function run(args, stdio) {
  return new Promise((done) => spawn(process.execPath, args, { stdio, cwd: root, env }).on('exit', (code) => done(code ?? 1)));
}

if (measuring) {
  // Each file alone, as nothing else runs: what test-groups.mjs plans by. Its CPU time is its
  // process's and all it started, with the shared Chromium's. Files not named keep their figures.
  const chromium = browser?.process().pid;
  const cpuSeconds = () => {
    const reaped = reapedChildrenSeconds();
    const browserTime = chromium === undefined ? 0 : treeSeconds(chromium);
    return reaped === undefined || browserTime === undefined ? undefined : reaped + browserTime;
  };
  let failed = 0;
  for (const [i, file] of files.entries()) {
    const started = performance.now();
    const cpuBefore = cpuSeconds();
    const status = await run(['--test', `--test-timeout=${FILE_TIMEOUT_MS}`, '--test-reporter=dot', '--test-reporter-destination=stdout', compiled[i]], ['ignore', 'ignore', 'inherit']);
    const wall = Math.round((performance.now() - started) / 100) / 10;
    const cpuAfter = cpuSeconds();
    const cpu = cpuBefore === undefined || cpuAfter === undefined ? undefined : Math.round((cpuAfter - cpuBefore) * 10) / 10;
    if (status === 0) durations[file] = cpu === undefined ? { wall } : { wall, cpu };
    else failed++;
    console.log(`${file}\t${wall} s${cpu === undefined ? '' : `, ${cpu} s of CPU`}${status === 0 ? '' : `\tfailed (exit ${status}), its figures not kept`}`);
  }
  // One file to a line: { "test/x.test.ts": { "wall": 1.2, "cpu": 0.9 }, ... }
  const lines = Object.entries(durations)
    .filter(([file]) => existsSync(join(root, file)))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([file, figures]) => ` ${JSON.stringify(file)}: ${JSON.stringify(figures).replaceAll(':', ': ').replaceAll(',', ', ')}`);
  writeFileSync(durationsFile, `{\n${lines.join(',\n')}\n}\n`);
  await browser?.close();
  process.exit(failed === 0 ? 0 : 1);
}

const bundleOf = new Map(files.map((f, i) => [f, compiled[i]]));
const groupsDir = join(root, 'test-output', 'bundled', 'groups');
mkdirSync(groupsDir, { recursive: true });
const processes = planProcesses(files, (f) => readFileSync(join(root, f), 'utf8'), durations).map(({ files: shared, together }, i) => {
  if (shared.length === 1) return bundleOf.get(shared[0]);
  const entry = join(groupsDir, `group-${i + 1}.mjs`);
  writeFileSync(entry, groupEntry(shared.map((f) => ({ name: f, url: pathToFileURL(join(root, bundleOf.get(f))).href })), { together }));
  return relative(root, entry);
});
// Two at a time left a core idle about half the time: the suite took 5:10 with 1.1 cores busy,
// and 4:25 at three (6:37 and 6:02 with a third process spinning on a core all along).
const concurrency = process.env.HERALD_TEST_CONCURRENCY ?? '3';
const status = await run(
  [
    // On a terminal node maps every stack to the TypeScript itself. Elsewhere (CI) the
    // closing failure list maps what failed, reading a bundle's source map only then:
    // node's own mapping reads every map of every module a file loads, in each of the
    // suite's files (about 0.1 s of CPU each; scripts/failure-summary.mjs).
    ...(process.stdout.isTTY ? ['--enable-source-maps'] : []),
    '--test',
    `--test-concurrency=${concurrency}`,
    // A single file's timeout and a backstop for a shared process, whose files each have FILE_TIMEOUT_MS.
    `--test-timeout=${PROCESS_TIMEOUT_MS}`,
    // On a terminal node's own spec report, which ends with what failed; elsewhere (CI) TAP,
    // then a list of what failed at the very end (scripts/failure-summary.mjs).
    ...(process.stdout.isTTY
      ? ['--test-reporter=spec']
      : ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${pathToFileURL(join(root, 'scripts', 'failure-summary.mjs')).href}`]),
    '--test-reporter-destination=stdout',
    ...processes,
  ],
  'inherit',
);
await browser?.close();
process.exit(status);
