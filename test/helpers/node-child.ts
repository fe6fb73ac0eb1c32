import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

/**
 * Runs `code`, an ES module (TypeScript too, through tsx), in a child node
 * started with `nodeFlags` and `env` added to this process's environment;
 * resolves with its stdout once it exited 0, and fails the test otherwise.
 * `tsx: false` for a child that imports only JavaScript: it starts without
 * the loader, on a fraction of the time and CPU.
 */
export async function runModule(code: string, { env = {}, nodeFlags = [], tsx = true }: { env?: Record<string, string>; nodeFlags?: string[]; tsx?: boolean } = {}): Promise<string> {
  const child = spawn(process.execPath, [...nodeFlags, ...(tsx ? ['--import', 'tsx'] : []), '--input-type=module', '-e', code], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  const exitCode = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(exitCode, 0, out.slice(-2000));
  return out;
}
