/**
 * Herald as an operator runs it, for the fault tests (test/fault-*.test.ts):
 * `herald start --config FILE` as a child process on a temp data dir and a
 * fixed port, so that it can be killed with SIGKILL and started again on
 * the same ones; sends through the real HTTP API and tabs over real `ws`
 * connections that ack and resume as docs/delivery.md says.
 */
import assert from 'node:assert/strict';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { mintToken } from '../../src/server/auth/token-resolver.js';
import { spawnCli } from './cli.js';
import { restartablePort } from './ports.js';

export interface SendItem {
  to: { aid: number };
  message: Record<string, unknown>;
  ttl?: number;
  idempotencyKey?: string;
}

/** One recipient's part of a /send answer. */
export interface RecipientResult {
  seq?: number;
  epoch?: string;
  duplicate: boolean;
  queued: boolean;
}

/** A /send answer (one item of a batch's). */
export interface SendResult {
  queued: boolean;
  results: RecipientResult[];
}

/** One Herald data dir and port, and the process currently running on it. */
export class FaultServer {
  readonly secret = randomBytes(32).toString('base64url');
  readonly apiToken = randomBytes(24).toString('base64url');
  child: ChildProcessWithoutNullStreams | undefined;
  /** Everything the processes wrote, stdout and stderr, across restarts. */
  output = '';
  readonly config: string;

  private constructor(readonly port: number, readonly dataDir: string, options: Record<string, unknown>) {
    this.config = join(dataDir, '..', `${dataDir.split('/').pop()}.json`);
    writeFileSync(this.config, JSON.stringify({
      port, host: '127.0.0.1', dataDir, secret: this.secret, apiToken: this.apiToken,
      legacyEnabled: false, logLevel: 'info', ...options,
    }));
  }

  /** A server on a new temp data dir (or `dataDir`), not started yet. */
  static async create(options: Record<string, unknown> = {}, dataDir?: string): Promise<FaultServer> {
    return new FaultServer(await restartablePort(), dataDir ?? mkdtempSync(join(tmpdir(), 'herald-fault-')), options);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts `herald start` and resolves once its HTTP API answers. */
  async start(): Promise<void> {
    const child = spawnCli(['start', '--config', this.config]);
    this.child = child;
    child.stdout.setEncoding('utf8').on('data', (c: string) => { this.output += c; });
    child.stderr.setEncoding('utf8').on('data', (c: string) => { this.output += c; });
    const deadline = Date.now() + 15_000;
    for (;;) {
      assert.ok(child.exitCode === null && child.signalCode === null, `herald start exited: ${this.output.slice(-2000)}`);
      assert.ok(Date.now() < deadline, `herald start did not answer within 15 s: ${this.output.slice(-2000)}`);
      try {
        const r = await fetch(`${this.url}/api/v1/status`, { headers: { authorization: `Bearer ${this.apiToken}` } });
        await r.arrayBuffer();
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** kill -9, and waits for the process to be gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = once(child, 'exit');
    child.kill('SIGKILL');
    await gone;
  }

  /** SIGTERM (a graceful stop); resolves with the exit code. */
  async stop(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const gone = once(child, 'exit');
    child.kill('SIGTERM');
    await gone;
    return child.exitCode;
  }

  /** Kills what runs and removes the data dir and config. */
  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
    rmSync(this.config, { force: true });
  }

  /** POST /api/v1/send/batch: the HTTP status and the parsed answer. */
  async sendBatch(messages: readonly SendItem[]): Promise<{ status: number; body: { results?: SendResult[]; error?: { code: string; message: string } } }> {
    const r = await fetch(`${this.url}/api/v1/send/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ messages }),
    });
    return { status: r.status, body: await r.json() as never };
  }

  /** A tab of admin `aid`, resuming from `cursor` (none: a new tab). */
  async tab(aid: number, cursor?: { seq: number; epoch: string }): Promise<Tab> {
    const url = new URL(`ws://127.0.0.1:${this.port}/ws/admin`);
    url.searchParams.set('token', await mintToken(this.secret, { kind: 'admin', id: aid }, 3_600_000));
    if (cursor) {
      url.searchParams.set('seq', String(cursor.seq));
      url.searchParams.set('epoch', cursor.epoch);
    }
    const tab = new Tab(new WebSocket(url));
    await tab.welcome;
    return tab;
  }
}

/** A `ws` tab: records the notifications and RESETs it gets, acks each at once with SEQ and EPOCH. */
export class Tab {
  /** Frames of the tab's own stream that carry a SEQ (notifications and RESETs), in order. */
  readonly frames: Array<Record<string, unknown>> = [];
  /** Notifications without a SEQ (live-only sends). */
  readonly live: Array<Record<string, unknown>> = [];
  readonly welcome: Promise<Record<string, unknown>>;
  #waiters: Array<() => void> = [];

  constructor(readonly ws: WebSocket) {
    this.welcome = new Promise((resolve, reject) => {
      ws.once('error', reject);
      ws.once('close', (code, reason) => reject(new Error(`closed before WELCOME: ${code} ${reason.toString()}`)));
      ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as Record<string, unknown>;
        if (f.TYPE === 'WELCOME') resolve(f);
        if (typeof f.SEQ === 'number' && f.TYPE !== 'WELCOME' && f.STREAM === undefined) {
          this.frames.push(f);
          if (f.TYPE !== 'RESET') ws.send(JSON.stringify({ TYPE: 'RESPONSE', SEQ: f.SEQ, EPOCH: f.EPOCH }));
        } else if (f.TYPE === 'MESSAGE' && f.SEQ === undefined) this.live.push(f);
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  /** The notifications (not RESETs) received. */
  get messages(): Array<Record<string, unknown>> {
    return this.frames.filter((f) => f.TYPE !== 'RESET');
  }

  /** Resolves once `done()` holds, or fails after `ms`. */
  async until(done: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      assert.ok(left > 0, `timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
  }

  close(): void {
    this.ws.terminate();
  }
}
