/**
 * scripts/test-groups.mjs, how the suite's runner puts short test files in a
 * shared process: which files keep a process of their own, how the rest are
 * packed and ordered, and, run for real under `node --test`, that a shared
 * process keeps each file's tests and top-level hooks inside that file's
 * suite, runs the files one after the other, and lets a file that fails,
 * fails to load, or hangs past its own time, fail alone.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// @ts-expect-error: the runner's scripts are plain JavaScript (scripts/test-groups.mjs), without type declarations
import { FILE_TIMEOUT_MS, GROUP_SECONDS, PROCESS_TIMEOUT_MS, SHARE_SECONDS, TOGETHER, WAITING_GROUP_CPU, WAITING_GROUP_FILES, WAITING_SHARE, groupEntry, ownProcessReason, planProcesses } from '../scripts/test-groups.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = join(root, 'test-output', `test-groups-${process.pid}`);

type Plan = { files: string[]; seconds: number; together: boolean }[];
type Durations = Record<string, { wall: number; cpu?: number }>;
/** Figures of a file that is busy all the time it runs. */
const busy = (wall: number) => ({ wall, cpu: wall });

describe('which test files keep a process of their own', () => {
  test('a file that measures, listens on or changes the process, mocks, changes a global or awaits at the top level', () => {
    const cases: [string, string][] = [
      ["// test-runner: own process: it counts the process's file descriptors\n", 'says so'],
      ['const before = process.memoryUsage().heapUsed;\n', 'measures the process'],
      ['const used = process.cpuUsage();\n', 'measures the process'],
      ["new PerformanceObserver(() => {}).observe({ type: 'gc' });\n", 'measures the process'],
      ["process.on('unhandledRejection', fail);\n", 'listens on the process'],
      ["process.once('exit', clean);\n", 'listens on the process'],
      ["process.env.HERALD_PORT = '0';\n", 'changes the process'],
      ["process.env['HERALD_PORT'] = '0';\n", 'changes the process'],
      ['delete process.env.HERALD_PORT;\n', 'changes the process'],
      ["process.chdir('/tmp');\n", 'changes the process'],
      ['process.exitCode = 1;\n', 'changes the process'],
      ["mock.timers.enable({ apis: ['setTimeout'] });\n", 'mocks'],
      ["mock.method(console, 'log');\n", 'mocks'],
      ['setGlobalDispatcher(new Agent());\n', 'changes a global'],
      ['globalThis.fetch = fake;\n', 'changes a global'],
      ['const server = await startHerald();\n', 'awaits at the top level'],
      ['await settle();\n', 'awaits at the top level'],
    ];
    for (const [source, reason] of cases) assert.equal(ownProcessReason(`import { test } from 'node:test';\n${source}`), reason, source);
  });

  test('a file that only reads the process, compares or awaits inside its tests shares', () => {
    const source = [
      "import { test } from 'node:test';",
      "const port = process.env.HERALD_PORT ?? '0';",
      "if (process.env.CI === 'true') console.log('under CI');",
      "test('starts', async () => {",
      '  const s = await startHerald();',
      '  await s.close();',
      '});',
      '',
    ].join('\n');
    assert.equal(ownProcessReason(source), undefined);
  });
});

