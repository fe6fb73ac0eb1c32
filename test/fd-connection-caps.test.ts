/**
 * The descriptors that are not the tabs' under a low open-file limit: the
 * legacy door and the HTTP listeners are capped from the same limit as
 * maxTabs, keeping a reserve for the store, the audit file and the commands.
 * Without the caps, idle legacy and HTTP connections took every descriptor:
 * commands failed with "spawn EMFILE", the store's and the audit's writes
 * failed, and connections were dropped without a word in the log. A real
 * `herald start` under `prlimit --nofile=256:256`, flooded by real sockets.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connectionLimits } from '../src/server/file-limit.js';
import { loadOptions } from '../src/server/options.js';
import { capturedLog } from './helpers/captured-log.js';
import { cleanEnv, cliBundle } from './helpers/cli.js';
import { hangingPanel } from './helpers/hanging-panel.js';

// util-linux's prlimit is part of every Debian system; its absence is a broken machine, not a reason to skip.
const PRLIMIT = '/usr/bin/prlimit';
const LIMIT = 256;
/** Connections each flood opens: more than the limit leaves for either door. */
const FLOOD = 150;

type Line = Record<string, unknown>;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await delay(25);
  }
}

/** Opens `n` connections to `port` that send nothing; each is counted as connected, then as closed when the server closes it. */
async function flood(port: number, n: number): Promise<{ sockets: Socket[]; connected: () => number; closed: () => number }> {
  const sockets: Socket[] = [];
  let connected = 0;
  let closed = 0;
  for (let i = 0; i < n; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => closed++);
    await new Promise<void>((resolve) => {
      s.once('connect', () => { connected++; resolve(); });
      s.once('close', () => resolve());
    });
    sockets.push(s);
  }
  return { sockets, connected: () => connected, closed: () => closed };
}

