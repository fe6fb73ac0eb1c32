/**
 * `herald start` on ::1, on a wildcard address and on a host name, as a real
 * child process, and the client commands that find it from the same
 * configuration. Traffic goes to ::1 and 127.0.0.1 only: a wildcard listener
 * is reached through loopback, which is also what the first-start hint must
 * name (it said "a browser token for ws://[::]:PORT" and "ws://0.0.0.0:PORT",
 * where nothing connects).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { noIPv6 } from './helpers/ipv6.js';
import { restartablePort } from './helpers/ports.js';

/** The words of a printed hint line, as sh splits them (the comment dropped). */
function words(line: string): string[] {
  return spawnSync('sh', ['-c', `set -- ${line.replace(/#.*$/, '').trim()}\nprintf '%s\\n' "$@"`], { encoding: 'utf8' }).stdout.trim().split('\n');
}

describe('herald start on IPv6 and wildcard addresses', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-ipv6-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [host, reach] of [['::', '[::1]'], ['0.0.0.0', '127.0.0.1']] as const) {
    test(`host ${host}: the hint names ws://${reach}:PORT, and its send line reaches the server there`, { skip: host === '::' ? noIPv6 : false }, async () => {
      const dataDir = join(dir, `wild-${host.replace(/\W/g, 'x')}`);
      const child = spawnCli(['start', '--host', host, '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'silent']);
      const stderr = new LineReader(child.stderr);
      try {
        const tokenLine = await stderr.next((l) => l.includes('herald token --aid 1'));
        const m = /a browser token for (ws:\/\/\S+)\/ws\/admin/.exec(tokenLine);
        assert.ok(m, tokenLine);
        const port = new URL(m[1]!).port;
        assert.equal(m[1], `ws://${reach}:${port}`, tokenLine);
        const args = words(await stderr.next((l) => l.includes('herald send --aid 1')));
        assert.equal(args[args.indexOf('--url') + 1], `http://${reach}:${port}`);
        const sent = await runCli(args.slice(1), { cwd: dir });
        assert.equal(sent.code, 0, sent.stderr);
        assert.match(sent.stdout, /^admin 1: delivered to 0 tabs; queued/);
      } finally {
        child.kill('SIGTERM');
        await exited(child);
      }
    });
  }

  test('host ::1 from a config file: start prints [::1] URLs; ping, send and status find it through the same file', { skip: noIPv6 }, async () => {
    const dataDir = join(dir, 'v6-config');
    const port = await restartablePort();
    const config = join(dir, 'v6.json');
    writeFileSync(config, JSON.stringify({ host: '::1', port, legacyEnabled: false, dataDir, logLevel: 'silent' }));
    const child = spawnCli(['start', '--config', config]);
    const stderr = new LineReader(child.stderr);
    try {
      const tokenLine = await stderr.next((l) => l.includes('herald token --aid 1'));
      assert.match(tokenLine, new RegExp(`ws://\\[::1\\]:${port}/ws/admin`));
      const [ping, sent, status] = await Promise.all([
        runCli(['ping', '--config', config], { cwd: dir }),
        runCli(['send', '--config', config, '--aid', '1', '--title', 'v6', '--text', 'x'], { cwd: dir }),
        runCli(['status', '--config', config], { cwd: dir }),
      ]);
      assert.equal(ping.code, 0, ping.stderr);
      assert.match(ping.stdout, new RegExp(`at http://\\[::1\\]:${port} `));
      assert.equal(sent.code, 0, sent.stderr);
      assert.equal(status.code, 0, status.stderr);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  test('--url with a bare IPv6 address is a usage error that says to put it in brackets', async () => {
    const cases = [['http://::1:19443', true], ['http://[::1:19443', false]] as const;
    const results = await Promise.all(cases.map(([url]) => runCli(['ping', '--url', url], { cwd: dir, env: { HERALD_API_TOKEN: 'a-token-of-twenty-chars' } })));
    for (const [i, [, hint]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--url \/ HERALD_URL is not a URL/);
      assert.equal(/goes in brackets: http:\/\/\[::1\]:19443/.test(r.stderr), hint, r.stderr);
    }
  });

  test('host or legacyHost in brackets ([::1]) is a configuration error that names the fix, not getaddrinfo ENOTFOUND', async () => {
    for (const args of [['--host', '[::1]', '--no-legacy'], ['--set', 'legacyHost=[::1]']]) {
      const r = await runCli(['start', '--data-dir', join(dir, 'brackets'), '--port', '0', '--legacy-port', '0', '--log-level', 'silent', ...args], { cwd: dir });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /write an IPv6 address without brackets \("::1"\)/);
      assert.doesNotMatch(r.stderr, /ENOTFOUND|\n\s+at /);
    }
  });
});
