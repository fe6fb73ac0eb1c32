/**
 * What an install of Herald gets: the files `npm pack` puts in the package,
 * and what they promise. The package holds the build (dist/), README, the
 * licence and the third-party notices, the reference docs and the deployment
 * examples they link to; never the repository's tests, sources, benchmarks,
 * CI or scratch files. Every path package.json's main, bin, types and exports
 * name is in it, every packed source map can show its sources, and the
 * browser bundles keep DOMPurify's licence comment.
 *
 * It packs the current build: `npm test` builds first; run alone, build
 * first (`npm run build`, or `node scripts/build-client.mjs` and
 * `tsc -p tsconfig.build.json`).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface PackageJson {
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, unknown>;
  engines: { node: string };
  license: string;
}
const pkg = JSON.parse(read('package.json')) as PackageJson;

/** `npm pack --dry-run`'s file list: what a publish would upload, without running the build again. */
function packedFiles(): Set<string> {
  // Under `npm test`, the npm that runs us; alone, the one on PATH.
  const npmCli = process.env.npm_execpath;
  const [cmd, args] = npmCli?.endsWith('.js') ? [process.execPath, [npmCli]] : ['npm', []];
  const r = spawnSync(cmd, [...args, 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  assert.equal(r.status, 0, `npm pack --dry-run failed: ${r.stderr}`);
  const [report] = JSON.parse(r.stdout) as [{ files: { path: string }[] }];
  return new Set(report.files.map((f) => f.path));
}

/** Every string under an exports value (conditions nest). */
function exportTargets(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(exportTargets);
  return [];
}

describe('the package npm would publish', () => {
  let files: Set<string>;
  before(() => {
    files = packedFiles();
  });

  test('holds every file main, bin, types and exports name', () => {
    const named = [pkg.main, pkg.types, ...Object.values(pkg.bin), ...exportTargets(pkg.exports)];
    for (const path of named) {
      const file = posix.normalize(path);
      assert.ok(files.has(file), `package.json names ${path}, which is not packed (is it built?)`);
    }
    assert.ok(files.has('dist/client/herald.min.js'), 'the script-tag build');
    assert.ok(exportTargets(pkg.exports).includes('./dist/client/herald.min.js'), 'the script-tag build is exported, for a bundler or a copy step to reach');
  });

  test('holds no tests, sources, benchmarks, CI, build scripts or scratch files', () => {
    // The benchmark docs describe bench/, which is not packed.
    const unwanted = /^(test|test-output|src|bench|scripts|scratch|data|node_modules|\.ci|\.git)\/|^docs\/bench|^tsconfig|\.tsbuildinfo$/;
    const stray = [...files].filter((f) => unwanted.test(f));
    assert.deepEqual(stray, [], 'files that are no part of what an install runs or reads');
  });

  test('holds the licence package.json names and the notices of the code bundled into dist/client', () => {
    assert.equal(pkg.license, 'MIT');
    assert.ok(files.has('LICENSE'), 'LICENSE is packed');
    assert.match(read('LICENSE'), /^MIT License\n\nCopyright \(c\) \d{4} /);
    assert.ok(files.has('THIRD_PARTY_LICENSES'), 'THIRD_PARTY_LICENSES is packed');
    const notices = read('THIRD_PARTY_LICENSES');
    // Which packages the bundles hold, from their source maps.
    const bundled = new Set<string>();
    for (const map of ['dist/client/herald.esm.js.map', 'dist/client/herald.min.js.map']) {
      for (const source of (JSON.parse(read(map)) as { sources: string[] }).sources) {
        const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(source);
        if (m) bundled.add(m[1]!);
      }
    }
    assert.ok(bundled.has('dompurify'), 'the bundles hold DOMPurify (sanitize.ts)');
    for (const name of bundled) {
      const { version } = JSON.parse(read(`node_modules/${name}/package.json`)) as { version: string };
      assert.ok(notices.includes(`${name} ${version}`), `THIRD_PARTY_LICENSES names ${name} ${version}, which dist/client bundles`);
    }
    assert.ok(notices.includes(read('node_modules/dompurify/LICENSE').trim()), 'DOMPurify\'s LICENSE text, whole');
  });

  test('the browser bundles keep DOMPurify\'s licence comment, and the notices cover each licence comment they carry', () => {
    const notices = read('THIRD_PARTY_LICENSES');
    for (const file of ['dist/client/herald.esm.js', 'dist/client/herald.min.js']) {
      const code = read(file);
      assert.match(code, /[/(]\*! @license DOMPurify \d+\.\d+\.\d+ /, `${file} carries DOMPurify's @license comment`);
      // esbuild's legal comments: `/*! …` or `@license`, kept whole (at the end of the file, inside one comment, as `(*! … *)`).
      for (const m of code.matchAll(/[/(]\*!\s*(?:@license\s+)?([\w.@/-]+)/g)) {
        if (m[0].startsWith('/*! Bundled')) continue; // esbuild's heading of the list
        assert.ok(notices.toLowerCase().includes(m[1]!.toLowerCase()), `${file} carries a licence comment of ${m[1]}, which THIRD_PARTY_LICENSES does not name`);
      }
    }
  });

  test('every packed source map carries its sources, or points at packed files', () => {
    const maps = [...files].filter((f) => f.endsWith('.js.map'));
    assert.ok(maps.length > 0, 'source maps are packed');
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(read(map)) as { sources: string[]; sourcesContent?: (string | null)[] };
      sources.forEach((source, i) => {
        if (typeof sourcesContent?.[i] === 'string') return;
        const file = posix.join(posix.dirname(map), source);
        assert.ok(files.has(file), `${map}: source ${source} is neither inlined nor packed`);
      });
    }
  });

  test('every relative link of a packed Markdown file leads to a packed file (the benchmarks and their docs aside)', () => {
    for (const doc of [...files].filter((f) => f.endsWith('.md'))) {
      for (const m of read(doc).replace(/```[\s\S]*?```/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        const file = posix.join(posix.dirname(doc), target);
        if (/^(bench\/|docs\/bench)/.test(file)) continue; // what the benchmarks measured: of the repository, not of an install
        assert.ok(files.has(file), `${doc} links to ${m[1]}, which is not packed`);
      }
    }
  });
});

describe('the Node versions package.json accepts', () => {
  /** `>=MAJOR.MINOR[.PATCH]` as [major, minor]. */
  const minimum = (range: string): [number, number] => {
    const m = /^>=\s*(\d+)\.(\d+)(?:\.\d+)?$/.exec(range.trim());
    assert.ok(m, `engines.node is a plain minimum: ${range}`);
    return [Number(m[1]), Number(m[2])];
  };

  test('start at 20.19, where require() loads an ES module without a flag', () => {
    // An install gets fastify's light-my-request as the registry has it (npm
    // applies overrides only in the root project): 6.8 and later load cookie 2,
    // an ES module, with require(); so does a CommonJS `require('herald')`.
    const [major, minor] = minimum(pkg.engines.node);
    assert.ok(major > 20 || (major === 20 && minor >= 19), `engines.node ${pkg.engines.node} lets in a Node without require(esm)`);
  });

  test('on such a Node, require() loads the SDK (no top-level await in its module graph)', (t) => {
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    if (major < 20 || (major === 20 && minor < 19)) return t.skip(`Node ${process.versions.node} has no require(esm)`);
    const sdk = createRequire(import.meta.url)(join(root, pkg.main)) as Record<string, unknown>;
    assert.equal(typeof sdk.BrowserSender, 'function');
  });
});

describe('README\'s Node SDK example', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-sdk-example-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** The ```ts block of `doc` that holds the seed's example (the one sending "Test notification"). */
  const example = (doc: string) => {
    const block = [...read(doc).matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('Test notification'));
    assert.ok(block, `${doc} has the seed's example`);
    return block;
  };

  test('is the same in README and docs/sdk.md, and compiles against the built types as `herald`', () => {
    const code = example('README.md');
    assert.equal(example('docs/sdk.md'), code, 'docs/sdk.md shows README\'s example');
    // As a consumer has it: node_modules/herald is the package, resolved through its exports.
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules/herald'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
          typeRoots: [join(root, 'node_modules/@types')],
        },
        files: ['example.ts'],
      }),
    );
    // The panel's configuration and signed-in admin, which the Perl has as %conf and $admin.
    const panel = 'declare const conf: { HERALD_URL: string; HERALD_API_TOKEN: string; WEBSOCKET_ENABLED: boolean };\ndeclare const admin: { AID: number };\n';
    writeFileSync(join(dir, 'example.ts'), panel + code);
    const r = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `tsc:\n${r.stdout}${r.stderr}`);
  });
});