describe('legacy and HTTP connections under a low open-file limit (herald start under prlimit --nofile=256)', () => {
  let child: ChildProcessWithoutNullStreams | undefined;
  let dataDir: string;
  const sockets: Socket[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('idle connections past what the limit leaves are closed and logged, and commands, the store and the audit file keep their descriptors', async () => {
    assert.ok(existsSync(PRLIMIT), `${PRLIMIT} is missing (apt-get install util-linux)`);
    dataDir = mkdtempSync(join(tmpdir(), 'herald-fd-caps-'));
    const apiToken = randomBytes(24).toString('base64url');
    const env = cleanEnv({ HERALD_SECRET: randomBytes(32).toString('base64url'), HERALD_API_TOKEN: apiToken });
    child = spawn(PRLIMIT, [`--nofile=${LIMIT}:${LIMIT}`, process.execPath, cliBundle(), 'start', '--port', '0', '--data-dir', dataDir, '--store', 'sqlite',
      '--set', 'legacyPort=0', '--set', 'maxTabs=20', '--set', 'commandsEnabled=true', '--set', 'commandsAllow=["sleep"]', '--set', 'commandsPath=/usr/bin:/bin',
      '--set', 'logPretty=false'], { env, stdio: 'pipe' });
    const lines: Line[] = [];
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      const all = (rest + d).split('\n');
      rest = all.pop()!;
      for (const l of all) if (l.startsWith('{')) lines.push(JSON.parse(l) as Line);
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    await until(`Herald to listen (stderr: ${stderr})`, () => lines.some((l) => l.msg === 'Herald is listening'), 30_000);
    const listening = lines.find((l) => l.msg === 'Herald is listening')!;
    const httpPort = Number(new URL(listening.http as string).port);
    const legacyPort = (listening.legacy as { port: number }).port;
    const pid = child.pid!;
    const fds = () => readdirSync(`/proc/${pid}/fd`).length;

    // One keep-alive connection for the API, opened before the floods.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const api = (method: string, path: string, body?: unknown) => new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: httpPort, method, path, agent, headers: { authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    assert.equal((await api('GET', '/api/v1/ping')).status, 200);

    const legacy = await flood(legacyPort, FLOOD);
    sockets.push(...legacy.sockets);
    const http = await flood(httpPort, FLOOD);
    sockets.push(...http.sockets);
    // Every connection reached the server; then its descriptors settle (the closed ones are closed).
    await until('both floods to connect', () => legacy.connected() + legacy.closed() >= FLOOD && http.connected() + http.closed() >= FLOOD);
    let seen = -1;
    await until('the server\'s descriptors to settle', () => {
      const now = fds();
      const settled = now === seen;
      seen = now;
      return settled;
    });

    // The reserve: a command still runs (its pipes), and its end is written to the audit file.
    const started = await api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['0.1'] });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const id = started.body.id as string;
    let done: Record<string, unknown> = {};
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await delay(50)) {
      done = (await api('GET', `/api/v1/commands/${id}`)).body;
      if (done.state !== 'running' && done.state !== 'queued') break;
    }
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.ok(!lines.some((l) => typeof l.msg === 'string' && /audit file cannot be written|audit sink failed/.test(l.msg)), 'the audit file is written');
    assert.ok(fds() < LIMIT - 16, `descriptors are left: ${fds()} of ${LIMIT} open`);

    // What was capped is said, and at start why.
    const warned = lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('legacyMaxConnections (1024) is more than the open-file limit (256) leaves for the legacy door'));
    assert.ok(warned, 'the start says the legacy door is capped');
    const legacyCap = warned.maxConnections as number;
    const httpCap = warned.httpConnections as number;
    assert.ok(legacyCap < FLOOD && httpCap < FLOOD, JSON.stringify(warned));
    assert.equal(FLOOD - legacy.closed(), legacyCap, 'the legacy door holds what it is left, and closes the rest');
    assert.equal(FLOOD - http.closed() + 1, httpCap, 'the HTTP listener holds what it is left (with the API\'s connection), and closes the rest');
    assert.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('legacy connection refused: legacyMaxConnections reached')));
    assert.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('HTTP connection closed unanswered')));

    const refused = { legacy: legacy.closed(), http: http.closed() };

    // Released, new connections are taken again.
    for (const s of sockets.splice(0)) s.destroy();
    agent.destroy();
    await until('the flood\'s descriptors to be freed', () => fds() < LIMIT / 2);
    assert.equal((await api('GET', '/api/v1/ping')).status, 200, 'a new connection is answered');
    agent.destroy();

    // Every refusal is in the log by the time Herald has stopped: those past a window's lines
    // in the summary its shutdown writes (the floods took under the 10 s window).
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, `herald start exits 0 (stderr: ${stderr})`);
    const logged = (one: string, summary: string): number => lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(one)).length
      + lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(summary)).reduce((n, l) => n + (l.refused as number), 0);
    assert.equal(logged('legacy connection refused: legacyMaxConnections reached', 'legacy connections and requests refused and not logged one by one'), refused.legacy, 'legacy refusals logged');
    assert.equal(logged('HTTP connection closed unanswered', 'HTTP connections refused and not logged one by one'), refused.http, 'HTTP refusals logged');
  });
});

