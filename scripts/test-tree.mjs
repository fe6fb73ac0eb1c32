// Compiles the TypeScript the tests run (src/, test/, scripts/) to JavaScript
// in test-output/compiled/, one file for each, so that the suite runs without
// a loader. Under Node 20 any module loader hook (tsx's included) runs on a
// thread of its own and about doubles the time every import takes: loading
// the server cost 2.1 s of CPU through tsx against 0.8 s compiled, in each of
// some 250 test files.
//
// Each file is compiled with import.meta.url, .dirname and .filename set to
// its source's, so that a test or module finds files next to its source
// (fixtures, docs, dist/, the .ts a child process runs through tsx) as it
// does under tsx. Imports between compiled files stay relative, so they
// resolve inside the tree; other files, and bench/ for the tests that import
// its modules, are linked in, so they load from their own place,
// and bare imports find node_modules by walking up. Options as tsx gives
// esbuild (the tsconfig's class-field semantics), with source maps so that a
// failure points at the TypeScript. Child processes run this tree; the test
// files themselves run bundled from it (bundleTests, below).
import { mkdirSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, transform } from 'esbuild';

/** The directories compiled, relative to the repository. */
const TREES = ['src', 'test', 'scripts'];
/** Linked into the compiled tree as they are: tests import its .mjs files. */
const LINKED = ['bench'];

function walk(dir) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (entry.isFile()) out.push(p);
  }
  return out;
}

/** Compiles into `<root>/test-output/compiled` (emptied first) and returns that directory. */
export async function compileTestTree(root) {
  const out = join(root, 'test-output', 'compiled');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const name of LINKED) symlinkSync(join(root, name), join(out, name), 'dir');
  const files = TREES.flatMap((tree) => walk(join(root, tree)));
  await Promise.all(files.map(async (file) => {
    const target = join(out, relative(root, file));
    mkdirSync(dirname(target), { recursive: true });
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) {
      symlinkSync(file, target);
      return;
    }
    const url = pathToFileURL(file).href;
    const { code } = await transform(await readFile(file, 'utf8'), {
      loader: 'ts',
      format: 'esm',
      target: `node${process.versions.node.split('.')[0]}`,
      // Not keepNames: compiled file by file, nothing is renamed, so every function keeps its
      // name as it is. bundleTests keeps the names it renames, with one __name helper for the
      // whole bundle (a page.evaluate callback calls it, and newPage gives the page one).
      sourcemap: 'inline',
      sourcefile: file,
      tsconfigRaw: { compilerOptions: { target: 'ES2022', verbatimModuleSyntax: true, useDefineForClassFields: true } },
      define: {
        'import.meta.url': JSON.stringify(url),
        'import.meta.dirname': JSON.stringify(dirname(file)),
        'import.meta.filename': JSON.stringify(file),
      },
    });
    writeFileSync(target.slice(0, -'.ts'.length) + '.js', code);
  }));
  return out;
}

/** Marks bundleTests' own call to esbuild's resolver, which its hook then leaves alone. */
const LEAVE = 'leave-outside';
/** Packages left to node_modules (loaded as dist/ loads them): native addons, the database drivers, pino (whose transports load files by path), and the tools and browser driver the tests start. */
const EXTERNAL_PACKAGES = /\/node_modules\/(better-sqlite3|pg|pg-[^/]+|mysql2|pino|pino-pretty|thread-stream|playwright-core|esbuild|@esbuild|tsx|typescript|socket\.io|socket\.io-client|bufferutil|utf-8-validate)\//;

/**
 * Bundles the compiled test files `entries` (paths inside `compiled`) into
 * `<root>/test-output/bundled/`, with the modules and packages they share in
 * chunks, and returns the bundled paths in the same order. Node 20 spends
 * about as long loading a test file's few hundred modules one by one
 * (resolving, reading, lexing CommonJS for its exports) as some files spend
 * testing: 0.84 s of CPU to import the server's test helper, 0.31 s from a
 * bundle. The CLI's tests have run a bundle since the thirty-fourth round
 * (test/helpers/cli.ts), with the same packages left out.
 *
 * What lies outside the compiled tree and node_modules (a test's .mjs
 * helpers, bench/) is left where it is, imported by its path: it finds what
 * lies next to it. Each compiled file already holds its source's
 * import.meta.url as text, so the bundle changes no path a test computes.
 */
export async function bundleTests(root, compiled, entries) {
  const out = join(root, 'test-output', 'bundled');
  rmSync(out, { recursive: true, force: true });
  const realCompiled = realpathSync(compiled);
  await build({
    entryPoints: entries, outbase: compiled, outdir: out, bundle: true, splitting: true, format: 'esm', platform: 'node',
    target: `node${process.versions.node.split('.')[0]}`, keepNames: true, sourcemap: 'inline', sourcesContent: false,
    chunkNames: 'chunks/[name]-[hash]', logLevel: 'warning',
    // esbuild's CommonJS shims call `require`, which an ES module lacks.
    banner: { js: "import { createRequire as __testBundleRequire } from 'node:module'; const require = __testBundleRequire(import.meta.url);" },
    plugins: [{
      name: 'leave-outside',
      setup(b) {
        b.onResolve({ filter: /.*/ }, async (args) => {
          if (args.kind === 'entry-point' || args.pluginData === LEAVE) return undefined;
          const r = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: LEAVE });
          // What esbuild cannot find (an optional peer such as pg-native) is left to node, which throws as it would have.
          if (r.errors.length > 0) return { path: args.path, external: true };
          if (r.external || r.path.startsWith(realCompiled + sep)) return r;
          if (r.path.includes(`${sep}node_modules${sep}`)) return EXTERNAL_PACKAGES.test(r.path) ? { path: args.path, external: true } : r;
          return { path: r.path, external: true };
        });
      },
    }],
  });
  return entries.map((e) => join(out, relative(compiled, e)));
}
