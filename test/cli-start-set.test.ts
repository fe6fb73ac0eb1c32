/**
 * `herald start --set key=value` as a real child process: a value is read
 * for the option it sets, so a numeric file name stays a string, and a list
 * option takes commas as its environment variable does. An option that
 * carries a secret is refused: a command line is every user's to read (ps).
 */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { TestTab } from './helpers/ws-client.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';

describe('herald start --set', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-set-'));
  const dataDir = join(dir, 'data');
  let child: ChildProcessWithoutNullStreams | undefined;
  let stderr: LineReader;
  let url = '';
  let legacyPort = 0;

  before(async () => {
    child = spawnCli([
      'start', '--data-dir', dataDir, '--port', '0', '--legacy-port', '0', '--log-level', 'info',
      '--set', 'sqliteFile=20261203',
      '--set', 'allowedOrigins=https://panel.example.net, https://admin.example.net',
      '--set', 'heartbeatMs=60000',
    ], { env: { HERALD_LEGACY_TOKEN: '20261203' } });
    const stdout = new LineReader(child.stdout);
    stderr = new LineReader(child.stderr);
    const exit = exited(child, 15000).then(({ code }) => { throw new Error(`herald start exited ${code}: ${stderr.text()}`); });
    const line = await Promise.race([stdout.next((l) => l.includes('Herald is listening')), exit]);
    exit.catch(() => undefined);
    const listening = JSON.parse(line) as { http: string; legacy: { port: number } };
    url = listening.http;
    legacyPort = listening.legacy.port;
  });

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited(child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('a numeric sqliteFile is the file of that name, not the number the schema would refuse', () => {
    assert.ok(existsSync(join(dataDir, '20261203')), 'the store is DATA_DIR/20261203');
  });

  test('a numeric legacyToken (from the environment) is the string the legacy client sends as TOKEN', async () => {
    const c = await RawLegacyClient.connect(legacyPort);
    try {
      let r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":1,"TOKEN":"20261203","DATA":{"TEXT":"x"}}\n');
      assert.equal(r.answer, 0, JSON.stringify(r.answer));
      r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":1,"TOKEN":"wrong","DATA":{"TEXT":"x"}}\n');
      assert.equal((r.answer as { TYPE?: string }).TYPE, 'ERROR');
    } finally {
      c.destroy();
    }
  });

  test('allowedOrigins=a, b is the list of both origins', async () => {
    const token = await runCli(['token', '--aid', '1', '--data-dir', dataDir]);
    assert.equal(token.code, 0, token.stderr);
    const ws = `${url.replace('http', 'ws')}/ws/admin`;
    for (const origin of ['https://panel.example.net', 'https://admin.example.net']) {
      const tab = await TestTab.open(ws, { origin, query: { token: token.stdout.trim() } });
      await tab.nextOfType('WELCOME');
      tab.close();
      await tab.closed;
    }
    assert.equal((await TestTab.status(ws, { origin: 'https://elsewhere.example.net', query: { token: token.stdout.trim() } })).status, 403);
  });

  test('--set takes the options that have flags of their own too (port, store, host, …); the flag wins when both are given', async () => {
    // A value only the option's check refuses: the exit proves that --set reached it.
    let r = await runCli(['start', '--data-dir', dataDir, '--no-legacy', '--set', 'port=70000']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /option "port" \(command line\)/);
    r = await runCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--set', 'store=paper']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /option "store" \(command line\)/);
    r = await runCli(['start', '--data-dir', dataDir, '--port', '0', '--set', 'legacyEnabled=false', '--set', 'legacyPort=-1']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /option "legacyPort" \(command line\)/);
    // Both: the flag's good value stands over --set's bad one.
    const both = spawnCli(['start', '--data-dir', join(dir, 'both'), '--port', '0', '--no-legacy', '--log-level', 'info', '--set', 'port=70000']);
    try {
      const line = await new LineReader(both.stdout).next((l) => l.includes('Herald is listening'));
      assert.match((JSON.parse(line) as { http: string }).http, /^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      both.kill('SIGTERM');
      await exited(both);
    }
  });

  test('an option that carries a secret is refused (exit 2), naming its environment variable and the config file, never echoing the value', async () => {
    const cases = [
      ['previousSecret=PREVSECRETBBBB0123456789abcdefghijklmn', 'previousSecret', 'HERALD_PREVIOUS_SECRET'],
      ['secret=SECRETAAAAsignsecret0123456789abcdefXYZ', 'secret', 'HERALD_SECRET'],
      ['apiToken=APITOKENCCCC0123456789zz', 'apiToken', 'HERALD_API_TOKEN'],
      ['legacyToken=20261203', 'legacyToken', 'HERALD_LEGACY_TOKEN'],
      ['sqlUrl=mysql://herald:PASSWORD@127.0.0.1/abills', 'sqlUrl', 'HERALD_SQL_URL'],
      ['httpResolverUrl=https://panel.example.net/herald-session?key=PANELKEY', 'httpResolverUrl', 'HERALD_HTTP_RESOLVER_URL'],
      ['commandsEnv=PATH=/usr/bin,PGPASSWORD=DBPASS', 'commandsEnv', 'HERALD_COMMANDS_ENV'],
    ] as const;
    for (const [item, key, variable] of cases) {
      const r = await runCli(['start', '--data-dir', join(dir, 'secret-set'), '--port', '0', '--no-legacy', '--set', item]);
      assert.equal(r.code, 2, `${item}: ${r.stderr}`);
      assert.equal(r.stderr, `herald: --set ${key}=… would put a secret on the command line, where every user of this machine can read it (ps): set ${variable} in Herald's environment, or "${key}" in the config file (mode 0600), instead\n`);
    }
    assert.equal(existsSync(join(dir, 'secret-set')), false, 'refused before anything was made');
  });

  test('what carries no secret still goes: a sqlUrl without a password, an httpResolverUrl without a query, commandsEnv of PATH, LANG, LC_* and TZ', async () => {
    const child = spawnCli([
      'start', '--data-dir', join(dir, 'plain-set'), '--port', '0', '--no-legacy', '--log-level', 'info', '--store', 'memory',
      '--set', 'sqlUrl=postgres://herald@127.0.0.1/panel',
      '--set', 'httpResolverUrl=https://panel.example.net/herald-session',
      '--set', 'commandsEnv=PATH=/usr/bin,LANG=C.UTF-8,LC_ALL=C,TZ=UTC',
    ]);
    try {
      await new LineReader(child.stdout).next((l) => l.includes('Herald is listening'));
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });
});
