// `npm test`'s first step: the build (scripts/build.mjs) and the type check
// (tsc --noEmit over src/, test/, bench/ and scripts/) at the same time. Each
// is one compiler on one core, 16-18 s apiece here, and neither reads what the
// other writes (the type check emits nothing and reads no dist/), so on two
// cores both take about as long as one. Each one's output is printed whole
// when it ends, not interleaved; the exit status is non-zero when either
// failed.
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const steps = [
  { name: 'build', args: [join(root, 'scripts', 'build.mjs')] },
  { name: 'typecheck', args: [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json'), '--noEmit'] },
];

const results = await Promise.all(steps.map((step) => new Promise((done) => {
  const child = spawn(process.execPath, step.args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  child.stdout.on('data', (chunk) => output.push(chunk));
  child.stderr.on('data', (chunk) => output.push(chunk));
  child.on('error', (error) => done({ step, status: 1, output: [Buffer.from(`${error.message}\n`)] }));
  child.on('close', (code, signal) => done({ step, status: code ?? (signal ? 1 : 0), output }));
})));

let failed = false;
for (const { step, status, output } of results) {
  process.stdout.write(`> ${step.name}${status === 0 ? '' : ` failed (exit ${status})`}\n`);
  process.stdout.write(Buffer.concat(output));
  if (status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