describe('how the runner plans its processes', () => {
  const plain = "import { test } from 'node:test';\ntest('x', () => {});\n";

  test('a file not in the table, one longer than SHARE_SECONDS alone, and one that changes the process each run alone', () => {
    const sources: Record<string, string> = {
      'test/new.test.ts': plain,
      'test/long.test.ts': plain,
      'test/heap.test.ts': 'const h = process.memoryUsage();\n' + plain,
      'test/a.test.ts': plain,
      'test/b.test.ts': plain,
    };
    const plan: Plan = planProcesses(Object.keys(sources), (f: string) => sources[f], {
      'test/long.test.ts': busy(SHARE_SECONDS + 1),
      'test/heap.test.ts': { wall: 1, cpu: 0.1 },
      'test/a.test.ts': busy(1),
      'test/b.test.ts': { wall: 2 },
    });
    const alone = plan.filter((p) => p.files.length === 1).map((p) => p.files[0]).sort();
    assert.deepEqual(alone, ['test/heap.test.ts', 'test/long.test.ts', 'test/new.test.ts']);
    assert.deepEqual(plan.find((p) => p.files.length > 1), { files: ['test/a.test.ts', 'test/b.test.ts'], seconds: 3, together: false });
  });

  test('packs every short file exactly once into processes of at most GROUP_SECONDS, and runs the longest first', () => {
    const durations: Durations = {};
    for (let i = 0; i < 60; i++) durations[`test/f${String(i).padStart(2, '0')}.test.ts`] = busy(0.5 + ((i * 7) % 15) / 2);
    durations['test/slow.test.ts'] = busy(40);
    const files = Object.keys(durations);
    const wall = (f: string) => durations[f]?.wall ?? NaN;
    const plan: Plan = planProcesses(files, () => plain, durations);
    assert.deepEqual(plan.flatMap((p) => p.files).sort(), [...files].sort());
    for (const p of plan) {
      if (p.files.length > 1) assert.ok(p.seconds <= GROUP_SECONDS, `${p.files.join(', ')}: ${p.seconds} s`);
      assert.equal(p.seconds, p.files.reduce((sum, f) => sum + wall(f), 0));
      assert.equal(p.together, false);
    }
    for (let i = 1; i < plan.length; i++) assert.ok(plan[i - 1]!.seconds >= plan[i]!.seconds, 'longest first');
    assert.deepEqual(plan[0]?.files, ['test/slow.test.ts']);
    const total = files.filter((f) => f !== 'test/slow.test.ts').reduce((sum, f) => sum + wall(f), 0);
    assert.ok(plan.length - 1 <= Math.ceil(total / GROUP_SECONDS) + 1, `${plan.length - 1} shared processes for ${total} s`);
  });
});

describe('how the runner plans files that mostly wait', () => {
  const plain = "import { test } from 'node:test';\ntest('x', () => {});\n";

  test('they run a few to a process at the same time, within the CPU share and the file count, however long each is', () => {
    const durations: Durations = {};
    // Twenty files that wait, of 2 to 40 s, using a tenth to WAITING_SHARE of that as CPU time.
    for (let i = 0; i < 20; i++) {
      const wall = 2 + ((i * 11) % 39);
      durations[`test/w${String(i).padStart(2, '0')}.test.ts`] = { wall, cpu: wall * (0.1 + ((i % 3) * (WAITING_SHARE - 0.1)) / 2) };
    }
    durations['test/busy-long.test.ts'] = busy(30);
    durations['test/busy-short.test.ts'] = busy(2);
    durations['test/just-busy.test.ts'] = { wall: 4, cpu: 4 * WAITING_SHARE + 0.1 };
    durations['test/gc.test.ts'] = { wall: 20, cpu: 1 };
    const files = Object.keys(durations);
    const plan: Plan = planProcesses(files, (f: string) => (f === 'test/gc.test.ts' ? 'gc();\n' : '') + plain, durations);
    assert.deepEqual(plan.flatMap((p) => p.files).sort(), [...files].sort());
    const waiting = files.filter((f) => f.startsWith('test/w'));
    const processOf = (f: string) => plan.find((p) => p.files.includes(f))!;
    for (const f of waiting) assert.ok(processOf(f).files.every((g) => waiting.includes(g)), `${f} shares only with files that wait`);
    for (const p of plan.filter((q) => q.files.some((f) => waiting.includes(f)))) {
      const longest = Math.max(...p.files.map((f) => durations[f]!.wall));
      assert.equal(p.seconds, longest, `${p.files.join(', ')} takes as long as its longest file`);
      assert.equal(p.together, p.files.length > 1);
      assert.ok(p.files.length <= WAITING_GROUP_FILES);
      const cpu = p.files.reduce((sum, f) => sum + durations[f]!.cpu!, 0);
      assert.ok(p.files.length === 1 || cpu <= WAITING_GROUP_CPU * longest, `${p.files.join(', ')}: ${cpu} s of CPU in ${longest} s`);
    }
    assert.ok(plan.filter((p) => p.together).length >= 3, 'twenty files that wait share a few processes');
    assert.ok(plan.some((p) => p.together && p.files.some((f) => durations[f]!.wall > SHARE_SECONDS)), 'a long file that waits shares');
    // A busy file, and one that measures the process however little CPU it uses, are not among them.
    assert.deepEqual(processOf('test/busy-long.test.ts'), { files: ['test/busy-long.test.ts'], seconds: 30, together: false });
    assert.deepEqual(processOf('test/gc.test.ts'), { files: ['test/gc.test.ts'], seconds: 20, together: false });
    assert.equal(processOf('test/just-busy.test.ts').together, false);
    assert.equal(processOf('test/busy-short.test.ts').together, false);
    for (let i = 1; i < plan.length; i++) assert.ok(plan[i - 1]!.seconds >= plan[i]!.seconds, 'longest first');
  });

  test('one that finds no other file to wait with is planned as a busy file: it shares one after the other when short, alone when long', () => {
    const durations: Durations = {
      'test/wait-short.test.ts': { wall: 3, cpu: 0.5 },
      'test/busy-a.test.ts': busy(1),
      'test/busy-b.test.ts': busy(1),
    };
    assert.deepEqual(planProcesses(Object.keys(durations), () => plain, durations), [
      { files: ['test/busy-a.test.ts', 'test/busy-b.test.ts', 'test/wait-short.test.ts'], seconds: 5, together: false },
    ]);
    const long: Durations = { 'test/wait-long.test.ts': { wall: SHARE_SECONDS + 10, cpu: 1 }, 'test/busy-a.test.ts': busy(1) };
    assert.deepEqual(planProcesses(Object.keys(long), () => plain, long), [
      { files: ['test/wait-long.test.ts'], seconds: SHARE_SECONDS + 10, together: false },
      { files: ['test/busy-a.test.ts'], seconds: 1, together: false },
    ]);
  });
});

