// Builds the browser library (src/client) with esbuild:
//   dist/client/herald.esm.js  ES module (+ type declarations, dist/client/*.d.ts)
//   dist/client/herald.min.js  minified IIFE for a <script> tag: globals Herald and AMessageChecker
//   dist/client/demo.js        the demo page's script (uses the global Herald)
// and prints the gzipped size of herald.min.js. scripts/build.mjs calls
// buildClient(root); `node scripts/build-client.mjs` runs it alone.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

/** @param {string} root the repository root */
export async function buildClient(root) {
  const src = join(root, 'src/client');
  const out = join(root, 'dist/client');
  mkdirSync(out, { recursive: true });
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
  const common = {
    bundle: true,
    platform: 'browser',
    // Class private methods natively (Safari 15.4+, Chrome 94+, Firefox 93+); older browsers are out of support.
    target: ['es2022', 'chrome94', 'firefox93', 'safari15.4'],
    // DOMPurify's `/*! @license … */` stays, at the end of each file: its licence asks that a copy carry its notice (THIRD_PARTY_LICENSES).
    legalComments: 'eof',
    logLevel: 'warning',
    define: { __HERALD_VERSION__: JSON.stringify(version) },
    banner: { js: `/* Herald browser library ${version} (MIT). Bundles DOMPurify (Apache-2.0 OR MPL-2.0). */` },
  };
  await esbuild.build({ ...common, entryPoints: [join(src, 'index.ts')], outfile: join(out, 'herald.esm.js'), format: 'esm', sourcemap: true });
  const min = await esbuild.build({
    ...common,
    entryPoints: [join(src, 'global.ts')],
    outfile: join(out, 'herald.min.js'),
    format: 'iife',
    minify: true,
    sourcemap: true,
    metafile: true,
  });
  await esbuild.build({ ...common, entryPoints: [join(src, 'demo/demo-app.ts')], outfile: join(out, 'demo.js'), format: 'iife', minify: true, banner: {} });

  // Type declarations for the ES module build (package.json "./client" types).
  const tsc = spawnSync(
    process.execPath,
    [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(src, 'tsconfig.json'), '--noEmit', 'false', '--declaration', '--emitDeclarationOnly', '--rootDir', join(root, 'src'), '--outDir', join(root, 'dist')],
    { stdio: 'inherit' },
  );
  if (tsc.status !== 0) throw new Error('tsc (client declarations) failed');

  const code = readFileSync(join(out, 'herald.min.js'));
  const gz = gzipSync(code, { level: 9 }).length;
  let purifyBytes = 0;
  for (const [path, info] of Object.entries(min.metafile.outputs[Object.keys(min.metafile.outputs).find((k) => k.endsWith('.js'))].inputs)) {
    if (path.includes('dompurify')) purifyBytes += info.bytesInOutput;
  }
  // The same build without DOMPurify, to report Herald's own share.
  const own = await esbuild.build({ ...common, entryPoints: [join(src, 'global.ts')], format: 'iife', minify: true, write: false, external: ['dompurify'], outfile: join(out, 'own.js') });
  const ownGzip = gzipSync(own.outputFiles[0].contents, { level: 9 }).length;
  const sizes = { minBytes: code.length, gzipBytes: gz, dompurifyMinBytes: purifyBytes, heraldOnlyGzipBytes: ownGzip };
  writeFileSync(join(out, 'sizes.json'), JSON.stringify(sizes, null, 2) + '\n');
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  console.log(`client: herald.min.js ${kb(code.length)}, ${kb(gz)} gzipped; Herald's own code ${kb(ownGzip)} gzipped, the rest is DOMPurify (${kb(purifyBytes)} minified)`);
  return sizes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildClient(join(fileURLToPath(import.meta.url), '../..'));
}
