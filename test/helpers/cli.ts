/**
 * Runs the `herald` command as a child process, with an environment cleared
 * of the caller's HERALD_* variables so that tests never read the
 * developer's configuration.
 *
 * The CLI's TypeScript is bundled once per suite (or per test process) with esbuild (the
 * same compiler tsx uses; native and driver packages stay external) into test-output/, two
 * levels below the package root like dist/cli/main.js: a child then starts
 * in ~0.3 s instead of ~1.5 s through the tsx loader, which keeps the suite fast;
 * split at the dynamic import of `start`, so a client command loads only what it needs.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI_MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

let bundled: string | undefined;

/** Packages the bundle leaves to node_modules (see cliBundle). */
const EXTERNAL_PACKAGES = ['better-sqlite3', 'pg', 'mysql2', 'pino', 'pino-pretty', 'thread-stream'] as const;

/**
 * The bundled CLI: the one the suite's runner built once for every test file
 * (scripts/run-tests.mjs passes its path in HERALD_TEST_CLI_BUNDLE), or else one
 * built on first use in this process and removed when it exits.
 */
export function cliBundle(): string {
  if (bundled) return bundled;
  const shared = process.env.HERALD_TEST_CLI_BUNDLE;
  if (shared && existsSync(shared)) return (bundled = shared);
  const dir = join(REPO_ROOT, 'test-output', `cli-${process.pid}`);
  const out = buildCliBundle(dir);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  bundled = out;
  return out;
}

/** Bundles the CLI into `dir` (two levels below the package root); returns the path of its main.mjs. */
export function buildCliBundle(dir: string): string {
  mkdirSync(dir, { recursive: true });
  // Split at the CLI's dynamic import of `start`, as node loads dist/cli: one file
  // hoisted the server's packages (fastify, the database drivers…) into every
  // client command, which then took twice as long to start (0.6 s against 0.3).
  // The pure-JavaScript packages go into the bundle too: node then reads three files
  // instead of a few hundred (typebox, jose, commander, fastify…), which halves the CPU
  // a client command takes to start (0.45 s to 0.2) and cuts a quarter off `start`.
  // Native addons, the database drivers and pino (whose transports load files by path
  // in worker threads) stay external, loaded from node_modules as dist/ loads them; the
  // banner gives esbuild's CommonJS shims the `require` an ES module lacks.
  buildSync({
    entryPoints: [CLI_MAIN], bundle: true, splitting: true, platform: 'node', format: 'esm',
    external: [...EXTERNAL_PACKAGES],
    banner: { js: "import { createRequire as __cliBundleRequire } from 'node:module'; const require = __cliBundleRequire(import.meta.url);" },
    outdir: dir, outExtension: { '.js': '.mjs' }, logLevel: 'warning', target: 'node20',
  });
  return join(dir, 'main.mjs');
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** This process's environment without its HERALD_* variables (a developer's own would reach the child), plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HERALD_')) env[k] = v;
  return { ...env, ...extra };
}

/** Starts `herald ARGS…`; the caller owns the process (kill it by its own handle). */
export function spawnCli(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [cliBundle(), ...args], { cwd: options.cwd ?? REPO_ROOT, env: cleanEnv(options.env), stdio: 'pipe' });
}

/** Runs `herald ARGS…` to the end (killed after `timeoutMs`, which fails the result). */
export function runCli(args: readonly string[], options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return cliResult(spawnCli(args, options), args, options.timeoutMs);
}

/** What a started `herald ARGS…` printed and how it ended (killed after `timeoutMs`, which fails the result). */
export function cliResult(child: ChildProcessWithoutNullStreams, args: readonly string[], timeoutMs = 20000): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`herald ${args.join(' ')} did not finish within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Collects a child's output lines and lets a test await the line it expects. */
export class LineReader {
  readonly lines: string[] = [];
  #waiters: Array<{ pred: (l: string) => boolean; resolve: (l: string) => void }> = [];
  #partial = '';

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      for (const line of parts) {
        this.lines.push(line);
        for (const w of [...this.#waiters]) {
          if (w.pred(line)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    });
  }

  text(): string {
    return this.lines.join('\n') + (this.#partial ? `\n${this.#partial}` : '');
  }

  next(pred: (line: string) => boolean, timeoutMs = 15000): Promise<string> {
    const seen = this.lines.find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for a line; got:\n${this.text()}`)), timeoutMs);
      this.#waiters.push({ pred, resolve: (l) => { clearTimeout(timer); resolve(l); } });
    });
  }
}

/** Resolves with the exit code and signal of a child (rejects after `timeoutMs`). */
export function exited(child: ChildProcessWithoutNullStreams, timeoutMs = 15000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`process ${child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
}
