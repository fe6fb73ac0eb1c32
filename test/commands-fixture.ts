/**
 * A CommandRunner wired to the real in-memory core (MemoryStore, LocalBroker,
 * Hub, Notifier) with recording tabs, a temporary working directory and
 * captured log lines. Not a test file itself (no `.test.ts`).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type { Principal } from '../src/protocol/principal.js';
import { LocalBroker } from '../src/server/broker/local-broker.js';
import type { CommandAuditStore } from '../src/server/commands/outcome.js';
import { CommandRunner } from '../src/server/commands/runner.js';
import { Hub, type Tab } from '../src/server/hub.js';
import { Notifier } from '../src/server/notifier.js';
import { loadOptions, type OptionKey } from '../src/server/options.js';
import { MemoryStore } from '../src/server/store/memory-store.js';

export type Frame = Record<string, unknown>;

/** A browser tab that records every frame it is sent. */
export class RecordingTab implements Tab {
  static #n = 0;
  readonly id = `tab-${++RecordingTab.#n}`;
  readonly frames: Frame[] = [];
  readonly #waiters = new Set<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }>();

  constructor(readonly principal: Principal) {}

  deliver(frame: string): void {
    const f = JSON.parse(frame) as Frame;
    this.frames.push(f);
    for (const w of this.#waiters) {
      if (w.match(f)) {
        this.#waiters.delete(w);
        w.resolve(f);
      }
    }
  }

  close(): void {}

  /** The first frame (already received or still to come) that matches, or a failure after `ms`. */
  next(match: (f: Frame) => boolean, ms = 10_000): Promise<Frame> {
    const seen = this.frames.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`no matching frame within ${ms} ms; got ${JSON.stringify(this.frames).slice(0, 2000)}`));
      }, ms);
      this.#waiters.add(w);
    });
  }
}

export interface Rig {
  runner: CommandRunner;
  hub: Hub;
  notifier: Notifier;
  store: MemoryStore;
  cwd: string;
  /** Parsed log lines. */
  logs: Frame[];
  tab(aid: number): RecordingTab;
  close(): Promise<void>;
}

export async function makeRig(overrides: Partial<Record<OptionKey, unknown>> = {}, deps: { audit?: CommandAuditStore; env?: NodeJS.ProcessEnv } = {}): Promise<Rig> {
  const cwd = mkdtempSync(join(tmpdir(), 'herald-commands-'));
  const options = loadOptions({
    env: {},
    overrides: { commandsCwd: cwd, commandsPath: '/usr/bin:/bin', commandsProgressMs: 50, commandsKillGraceMs: 500, ...overrides },
  });
  const logs: Frame[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line) as Frame);
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const hub = new Hub();
  const broker = new LocalBroker(hub);
  await broker.start((env) => {
    if (env.type === 'person') hub.deliverTo(env.to, env.frame, env.origin);
    else if (env.type === 'kind') hub.deliverToKind(env.kind, env.frame, env.origin);
    else hub.disconnect(env.to, env.code, env.reason);
  });
  const store = new MemoryStore({ maxPerStream: 1000 });
  const notifier = new Notifier({ store, broker, logger, defaultTtlMs: options.defaultTtlMs, maxTtlMs: options.maxTtlMs });
  const runner = new CommandRunner({ notifier, logger, options, audit: deps.audit, ...(deps.env ? { env: deps.env } : {}) });
  return {
    runner, hub, notifier, store, cwd, logs,
    tab(aid) {
      const t = new RecordingTab({ kind: 'admin', id: aid });
      hub.add(t);
      return t;
    },
    async close() {
      await runner.close();
      await broker.close();
      await store.close();
      rmSync(cwd, { recursive: true, force: true });
    },
  };
}

/** Pids of the processes whose command line is exactly `argv`. */
export function processesRunning(argv: string[]): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8') === `${argv.join('\0')}\0`) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/**
 * processesRunning, looked at every 20 ms until one shows or `ms` pass: a
 * command is reported started (or holding its output) before its process has
 * surely exec'd, and on a loaded machine /proc may still show node's command
 * line there, or nothing.
 */
export async function processesShown(argv: string[], ms = 10_000): Promise<number[]> {
  const end = Date.now() + ms;
  for (;;) {
    const pids = processesRunning(argv);
    if (pids.length > 0 || Date.now() >= end) return pids;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** True while the process exists and is not a zombie (a zombie is dead: it only waits to be reaped). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Resolves once the process is gone, failing after `ms`. A killed process
 * closes its pipes a moment before the kernel marks it dead, so "its output
 * ended" does not yet mean "it is gone"; there is no event for the latter.
 */
export async function gone(pid: number, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (processAlive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** Fails the test after `ms` instead of hanging. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
    }),
  ]);
}
