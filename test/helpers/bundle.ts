/**
 * A TypeScript entry of the tests' own (a store writer, a server process)
 * bundled once per test process with esbuild, as helpers/cli.ts does for the
 * CLI: a child started from the bundle costs a fraction of the CPU time of
 * one started through the tsx loader, which compiles every imported file
 * again in each child. Packages stay external; the bundle sits two levels
 * below the package root (test-output/…/), like dist/cli/main.js, so paths
 * resolved from import.meta.url and node_modules look-ups work as in src/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const bundles = new Map<string, string>();
let dir: string | undefined;

/** The bundled form of `entry` (a path from the package root, e.g. 'test/store-sqlite-writer.ts'), built on first use and removed when this process exits. */
export function bundled(entry: string): string {
  const done = bundles.get(entry);
  if (done) return done;
  if (dir === undefined) {
    const d = join(REPO_ROOT, 'test-output', `bundle-${process.pid}`);
    mkdirSync(d, { recursive: true });
    process.once('exit', () => rmSync(d, { recursive: true, force: true }));
    dir = d;
  }
  const out = join(dir, `${basename(entry, '.ts')}.mjs`);
  buildSync({
    entryPoints: [join(REPO_ROOT, entry)], bundle: true, platform: 'node', format: 'esm', packages: 'external',
    outfile: out, logLevel: 'warning', target: 'node20',
  });
  bundles.set(entry, out);
  return out;
}