describe('the http resolver\'s connections to the panel under a low open-file limit', () => {
  const cleanup: Array<() => void> = [];
  after(() => { for (const c of cleanup.reverse()) c(); });

  test('a storm of handshakes whose look-ups hang at the panel leaves commands their descriptors', async () => {
    assert.ok(existsSync(PRLIMIT), `${PRLIMIT} is missing (apt-get install util-linux)`);
    // Every look-up is held, unanswered: a panel slowed down under the storm.
    const panel = await hangingPanel();
    panel.hang();
    cleanup.push(() => panel.close());
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-fd-http-resolver-'));
    cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const apiToken = randomBytes(24).toString('base64url');
    // 100 look-ups at once, each a connection to the panel: with 20 tabs, the HTTP listener was
    // left 176 connections, and 176 handshakes with their 100 look-ups took every descriptor.
    const child = spawn(PRLIMIT, [`--nofile=${LIMIT}:${LIMIT}`, process.execPath, cliBundle(), 'start', '--port', '0', '--no-legacy', '--data-dir', dataDir,
      '--set', 'maxTabs=20', '--set', 'authResolver=http', '--set', `httpResolverUrl=${panel.url}`, '--set', 'httpResolverConcurrency=100', '--set', 'httpResolverTimeoutMs=60000',
      '--set', 'commandsEnabled=true', '--set', 'commandsAllow=["sleep"]', '--set', 'commandsPath=/usr/bin:/bin', '--set', 'logPretty=false'],
    { env: cleanEnv({ HERALD_SECRET: randomBytes(32).toString('base64url'), HERALD_API_TOKEN: apiToken }), stdio: 'pipe' });
    cleanup.push(() => child.kill('SIGKILL'));
    const lines: Line[] = [];
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      const all = (rest + d).split('\n');
      rest = all.pop()!;
      for (const l of all) if (l.startsWith('{')) lines.push(JSON.parse(l) as Line);
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    await until(`Herald to listen (stderr: ${stderr})`, () => lines.some((l) => l.msg === 'Herald is listening'), 30_000);
    const port = Number(new URL(lines.find((l) => l.msg === 'Herald is listening')!.http as string).port);
    const pid = child.pid!;
    const fds = () => readdirSync(`/proc/${pid}/fd`).length;

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const api = (method: string, path: string, body?: unknown) => new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, agent, headers: { authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Record<string, unknown> }));
      });
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
    assert.equal((await api('GET', '/api/v1/ping')).status, 200);

    // Handshakes with sessions the panel has never heard of: each one a look-up of its own.
    const sockets: Socket[] = [];
    cleanup.push(() => { for (const s of sockets) s.destroy(); });
    for (let i = 0; i < FLOOD + 30; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      sockets.push(s);
      s.write(`GET /ws/admin HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nCookie: panel_session=s${i}\r\n\r\n`);
    }
    // As many as httpResolverConcurrency allows, or as the HTTP listener takes handshakes (75 of them now).
    await until('the look-ups to reach the panel', () => panel.held.length >= 50);
    let seen = -1;
    await until('the server\'s descriptors to settle', () => {
      const now = fds();
      const settled = now === seen;
      seen = now;
      return settled;
    });

    const started = await api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['0.1'] });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    let done: Record<string, unknown> = {};
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await delay(50)) {
      done = (await api('GET', `/api/v1/commands/${started.body.id as string}`)).body;
      if (done.state !== 'running' && done.state !== 'queued') break;
    }
    assert.equal(done.state, 'succeeded', `${fds()} of ${LIMIT} descriptors open: ${JSON.stringify(done)}`);
  });

  test('a start whose reserve does not fit beside the tabs says which options take it', () => {
    const options = loadOptions({ env: {}, overrides: { legacyEnabled: false, authResolver: 'http', httpResolverUrl: 'http://127.0.0.1:1/who', httpResolverConcurrency: 200 } });
    const over = capturedLog('warn');
    const caps = connectionLimits(options, 128, over.logger, LIMIT);
    assert.equal(caps?.reserve, 64 + 4 * 4 + 200, 'the reserve counts the look-ups at the panel');
    const warned = over.lines().find((l) => l.msg.includes('httpResolverConcurrency 200'));
    assert.ok(warned, JSON.stringify(over.lines()));
    assert.equal(warned.openFileLimit, LIMIT);
    // Within the limit (the default 16 look-ups at once), nothing is said.
    const within = capturedLog('warn');
    connectionLimits({ ...options, httpResolverConcurrency: 16 }, 128, within.logger, LIMIT);
    assert.deepEqual(within.lines(), []);
  });
});
