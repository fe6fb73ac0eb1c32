/**
 * `herald start` as a real child process on a fixed port and data dir (the
 * SQLite store), with fixed secrets, for browser tests that kill the server
 * (SIGKILL: no close frame, no flush) or stop it (SIGTERM: a graceful
 * shutdown) and start it again on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mintToken } from '../../src/server/auth/token-resolver.js';
import { cleanEnv } from './cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'dist/cli/main.js');
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class HeraldProcess {
  child: ChildProcess | undefined;
  stderr = '';
  readonly secret = randomBytes(32).toString('base64url');
  readonly apiToken = randomBytes(24).toString('base64url');
  constructor(readonly port: number, readonly dataDir: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the child and resolves once /healthz answers (15 s at most). */
  async start(): Promise<void> {
    const env = cleanEnv({ HERALD_SECRET: this.secret, HERALD_API_TOKEN: this.apiToken });
    const child = spawn(process.execPath, [MAIN, 'start', '--port', String(this.port), '--data-dir', this.dataDir, '--no-legacy', '--store', 'sqlite', '--log-level', 'warn', '--set', 'commandsEnabled=false'], {
      cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`herald start exited ${child.exitCode}: ${this.stderr}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`herald start not ready within 15 s: ${this.stderr}`);
      await delay(50);
    }
  }

  /** Ends the child with `signal` (SIGKILL: the sockets just die; SIGTERM: a graceful shutdown) and waits for its exit. */
  async stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await gone;
  }

  token(id: number): Promise<string> {
    return mintToken(this.secret, { kind: 'admin', id }, 3_600_000);
  }

  /** An HTTP API call with the API token; the JSON body. */
  async api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** Sends a MESSAGE to admin `aid`; its message id. */
  async send(aid: number, title: string): Promise<string> {
    const res = await this.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TITLE: title, TEXT: title } });
    if (res.status !== 200) throw new Error(`send ${title}: ${res.status} ${JSON.stringify(res.body)}`);
    return (res.body.results as Array<{ messageId: string }>)[0]!.messageId;
  }

  /** Whether the server counts the message as acknowledged. */
  async acknowledged(messageId: string): Promise<boolean> {
    const res = await this.api('GET', `/api/v1/messages/${encodeURIComponent(messageId)}`);
    return res.body.acknowledged === true;
  }
}
