/**
 * scripts/test-groups.mjs, how the suite's runner puts short test files in a
 * shared process: which files keep a process of their own, how the rest are
 * packed and ordered, and, run for real under `node --test`, that a shared
 * process keeps each file's tests and top-level hooks inside that file's
 * suite, runs the files one after the other, and lets a file that fails, or
 * fails to load, fail alone.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
// @ts-expect-error: the runner's scripts are plain JavaScript (scripts/test-groups.mjs), without type declarations
import { GROUP_SECONDS, SHARE_SECONDS, groupEntry, ownProcessReason, planProcesses } from '../scripts/test-groups.mjs';

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = join(root, 'test-output', `test-groups-${process.pid}`);

type Plan = { files: string[]; seconds: number }[];

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
      'test/long.test.ts': SHARE_SECONDS + 1,
      'test/heap.test.ts': 1,
      'test/a.test.ts': 1,
      'test/b.test.ts': 2,
    });
    const alone = plan.filter((p) => p.files.length === 1).map((p) => p.files[0]).sort();
    assert.deepEqual(alone, ['test/heap.test.ts', 'test/long.test.ts', 'test/new.test.ts']);
    assert.deepEqual(plan.find((p) => p.files.length > 1), { files: ['test/a.test.ts', 'test/b.test.ts'], seconds: 3 });
  });

  test('packs every short file exactly once into processes of at most GROUP_SECONDS, and runs the longest first', () => {
    const durations: Record<string, number> = {};
    for (let i = 0; i < 60; i++) durations[`test/f${String(i).padStart(2, '0')}.test.ts`] = 0.5 + ((i * 7) % 15) / 2;
    durations['test/slow.test.ts'] = 40;
    const files = Object.keys(durations);
    const plan: Plan = planProcesses(files, () => plain, durations);
    assert.deepEqual(plan.flatMap((p) => p.files).sort(), [...files].sort());
    for (const p of plan) {
      if (p.files.length > 1) assert.ok(p.seconds <= GROUP_SECONDS, `${p.files.join(', ')}: ${p.seconds} s`);
      assert.equal(p.seconds, p.files.reduce((sum, f) => sum + (durations[f] ?? NaN), 0));
    }
    for (let i = 1; i < plan.length; i++) assert.ok(plan[i - 1]!.seconds >= plan[i]!.seconds, 'longest first');
    assert.deepEqual(plan[0]?.files, ['test/slow.test.ts']);
    const total = files.filter((f) => f !== 'test/slow.test.ts').reduce((sum, f) => sum + (durations[f] ?? NaN), 0);
    assert.ok(plan.length - 1 <= Math.ceil(total / GROUP_SECONDS) + 1, `${plan.length - 1} shared processes for ${total} s`);
  });
});

describe('a shared process, run by node --test', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("keeps each file's tests and hooks in its own suite, one file after the other, and a failure to its own file", () => {
    mkdirSync(dir, { recursive: true });
    const log = join(dir, 'order.log');
    writeFileSync(log, '');
    const file = (name: string, body: string): { name: string; url: string } => {
      const path = join(dir, `${name}.mjs`);
      writeFileSync(path, [
        "import { after, before, describe, test } from 'node:test';",
        "import { appendFileSync } from 'node:fs';",
        `const note = (what) => appendFileSync(${JSON.stringify(log)}, ${JSON.stringify(name)} + ' ' + what + '\\n');`,
        "note('loaded');",
        body,
        '',
      ].join('\n'));
      return { name: `test/${name}.test.ts`, url: pathToFileURL(path).href };
    };
    const entries = [
      file('first', "before(() => note('before'));\nafter(() => note('after'));\ntest('first test', async () => { await new Promise((r) => setTimeout(r, 50)); note('test'); });"),
      file('second', "describe('second suite', () => {\n  after(() => note('after'));\n  test('passes', () => note('test passes'));\n  test('fails', () => { note('test fails'); throw new Error('second fails on purpose'); });\n});"),
      file('broken', "throw new Error('broken cannot load');"),
      file('third', "test('third test', () => note('test'));"),
    ];
    const group = join(dir, 'group.mjs');
    writeFileSync(group, groupEntry(entries));
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
    const results = r.stdout.trim().split('\n').map((line) => JSON.parse(line) as { type: string; name: string; nesting: number; error: string | null });
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
    const lines = readFileSync(log, 'utf8').trim().split('\n');
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
});
