import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

/**
 * Runs `code`, a plain JavaScript ES module, in a child node started with
 * `nodeFlags` and `env` added to this process's environment; resolves with
 * its stdout once it exited 0, and fails the test otherwise. As
 * runModule (node-child.ts) without the tsx loader: a child that imports
 * only JavaScript starts in a fraction of the time and CPU.
 */
export async function runPlainModule(code: string, { env = {}, nodeFlags = [] }: { env?: Record<string, string>; nodeFlags?: string[] } = {}): Promise<string> {
  const child = spawn(process.execPath, [...nodeFlags, '--input-type=module', '-e', code], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const exitCode = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(exitCode, 0, out.slice(-2000));
  return out;
}
