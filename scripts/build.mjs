// Builds everything a fresh clone needs: the server, SDK and CLI with tsc,
// then the browser library with esbuild (scripts/build-client.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync, chmodSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
rmSync(join(root, 'dist'), { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const cli = join(root, 'dist/cli/main.js');
if (existsSync(cli)) chmodSync(cli, 0o755);
const client = join(root, 'scripts/build-client.mjs');
if (existsSync(client)) {
  const { buildClient } = await import(client);
  await buildClient(root);
}
