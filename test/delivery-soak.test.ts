/**
 * The soak: tens of thousands of notifications to several admins while their
 * tabs drop and reconnect at random and the server process is killed with
 * SIGKILL and started again on the same data dir and port at random moments.
 * At the end every tab must have every notification the API acknowledged as
 * stored, exactly once and in order, with no RESET (nothing was lost).
 *
 * Senders retry a failed send (server down) with the same idempotency key,
 * as a careful backend would. Tabs keep their cursors in memory, as the
 * browser library does, and resume with them.
 *
 * Size and seed: HERALD_SOAK_N (default 20000), HERALD_SOAK_SEED (printed).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import WebSocket from 'ws';
import { mintToken } from '../src/server/auth/token-resolver.js';
import { restartablePort } from './helpers/ports.js';
import { bundled } from './helpers/bundle.js';

const N = Number(process.env.HERALD_SOAK_N ?? 20_000);
const SEED = Number(process.env.HERALD_SOAK_SEED ?? Date.now() % 1_000_000);
const ADMINS = 6;
const TABS_PER_ADMIN = 2;
const BROADCAST_EVERY = 20; // 1 in 20 notifications goes to every admin
const KILLS = Number(process.env.HERALD_SOAK_KILLS ?? 4);
const LOOPS_PER_STREAM = 2;
const root = join(fileURLToPath(import.meta.url), '..', '..');

/** mulberry32: a small seeded PRNG, so a failing run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = prng(SEED);
const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo));
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The server as a real child process on a fixed data dir and port. */
class ServerProcess {
  child: ChildProcess | undefined;
  kills = 0;
  starts = 0;
  constructor(readonly env: NodeJS.ProcessEnv) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, [bundled('test/delivery-soak-server.ts')], {
      cwd: root, env: this.env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start within 20 s: ${stderr}`)), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('READY ')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`server exited (${code ?? signal}) before it was ready: ${stderr}`));
      });
    });
    this.starts++;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    if (signal === 'SIGKILL') this.kills++;
  }
}

interface Cursor { seq: number; epoch: string }
interface Seen { seq: number; n: number }

/** A tab as the browser library keeps it: cursors in memory, resume on reconnect, cumulative acks, duplicates dropped. */
class SoakTab {
  own: Cursor | undefined;
  bc: Cursor | undefined;
  readonly seen: { own: Seen[]; bc: Seen[] } = { own: [], bc: [] };
  readonly anomalies: string[] = [];
  duplicates = 0;
  connects = 0;
  ws: WebSocket | undefined;
  #stopped = false;
  #acked = { own: 0, bc: 0 };
  #ackTimer: NodeJS.Timeout;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #welcomed: (() => void) | undefined;

  constructor(readonly name: string, readonly aid: number, readonly wsUrl: string, readonly secret: string) {
    this.#ackTimer = setInterval(() => this.#ack(), 100);
  }

  /** Connects; resolves on the first WELCOME. */
  start(): Promise<void> {
    const welcomed = new Promise<void>((r) => (this.#welcomed = r));
    void this.#connect();
    return welcomed;
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    const url = new URL(`${this.wsUrl}/ws/admin`);
    url.searchParams.set('token', await mintToken(this.secret, { kind: 'admin', id: this.aid }, 3_600_000));
    if (this.own) {
      url.searchParams.set('seq', String(this.own.seq));
      url.searchParams.set('epoch', this.own.epoch);
    }
    if (this.bc) {
      url.searchParams.set('bseq', String(this.bc.seq));
      url.searchParams.set('bepoch', this.bc.epoch);
    }
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.on('message', (data) => this.#onFrame(ws, data.toString()));
    ws.on('error', () => {});
    ws.on('close', () => {
      if (this.ws === ws) this.ws = undefined;
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    if (this.#stopped || this.#reconnectTimer) return;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#connect();
    }, between(5, 150));
  }

  #onFrame(ws: WebSocket, text: string): void {
    const f = JSON.parse(text) as Record<string, any>;
    switch (f.TYPE) {
      case 'WELCOME':
        this.connects++;
        // The first connection happens before any send: an empty stream, SEQ 0.
        this.own ??= { seq: 0, epoch: f.EPOCH };
        this.bc ??= { seq: 0, epoch: f.BROADCAST.EPOCH };
        if (f.EPOCH !== this.own.epoch || f.BROADCAST.EPOCH !== this.bc.epoch) this.anomalies.push(`${this.name}: epoch changed in WELCOME`);
        this.#welcomed?.();
        this.#welcomed = undefined;
        return;
      case 'PING':
        ws.send('{"TYPE":"PONG"}');
        return;
      case 'RESET':
        this.anomalies.push(`${this.name}: RESET ${text}`);
        return;
      case 'SOAK': {
        const which = f.STREAM === '*' ? 'bc' : 'own';
        const cursor = this[which];
        if (!cursor) {
          this.anomalies.push(`${this.name}: notification before WELCOME`);
          return;
        }
        if (f.EPOCH !== cursor.epoch) this.anomalies.push(`${this.name}: ${which} epoch ${f.EPOCH} ≠ ${cursor.epoch}`);
        if (f.SEQ <= cursor.seq) {
          this.duplicates++;
          return;
        }
        if (f.SEQ !== cursor.seq + 1) this.anomalies.push(`${this.name}: ${which} gap after ${cursor.seq}: got ${f.SEQ}`);
        cursor.seq = f.SEQ;
        this.seen[which].push({ seq: f.SEQ, n: f.N });
        return;
      }
      default:
        return;
    }
  }

  #ack(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (this.own && this.own.seq > this.#acked.own) {
      ws.send(JSON.stringify({ TYPE: 'RESPONSE', SEQ: this.own.seq }));
      this.#acked.own = this.own.seq;
    }
    if (this.bc && this.bc.seq > this.#acked.bc) {
      ws.send(JSON.stringify({ TYPE: 'RESPONSE', SEQ: this.bc.seq, STREAM: '*' }));
      this.#acked.bc = this.bc.seq;
    }
  }

  /** Drops the connection abruptly (as a network cut would); it reconnects by itself. */
  drop(): void {
    this.ws?.terminate();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#ackTimer);
    clearTimeout(this.#reconnectTimer);
    this.ws?.terminate();
  }
}

interface Stored { stream: string; seq: number; n: number }

// node:http with keep-alive: several times faster than fetch here, so the soak spends its time on Herald.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
function post(url: string, apiToken: string, body: string): Promise<{ status: number; json: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, any> });
        } catch (e) {
          reject(e as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

test(`soak: ${N} notifications, tabs dropping, server SIGKILLed and restarted — every tab gets each exactly once, in order`, { timeout: 180_000 }, async () => {
  const t0 = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-soak-'));
  // Restarted on the same port while tabs and senders retry: below the ephemeral range (helpers/ports.ts).
  const port = await restartablePort();
  const secret = randomBytes(32).toString('base64url');
  const apiToken = randomBytes(24).toString('base64url');
  const server = new ServerProcess({
    ...process.env,
    HERALD_HOST: '127.0.0.1', HERALD_PORT: String(port), HERALD_DATA_DIR: dataDir, HERALD_SECRET: secret, HERALD_API_TOKEN: apiToken,
    HERALD_LEGACY_ENABLED: 'false', HERALD_DEMO: 'false', HERALD_LOG_LEVEL: 'error', HERALD_LOG_PRETTY: 'false',
    HERALD_STORE: 'sqlite', HERALD_MAX_PER_STREAM: String(N * 2),
  });
  const tabs: SoakTab[] = [];
  let chaos = true;
  let restarting: Promise<void> = Promise.resolve();
  try {
    await server.start();
    const wsUrl = `ws://127.0.0.1:${port}`;
    for (let a = 1; a <= ADMINS; a++) {
      for (let t = 0; t < TABS_PER_ADMIN; t++) tabs.push(new SoakTab(`admin ${a} tab ${t}`, a, wsUrl, secret));
    }
    await Promise.all(tabs.map((t) => t.start()));

    const stored: Stored[] = [];
    let retries = 0;
    // Chaos: tabs drop at random; the server is killed and restarted at random.
    const dropper = (async () => {
      while (chaos) {
        await delay(between(20, 120));
        tabs[between(0, tabs.length)]!.drop();
      }
    })();
    // Kills at random points of the run (by progress, so their number does not depend on this machine's speed).
    const killAt = Array.from({ length: KILLS }, () => between(Math.floor(N * 0.05), Math.floor(N * 0.95))).sort((a, b) => a - b);
    const killer = (async () => {
      for (const at of killAt) {
        while (chaos && stored.length < at) await delay(10);
        if (!chaos) break;
        await delay(between(0, 50));
        await server.kill('SIGKILL');
        restarting = (async () => {
          await delay(between(0, 300));
          await server.start();
        })();
        await restarting;
      }
    })();

    // Senders: one sequential loop per admin's own stream, one for broadcasts.
    const sendOne = async (n: number, to: unknown): Promise<number> => {
      const body = JSON.stringify({ to, message: { TYPE: 'SOAK', N: n }, idempotencyKey: `soak-${n}` });
      for (;;) {
        try {
          const res = await post(`http://127.0.0.1:${port}/api/v1/send`, apiToken, body);
          const json = res.json;
          if (res.status >= 500) throw new Error(`status ${res.status}`);
          assert.equal(res.status, 200, JSON.stringify(json));
          const entry = 'results' in json
            ? { stream: `admin:${json.results[0].id}`, seq: json.results[0].seq as number, n }
            : { stream: 'admin:*', seq: json.seq as number, n };
          stored.push(entry);
          return entry.seq;
        } catch (e) {
          // Also when the test ended early (a failed restart): no sender keeps retrying after it.
          if (e instanceof assert.AssertionError || !chaos) throw e;
          retries++;
          await delay(between(10, 50));
        }
      }
    };
    // LOOPS_PER_STREAM sequential senders per stream: within one sender, later sends must get later SEQs.
    const plan: Array<Array<{ n: number; to: unknown }>> = Array.from({ length: (ADMINS + 1) * LOOPS_PER_STREAM }, () => []);
    for (let n = 1; n <= N; n++) {
      const loop = between(0, LOOPS_PER_STREAM);
      if (n % BROADCAST_EVERY === 0) plan[ADMINS * LOOPS_PER_STREAM + loop]!.push({ n, to: { all: 'admins' } });
      else {
        const aid = between(1, ADMINS + 1);
        plan[(aid - 1) * LOOPS_PER_STREAM + loop]!.push({ n, to: { aid } });
      }
    }
    const tSend = Date.now();
    const outOfOrder: string[] = [];
    // The senders retry while the server is down; a restart that failed ends the test with its error, not a timeout.
    const killerFailed = killer.then(() => new Promise<never>(() => {}));
    await Promise.race([killerFailed, Promise.all(plan.map(async (list, i) => {
      let last = 0;
      for (const { n, to } of list) {
        const seq = await sendOne(n, to);
        if (seq <= last) outOfOrder.push(`sender ${i}: SEQ ${seq} after ${last}`);
        last = seq;
      }
    }))]);
    const sendMs = Date.now() - tSend;
    chaos = false;
    await Promise.all([dropper, killer]);
    await restarting;

    // Every stream's stored history: SEQ → notification, consistent and gap-free.
    const expected = new Map<string, Seen[]>();
    for (const s of stored) {
      const list = expected.get(s.stream) ?? [];
      list.push({ seq: s.seq, n: s.n });
      expected.set(s.stream, list);
    }
    for (const [stream, list] of expected) {
      list.sort((a, b) => a.seq - b.seq);
      assert.deepEqual(list.map((x) => x.seq), list.map((_, i) => i + 1), `${stream}: SEQs are 1..n without gaps or repeats`);
    }

    // Wait (bounded) until every tab caught up, then compare.
    const caughtUp = () => tabs.every((t) => t.own!.seq === (expected.get(`admin:${t.aid}`)?.length ?? 0) && t.bc!.seq === (expected.get('admin:*')?.length ?? 0));
    const deadline = Date.now() + 30_000;
    while (!caughtUp() && Date.now() < deadline) await delay(50);

    const problems: string[] = [];
    for (const t of tabs) {
      problems.push(...t.anomalies);
      const own = expected.get(`admin:${t.aid}`) ?? [];
      const bc = expected.get('admin:*') ?? [];
      try {
        assert.deepEqual(t.seen.own, own, `${t.name}: own stream`);
        assert.deepEqual(t.seen.bc, bc, `${t.name}: broadcast stream`);
      } catch (e) {
        problems.push(`${t.name}: got own ${t.seen.own.length}/${own.length}, broadcast ${t.seen.bc.length}/${bc.length}; ${(e as Error).message.slice(0, 300)}`);
      }
    }
    const connects = tabs.reduce((n, t) => n + t.connects, 0);
    const duplicates = tabs.reduce((n, t) => n + t.duplicates, 0);
    console.log(`# soak seed=${SEED} n=${N} stored=${stored.length} kills=${server.kills} starts=${server.starts} tab connects=${connects} ` +
      `send retries=${retries} duplicates dropped by tabs=${duplicates} sending ${sendMs} ms, total ${Date.now() - t0} ms`);
    assert.deepEqual(outOfOrder, [], 'one sender\'s sends are stored in the order sent');
    assert.deepEqual(problems, [], `seed ${SEED}`);
    assert.equal(stored.length, N);
    assert.equal(server.kills, KILLS, 'the server was killed as planned');
    assert.ok(connects > tabs.length * 3, 'tabs reconnected many times');
  } finally {
    chaos = false;
    for (const t of tabs) t.stop();
    await restarting.catch(() => {});
    await server.kill('SIGTERM');
    agent.destroy();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
