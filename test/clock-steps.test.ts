/**
 * A step of the wall clock (an NTP step, a VM resumed) must not change a
 * duration, a window or a deadline: they are measured on the monotonic clock
 * (performance.now), and Date.now only tells the timestamps that are stored
 * or shown. Each test runs the real `herald start` (dist/) with a preload
 * that shifts its Date (test/helpers/clock-shift.mjs) and steps it while
 * Herald runs. And the status answers while the process is out of file
 * descriptors (it read its RSS from /proc, and answered 500).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { skipUnlessCI } from './helpers/capability.js';
import { cleanEnv } from './helpers/cli.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PRELOAD = fileURLToPath(new URL('./helpers/clock-shift.mjs', import.meta.url));
const API = 'clock-steps-api-token-0123456789';
const SECRET = 'clock-steps-secret-0123456789abcdefghijklmnop';
const HOUR = 3_600_000;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Started {
  child: ChildProcess;
  port: number;
  logs: Array<Record<string, unknown>>;
  dir: string;
  /** Steps the child's wall clock to `ms` from the real one (and waits for it to read it). */
  shift(ms: number): Promise<void>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<number | null>;
}

/** `herald start` with its Date shifted by the preload, on `port` (its legacy door on port + 1). */
async function start(port: number, sets: string[] = [], env: Record<string, string> = {}, prefix: string[] = []): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-clock-'));
  dirs.push(dir);
  const shiftFile = join(dir, 'shift');
  writeFileSync(shiftFile, '0');
  const args = ['--import', PRELOAD, join(ROOT, 'dist/cli/main.js'), 'start', '--port', String(port), '--legacy-port', String(port + 1), '--store', 'memory', '--log-level', 'info'];
  for (const s of sets) args.push('--set', s);
  const cmd = prefix.length > 0 ? prefix[0]! : process.execPath;
  const child = spawn(cmd, prefix.length > 0 ? [...prefix.slice(1), process.execPath, ...args] : args, {
    cwd: ROOT, env: cleanEnv({ HERALD_DATA_DIR: dir, HERALD_SECRET: SECRET, HERALD_API_TOKEN: API, CLOCK_SHIFT_FILE: shiftFile, ...env }), stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { logs.push(JSON.parse(line)); } catch { logs.push({ raw: line }); }
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${API}`, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: r.status, body: await r.json().catch(() => undefined) };
  };
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`herald start exited ${child.exitCode}: ${stderr}`);
    try { if ((await fetch(`${base}/healthz`)).ok) break; } catch { /* not yet */ }
    if (performance.now() > deadline) throw new Error(`herald start not ready: ${stderr}`);
    await delay(50);
  }
  return {
    child, port, logs, dir, api,
    async shift(ms) { writeFileSync(shiftFile, String(ms)); await delay(100); },
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      const gone = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      child.kill('SIGTERM');
      return gone;
    },
  };
}

async function token(h: Started, id: number): Promise<string> {
  const r = await h.api('POST', '/api/v1/tokens', { kind: 'admin', id, ttl: 7200 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.token as string;
}

interface Tab { ws: WebSocket; frames: any[]; closed?: { code: number; reason: string } }

function tab(h: Started, tok: string): Promise<Tab> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/ws/admin?token=${encodeURIComponent(tok)}`);
    const t: Tab = { ws, frames: [] };
    ws.on('message', (d) => {
      const f = JSON.parse(String(d));
      t.frames.push(f);
      if (f.TYPE === 'PING') ws.send('{"TYPE":"PONG"}');
      if (f.TYPE === 'WELCOME') resolve(t);
    });
    ws.on('close', (code, reason) => { t.closed = { code, reason: String(reason) }; });
    ws.on('error', reject);
  });
}

/** A WebSocket handshake on /ws/admin with `cookie`: its HTTP status (101 when admitted). */
function handshake(port: number, cookie?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/ws/admin', headers: { ...(cookie ? { cookie } : {}), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode!); });
    req.on('upgrade', (_res, sock) => { sock.destroy(); resolve(101); });
    req.on('error', reject);
  });
}

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await delay(20);
  }
}

