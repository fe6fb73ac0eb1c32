/**
 * `herald start` as a real child process: first start generates secrets and
 * says where; the other commands find the server and its secrets through
 * the same data dir; SIGTERM closes every tab with the close frame and
 * exits 0; a bad config value exits 2 naming the key.
 */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { TestTab } from './helpers/ws-client.js';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';

describe('herald start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-start-'));
  const dataDir = join(dir, 'data');
  let child: ChildProcessWithoutNullStreams | undefined;
  let stdout: LineReader;
  let stderr: LineReader;
  let url = '';

  before(async () => {
    child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'info', '--set', 'heartbeatMs=60000']);
    stdout = new LineReader(child.stdout);
    stderr = new LineReader(child.stderr);
    const line = await stdout.next((l) => l.includes('Herald is listening'));
    url = (JSON.parse(line) as { http: string }).http;
    await stderr.next((l) => l.includes('herald send'));
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('first start: secrets generated owner-only, their place printed but never the secrets; logs are JSON lines', () => {
    const file = join(dataDir, 'secrets.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const secrets = JSON.parse(readFileSync(file, 'utf8')) as { secret: string; apiToken: string };
    assert.match(stderr.text(), new RegExp(`generated .* in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    const everything = stdout.text() + stderr.text();
    assert.ok(!everything.includes(secrets.secret), 'the signing secret must not be printed');
    assert.ok(!everything.includes(secrets.apiToken), 'the API token must not be printed');
    for (const line of stdout.lines) assert.doesNotThrow(() => JSON.parse(line), `not a JSON line: ${line}`);
  });

  test('token, send, online, ping, status find the server through the data dir', async () => {
    const common = ['--data-dir', dataDir, '--url', url];
    const token = await runCli(['token', '--aid', '1', '--ttl', '1h', '--data-dir', dataDir]);
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'only the token, on one line');
    const tab = await TestTab.open(`${url.replace('http', 'ws')}/ws/admin`, { query: { token: token.stdout.trim() } });
    await tab.nextOfType('WELCOME');

    const sent = await runCli(['send', '--aid', '1', '--title', 'Тест', '--text', 'Just<br/>some<br/>text', ...common]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(sent.stdout, /admin 1: delivered to 1 tab; queued/);
    const got = await tab.nextOfType('MESSAGE');
    assert.deepEqual([got.TITLE, got.TEXT], ['Тест', 'Just<br/>some<br/>text']);

    const [online, ping, status] = await Promise.all([
      runCli(['online', ...common]), runCli(['ping', ...common]), runCli(['status', '--json', ...common]),
    ]);
    assert.equal(online.code, 0, online.stderr);
    assert.equal(online.stdout, '1\n');
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, /^pong from Herald \S+ at http/);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as { connections: { admin: number } }).connections.admin, 1);
    tab.close();
    await tab.closed;
  });

  test('SIGTERM: the tab gets the close frame and the close code, and the process exits 0', async () => {
    const token = await runCli(['token', '--aid', '2', '--data-dir', dataDir]);
    const tab = await TestTab.open(`${url.replace('http', 'ws')}/ws/admin`, { query: { token: token.stdout.trim() } });
    await tab.nextOfType('WELCOME');
    child!.kill('SIGTERM');
    const notice = await tab.nextOfType('close');
    assert.equal(notice.REASON, 'server shutdown');
    const closed = await tab.closed;
    assert.equal(closed.code, 1001);
    assert.deepEqual(await exited(child!), { code: 0, signal: null });
    await stdout.next((l) => l.includes('stopped'));
  });

  test('a second start finds its secrets and prints no first-start hint', async () => {
    const again = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy']);
    const out = new LineReader(again.stdout);
    const err = new LineReader(again.stderr);
    try {
      await out.next((l) => l.includes('Herald is listening'));
      again.kill('SIGINT');
      assert.deepEqual(await exited(again), { code: 0, signal: null });
      assert.ok(!err.text().includes('generated'), err.text());
    } finally {
      if (again.exitCode === null && again.signalCode === null) again.kill('SIGKILL');
    }
  });

  test('an API token from the environment: the hint names only the generated secret, and no export of the file\'s empty token', async () => {
    const ownDir = join(dir, 'data-env-token');
    const again = spawnCli(['start', '--data-dir', ownDir, '--port', '0', '--no-legacy'], { env: { HERALD_API_TOKEN: 'api-token-from-the-environment-0123' } });
    const out = new LineReader(again.stdout);
    const err = new LineReader(again.stderr);
    try {
      await out.next((l) => l.includes('Herald is listening'));
      await err.next((l) => l.includes('herald send'));
      await err.next((l) => l.includes('API token'));
      assert.match(err.text(), /Herald generated its token-signing secret in /);
      assert.doesNotMatch(err.text(), /secret and API token|export HERALD_API_TOKEN/);
      assert.match(err.text(), /Your backend uses the API token you configured/);
      assert.equal((JSON.parse(readFileSync(join(ownDir, 'secrets.json'), 'utf8')) as { apiToken: string }).apiToken, '');
      again.kill('SIGINT');
      assert.deepEqual(await exited(again), { code: 0, signal: null });
    } finally {
      if (again.exitCode === null && again.signalCode === null) again.kill('SIGKILL');
    }
  });

  test('a signal while Herald is starting is held, not fatal: the start ends as it would, then Herald stops', async () => {
    // A second Herald on a running one's data dir: its start waits for the store and then fails
    // ("in use"). The unknown variable's warning is logged just before the store is opened.
    const shared = join(dir, 'shared');
    const first = spawnCli(['start', '--data-dir', shared, '--port', '0', '--no-legacy']);
    await new LineReader(first.stdout).next((l) => l.includes('Herald is listening'));
    const again = spawnCli(['start', '--data-dir', shared, '--port', '0', '--no-legacy'], { env: { HERALD_NOT_AN_OPTION: '1' } });
    const out = new LineReader(again.stdout);
    try {
      await out.next((l) => l.includes('is not an option'));
      again.kill('SIGTERM');
      // Ended by the signal itself before (code null, signal SIGTERM): no close, the store's lock left behind.
      assert.deepEqual(await exited(again), { code: 1, signal: null });
      assert.match(out.text(), /signal while starting: shutting down once started/);
    } finally {
      for (const c of [again, first]) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await exited(first);
    }
  });
});

describe('herald start with a bad configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-badconf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a bad environment value exits 2 naming the key and what was expected', async () => {
    const r = await runCli(['start', '--data-dir', dir], { env: { HERALD_PORT: 'abc' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /option "port" \(environment HERALD_PORT\).*expected an integer/);
  });

  test('a bad flag value exits 2 naming the key', async () => {
    const r = await runCli(['start', '--data-dir', dir, '--port', '70000']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /option "port" \(command line\)/);
  });

  test('a bad config file value, an unknown key, a missing file: exit 2 naming them', async () => {
    const badValue = join(dir, 'herald.json');
    writeFileSync(badValue, JSON.stringify({ heartbeatMs: 'soon' }));
    const unknownKey = join(dir, 'herald-unknown.json');
    writeFileSync(unknownKey, JSON.stringify({ prot: 1 }));
    const [value, unknown, missing] = await Promise.all([
      runCli(['start', '--config', badValue, '--data-dir', dir]),
      runCli(['start', '--data-dir', dir], { env: { HERALD_CONFIG: unknownKey } }),
      runCli(['start', '--config', join(dir, 'missing.json')]),
    ]);
    assert.equal(value.code, 2);
    assert.match(value.stderr, /option "heartbeatMs" \(config file .*herald\.json\)/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown option "prot"/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read config file/);
  });

  test('a bad allowedOrigins entry exits 2 naming the option, without a stack trace', async () => {
    const r = await runCli(['start', '--data-dir', dir, '--port', '0', '--no-legacy', '--set', 'allowedOrigins=panel.example.net']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'herald: invalid configuration: option "allowedOrigins": "panel.example.net" is not an origin like https://panel.example.net or https://*.example.net (set on the command line)\n');
  });

  test('a store locked by a running Herald: exit 1 with one line saying so, no stack trace', async () => {
    const own = join(dir, 'locked');
    const first = spawnCli(['start', '--data-dir', own, '--port', '0', '--no-legacy', '--log-level', 'info']);
    try {
      await new LineReader(first.stdout).next((l) => l.includes('Herald is listening'));
      const r = await runCli(['start', '--data-dir', own, '--port', '0', '--no-legacy']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^herald: cannot start: store .*herald\.sqlite is in use by another process\n$/);
    } finally {
      first.kill('SIGKILL');
      await exited(first);
    }
  });

  test('a host this machine does not have: exit 1, "cannot listen", no stack trace', async () => {
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): no interface here has it, so nothing is ever sent to it.
    const r = await runCli(['start', '--data-dir', dir, '--host', '192.0.2.1', '--port', '0', '--no-legacy']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^herald: cannot listen: listen EADDRNOTAVAIL\S* .*\n$/);
  });

  test('a port in use exits 1 with a clear message', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((busy.address() as { port: number }).port);
      const r = await runCli(['start', '--data-dir', dir, '--port', port, '--no-legacy']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot listen: .*EADDRINUSE/);
    } finally {
      busy.close();
    }
  });
});