describe('a shared process, run by node --test', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));
  type Result = { type: string; name: string; nesting: number; error: string | null };

  /** Runs `entries` as groupEntry puts them in one process, with `options`: what passed and failed, in order, and the files' notes. */
  function runGroup(name: string, entries: { name: string; url: string }[], options: { together?: boolean; fileTimeoutMs?: number }, log: string): { results: Result[]; lines: string[] } {
    const group = join(dir, `${name}.mjs`);
    writeFileSync(group, groupEntry(entries, options));
    const events = join(dir, 'events.mjs');
    writeFileSync(events, [
      'export default async function* (source) {',
      '  for await (const { type, data } of source) {',
      "    if (type === 'test:pass' || type === 'test:fail') yield JSON.stringify({ type, name: data.name, nesting: data.nesting, error: data.details?.error?.cause?.message ?? data.details?.error?.message ?? null }) + '\\n';",
      '  }',
      '}',
      '',
    ].join('\n'));
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--test', `--test-reporter=${pathToFileURL(events).href}`, '--test-reporter-destination=stdout', group], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    const results = r.stdout.trim().split('\n').map((line) => JSON.parse(line) as Result);
    return { results, lines: readFileSync(log, 'utf8').trim().split('\n') };
  }

  /** A test file `name` whose `note(what)` appends "name what" to `log`. */
  function fixture(log: string, name: string, body: string): { name: string; url: string } {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, `${name}.mjs`);
    writeFileSync(path, [
      "import { after, before, describe, test } from 'node:test';",
      "import { appendFileSync } from 'node:fs';",
      `const note = (what) => appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(name)} + ' ' + what + '\\n');`,
      'const wait = (ms) => new Promise((r) => setTimeout(r, ms));',
      "note('loaded');",
      body,
      '',
    ].join('\n'));
    return { name: `test/${name}.test.ts`, url: pathToFileURL(path).href };
  }

  test("keeps each file's tests and hooks in its own suite, one file after the other, and a failure to its own file", () => {
    const log = join(dir, 'order.log');
    mkdirSync(dir, { recursive: true });
    writeFileSync(log, '');
    const entries = [
      fixture(log, 'first', "before(() => note('before'));\nafter(() => note('after'));\ntest('first test', async () => { await wait(50); note('test'); });"),
      fixture(log, 'second', "describe('second suite', () => {\n  after(() => note('after'));\n  test('passes', () => note('test passes'));\n  test('fails', () => { note('test fails'); throw new Error('second fails on purpose'); });\n});"),
      fixture(log, 'broken', "throw new Error('broken cannot load');"),
      fixture(log, 'third', "test('third test', () => note('test'));"),
    ];
    const { results, lines } = runGroup('group', entries, {}, log);
    const of = (name: string) => results.find((e) => e.name === name);

    // Each file is a suite at the top, with its own tests inside it.
    assert.deepEqual(of('test/first.test.ts'), { type: 'test:pass', name: 'test/first.test.ts', nesting: 0, error: null });
    assert.deepEqual(of('first test'), { type: 'test:pass', name: 'first test', nesting: 1, error: null });
    assert.equal(of('second suite')?.nesting, 1);
    assert.deepEqual(of('passes'), { type: 'test:pass', name: 'passes', nesting: 2, error: null });
    assert.deepEqual(of('fails'), { type: 'test:fail', name: 'fails', nesting: 2, error: 'second fails on purpose' });
    assert.equal(of('test/second.test.ts')?.type, 'test:fail');
    // A file that cannot load fails its own suite with its error; the next file still runs.
    assert.deepEqual(of('test/broken.test.ts'), { type: 'test:fail', name: 'test/broken.test.ts', nesting: 0, error: 'broken cannot load' });
    assert.deepEqual(of('test/third.test.ts'), { type: 'test:pass', name: 'test/third.test.ts', nesting: 0, error: null });
    assert.deepEqual(of('third test'), { type: 'test:pass', name: 'third test', nesting: 1, error: null });

    // Every file loads as the process starts (in whatever order its import completes); then each
    // file's hooks and tests run in the files' order, its `after` before the next file's tests.
    assert.deepEqual(lines.filter((line) => line.endsWith(' loaded')).sort(), ['broken loaded', 'first loaded', 'second loaded', 'third loaded']);
    assert.deepEqual(lines.filter((line) => !line.endsWith(' loaded')), [
      'first before',
      'first test',
      'first after',
      'second test passes',
      'second test fails',
      'second after',
      'third test',
    ]);
    for (const name of ['second', 'third']) assert.ok(lines.indexOf(`${name} loaded`) < lines.findIndex((line) => line.startsWith(`${name} `) && !line.endsWith(' loaded')));
  });

  test('gives each file its own time: files that take most of it each pass, one that hangs past it fails alone, by its name, and the next file runs', () => {
    const log = join(dir, 'timeouts.log');
    mkdirSync(dir, { recursive: true });
    writeFileSync(log, '');
    // Each slow file takes 600 ms of its 1,000; the three take 1.8 s in all. The hung one holds the
    // event loop 2 s more, as a test's server left open would, and the process still ends.
    const slow = "test('takes most of its time', async () => { await wait(600); note('done'); });";
    const entries = [
      fixture(log, 'slow-1', slow),
      fixture(log, 'hangs', "after(() => note('after'));\ntest('never ends', () => new Promise(() => { setTimeout(() => {}, 2000); }));"),
      fixture(log, 'slow-2', slow),
      fixture(log, 'slow-3', slow),
    ];
    const { results, lines } = runGroup('timeouts', entries, { fileTimeoutMs: 1000 }, log);
    const of = (name: string) => results.find((e) => e.name === name);
    for (const name of ['slow-1', 'slow-2', 'slow-3']) assert.deepEqual(of(`test/${name}.test.ts`), { type: 'test:pass', name: `test/${name}.test.ts`, nesting: 0, error: null });
    assert.deepEqual(of('test/hangs.test.ts'), { type: 'test:fail', name: 'test/hangs.test.ts', nesting: 0, error: 'test timed out after 1000ms' });
    assert.equal(of('never ends')?.type, 'test:fail');
    // The hung file's `after` still runs (what it started is closed), before the next file.
    assert.deepEqual(lines.filter((line) => !line.endsWith(' loaded')), ['slow-1 done', 'hangs after', 'slow-2 done', 'slow-3 done']);
    // What the runner gives: each file its 120 s, a process (a file alone, or the backstop) more.
    assert.equal(FILE_TIMEOUT_MS, 120_000);
    assert.ok(PROCESS_TIMEOUT_MS > FILE_TIMEOUT_MS);
    assert.match(groupEntry([{ name: 'test/x.test.ts', url: 'file:///x.js' }]), /timeout: 120000 \}/);
  });

  test("runs files that mostly wait at the same time, each file's own tests one after the other, its hooks and failures its own", () => {
    const log = join(dir, 'together.log');
    mkdirSync(dir, { recursive: true });
    writeFileSync(log, '');
    // Each test notes its start and end around a wait: what overlaps shows in the notes' order.
    const waits = (tests: string[], ms: number) => tests.map((t) => `test('${t}', async () => { note('${t} starts'); await wait(${ms}); note('${t} ends'); });`).join('\n');
    const entries = [
      fixture(log, 'one', `after(() => note('after'));\n${waits(['one-a', 'one-b', 'one-c'], 300)}`),
      fixture(log, 'two', `before(() => note('before'));\nafter(() => note('after'));\n${waits(['two-a', 'two-b'], 300)}\ntest('two fails', async () => { await wait(100); throw new Error('two fails on purpose'); });`),
      fixture(log, 'broken', "throw new Error('broken cannot load');"),
      fixture(log, 'three', `describe('three suite', () => {\n${waits(['three-a'], 300)}\n});`),
    ];
    const { results, lines } = runGroup('together', entries, { together: true }, log);
    const of = (name: string) => results.find((e) => e.name === name);

    // The files sit in one suite at the top, each in its own, its tests inside it.
    assert.equal(of(TOGETHER)?.type, 'test:fail');
    assert.equal(of(TOGETHER)?.nesting, 0);
    assert.deepEqual(of('test/one.test.ts'), { type: 'test:pass', name: 'test/one.test.ts', nesting: 1, error: null });
    assert.deepEqual(of('one-c'), { type: 'test:pass', name: 'one-c', nesting: 2, error: null });
    assert.equal(of('test/two.test.ts')?.type, 'test:fail');
    assert.deepEqual(of('two fails'), { type: 'test:fail', name: 'two fails', nesting: 2, error: 'two fails on purpose' });
    assert.deepEqual(of('test/broken.test.ts'), { type: 'test:fail', name: 'test/broken.test.ts', nesting: 1, error: 'broken cannot load' });
    assert.deepEqual(of('test/three.test.ts'), { type: 'test:pass', name: 'test/three.test.ts', nesting: 1, error: null });
    assert.deepEqual(of('three-a'), { type: 'test:pass', name: 'three-a', nesting: 3, error: null });

    // The files overlap: each one's first test starts before any test ends.
    const at = (line: string) => {
      const i = lines.findIndex((l) => l === line || l.endsWith(` ${line}`));
      assert.ok(i >= 0, `${line} in ${lines.join(' | ')}`);
      return i;
    };
    const firstEnd = lines.findIndex((line) => line.endsWith(' ends'));
    for (const t of ['one-a', 'two-a', 'three-a']) assert.ok(at(`${t} starts`) < firstEnd, `${t} starts before any test ends: ${lines.join(' | ')}`);
    // Within a file, one test after the other, and the file's hooks around its own tests.
    for (const [a, b] of [['one-a', 'one-b'], ['one-b', 'one-c'], ['two-a', 'two-b']]) assert.ok(at(`${a} ends`) < at(`${b} starts`), `${a} ends before ${b} starts`);
    assert.ok(at('two before') < at('two-a starts'));
    assert.ok(at('one-c ends') < at('one after'));
    assert.ok(at('two-b ends') < at('two after'));
  });
});