describe('a step of the wall clock moves no duration, window or deadline', { timeout: 120_000 }, () => {
  test('a step back: the sql/http resolver cache still expires after authCacheMs (a logged-out session was admitted for the step)', async () => {
    const sessions = new Map<string, number>();
    const panel = http.createServer((req, res) => {
      const id = sessions.get(/sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '');
      if (id) { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ kind: 'admin', id })); } else { res.writeHead(401); res.end(); }
    });
    await new Promise<void>((r) => panel.listen(0, '127.0.0.1', r));
    const panelPort = (panel.address() as net.AddressInfo).port;
    const h = await start(28611, ['authResolver=http', `httpResolverUrl=http://127.0.0.1:${panelPort}/check`, 'authCacheMs=300', 'authNegativeCacheMs=100']);
    try {
      assert.equal(await handshake(h.port, 'sid=fresh'), 401, 'not logged in yet: refused (and the refusal cached)');
      sessions.set('old', 1);
      assert.equal(await handshake(h.port, 'sid=old'), 101);
      await h.shift(-HOUR);
      sessions.set('fresh', 2);
      sessions.delete('old');
      await delay(600);
      assert.equal(await handshake(h.port, 'sid=old'), 401, 'logged out: refused once authCacheMs has passed');
      assert.equal(await handshake(h.port, 'sid=fresh'), 101, 'logged in: admitted once authNegativeCacheMs has passed');
    } finally {
      await h.stop();
      panel.close();
    }
  });

  test('a step forward: a live-only send\'s idempotency key is still remembered (a retry was delivered twice)', async () => {
    const h = await start(28621);
    try {
      const t = await tab(h, await token(h, 1));
      const send = () => h.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 't', TEXT: 'once' }, ttl: 0, idempotencyKey: 'live-A' });
      assert.equal((await send()).body.results[0].delivered, 1);
      await h.shift(10 * 60_000); // past the keys' 5-minute window, on the wall clock
      const again = await send();
      assert.equal(again.body.results[0].duplicate, true, JSON.stringify(again.body));
      await delay(200);
      assert.deepEqual(t.frames.filter((f) => f.TYPE === 'MESSAGE').map((f) => f.TEXT), ['once']);
      t.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('a step back: a tab\'s 10 s frame window and a bounded log\'s window still roll over; the uptime stays positive', { timeout: 60_000 }, async () => {
    const h = await start(28631);
    try {
      const t = await tab(h, await token(h, 1));
      t.ws.send('{"TYPE":"PING"}'); // its window starts before the step
      await delay(100);
      await h.shift(-HOUR);
      // Refused handshakes (no credential): 20 lines a window, then counted.
      for (let i = 0; i < 25; i++) assert.equal(await handshake(h.port), 401);
      const refusalLines = () => h.logs.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('handshake refused')).length;
      await until(() => refusalLines() === 20, 'the first 20 refusals logged');
      // 80 frames a second for 13 s: 8% of maxFramesPer10s (1000) a window; a frozen window passed 1000 after 12.5 s.
      const t0 = performance.now();
      while (performance.now() - t0 < 13_000 && !t.closed) {
        for (let i = 0; i < 8; i++) t.ws.send('{"TYPE":"PING"}');
        await delay(100);
      }
      assert.equal(t.closed, undefined, `closed ${JSON.stringify(t.closed)}`);
      // The refusal log's window (10 s) has ended: a new refusal is logged again.
      assert.equal(await handshake(h.port), 401);
      await until(() => refusalLines() === 21, 'a refusal in the next window is logged');
      const status = await h.api('GET', '/api/v1/status');
      assert.ok(status.body.uptimeMs > 10_000, `uptimeMs ${status.body.uptimeMs}`);
      t.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('a step back: a running command\'s COMMAND_PROGRESS goes on, and its DURATION_MS is its real duration', async () => {
    const scripts = mkdtempSync(join(tmpdir(), 'herald-clock-cmd-'));
    dirs.push(scripts);
    const script = join(scripts, 'ticker.sh');
    writeFileSync(script, '#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.2; done\n');
    chmodSync(script, 0o755);
    const h = await start(28641, ['commandsEnabled=true', `commandsAllow=${script}`, 'commandsProgressMs=100']);
    try {
      const t = await tab(h, await token(h, 1));
      const r = await h.api('POST', '/api/v1/commands', { aid: 1, program: script, args: [] });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      await delay(300);
      await h.shift(-HOUR);
      const progressBefore = t.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS').length;
      const final = () => t.frames.find((f) => f.COMMAND_ID !== undefined && f.TYPE !== 'COMMAND_PROGRESS' && f.COMMAND?.STATE !== undefined && f.COMMAND.STATE !== 'running');
      await until(() => final() !== undefined, 'the final notification', 10_000);
      const progressAfter = t.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS').length - progressBefore;
      assert.ok(progressAfter >= 3, `COMMAND_PROGRESS frames after the step: ${progressAfter}`);
      const done = await h.api('GET', `/api/v1/commands/${r.body.id ?? r.body.COMMAND_ID}`);
      const duration = done.body.DURATION_MS as number;
      assert.ok(duration >= 1400 && duration < 10_000, `DURATION_MS ${duration}`);
      t.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('a step back during the shutdown: the grace still ends on time, and Herald exits 0 (it exited 1 with its store not closed)', async () => {
    const h = await start(28651, ['shutdownGraceMs=2000'], { CLOCK_SHIFT_ON_SIGTERM: String(-HOUR) });
    const t = await tab(h, await token(h, 1));
    // A request that never finishes its headers keeps the HTTP server open until the grace ends.
    const slow = net.connect(h.port, '127.0.0.1', () => slow.write('GET /api/v1/ping HTTP/1.1\r\nHost: x\r\n'));
    slow.on('error', () => {});
    await delay(200);
    const t0 = performance.now();
    const code = await h.stop();
    slow.destroy();
    t.ws.terminate();
    assert.equal(code, 0, `exit ${code}: ${JSON.stringify(h.logs.filter((l) => (l.level as number) >= 40))}`);
    assert.ok(performance.now() - t0 < 6000, `exited after ${performance.now() - t0} ms`);
  });
});

describe('the status while the process is out of file descriptors', { timeout: 60_000 }, () => {
  const prlimit = spawnSync('prlimit', ['--version']).status === 0;
  test('GET /api/v1/status answers 200, with memory.rss null when it cannot be read', { skip: skipUnlessCI(prlimit ? false : 'prlimit is not installed') }, async () => {
    const h = await start(28661, [], {}, ['prlimit', '--nofile=256:256']);
    // One keep-alive connection, opened before the descriptors run out.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) => new Promise<{ status: number; body: any }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: h.port, path, agent, headers: { authorization: `Bearer ${API}` } }, (res) => {
        let b = '';
        res.setEncoding('utf8').on('data', (d: string) => { b += d; }).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(b) }));
      }).on('error', reject);
    });
    const conns: net.Socket[] = [];
    try {
      assert.equal((await get('/api/v1/status')).status, 200);
      // Fill its descriptors with connections to its legacy door.
      for (let i = 0; i < 300; i++) {
        const s = net.connect(h.port + 1, '127.0.0.1');
        s.on('error', () => {});
        conns.push(s);
        await new Promise((r) => { s.once('connect', r); s.once('error', r); });
      }
      await delay(300);
      const status = await get('/api/v1/status');
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.equal(typeof status.body.uptimeMs, 'number');
      assert.ok(status.body.memory.rss === null || typeof status.body.memory.rss === 'number');
    } finally {
      for (const s of conns) s.destroy();
      agent.destroy();
      await h.stop();
    }
  });
});
