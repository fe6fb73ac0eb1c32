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
// esbuild (keepNames, the tsconfig's class-field semantics), with source maps
// so that a failure points at the TypeScript.
import { mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { transform } from 'esbuild';

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
      keepNames: true,
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
