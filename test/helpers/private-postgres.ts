/**
 * A PostgreSQL server of our own, for fault tests: initdb into a temp dir,
 * `postgres` started as our child on a free port, stopped by its PID. The
 * shared server of SERVICES.md is never touched. PostgreSQL refuses to run as
 * root, so as root the server runs as the `postgres` system user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import pg from 'pg';
import { restartablePort } from './ports.js';

function pgBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'postgres'))) return join(root, v, 'bin');
  return undefined;
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('running as root, but there is no postgres user to run a private PostgreSQL');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export class PrivatePostgres {
  readonly port: number;
  readonly url: string;
  readonly #dir: string;
  readonly #bin: string;
  readonly #user: { uid: number; gid: number } | undefined;
  #child: ChildProcess | undefined;

  private constructor(dir: string, bin: string, port: number, user: { uid: number; gid: number } | undefined) {
    this.#dir = dir;
    this.#bin = bin;
    this.port = port;
    this.#user = user;
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /** Undefined when this machine has no PostgreSQL binaries (the caller skips or, under CI, fails). */
  static async create(): Promise<PrivatePostgres | undefined> {
    const bin = pgBinDir();
    if (!bin) return undefined;
    const user = postgresUser();
    const dir = mkdtempSync(join(tmpdir(), 'herald-pg-'));
    if (user) chownSync(dir, user.uid, user.gid);
    const init = spawnSync(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'], {
      encoding: 'utf8',
      ...(user ?? {}),
    });
    if (init.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`initdb failed: ${init.stderr}`);
    }
    // Stopped and started again on the same port while clients retry: below the ephemeral range (ports.ts).
    const server = new PrivatePostgres(dir, bin, await restartablePort(), user);
    await server.start();
    return server;
  }

  /** Starts the server (again) and waits until it answers. */
  async start(): Promise<void> {
    if (this.#child) return;
    const child = spawn(
      join(this.#bin, 'postgres'),
      ['-D', join(this.#dir, 'data'), '-p', String(this.port), '-k', this.#dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
      { stdio: 'ignore', ...(this.#user ?? {}) },
    );
    this.#child = child;
    child.once('exit', () => {
      if (this.#child === child) this.#child = undefined;
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      const c = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      try {
        await c.connect();
        await c.end();
        return;
      } catch {
        await c.end().catch(() => undefined);
        if (Date.now() > deadline || !this.#child) throw new Error('private PostgreSQL did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Stops our server by its PID (immediate shutdown: like a crash, connections drop at once). */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      this.#child = undefined;
      return;
    }
    const exited = once(child, 'exit');
    child.kill('SIGQUIT');
    await exited;
    this.#child = undefined;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
