/**
 * `herald start` with a configuration that cannot work: one line on stderr
 * naming the option(s) at fault, exit 2 (bad configuration), nothing
 * listening and nothing written.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';

describe('herald start refuses a configuration that cannot work', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('HERALD_HOST= (empty) is a configuration error naming host, not a listener on every interface', async () => {
    const cwd = join(dir, 'empty-host');
    const r = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(cwd, 'data'), '--public-url', 'https://panel.example.net/herald'], { env: { HERALD_HOST: '' } });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^herald: invalid configuration: option "host" is empty/);
    assert.ok(!existsSync(join(cwd, 'data')), 'nothing written');
  });
});

describe('herald start with two listeners on one port', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is a configuration error naming both options (exit 2), not "cannot listen: EADDRINUSE" (exit 1)', async () => {
    const r = await runCli(['start', '--port', '19443', '--set', 'adminPort=19443', '--no-legacy', '--data-dir', join(dir, 'data')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^herald: invalid configuration: options "port" and "adminPort" are both 19443 on 127\.0\.0\.1/);
  });
});

describe('an empty --config', () => {
  test('is a usage error, not a start on defaults without the file', async () => {
    for (const r of await Promise.all([runCli(['config', '--config', '']), runCli(['--config', ' ', 'config'])])) {
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.stderr, 'herald: --config must not be empty\n');
      assert.equal(r.stdout, '');
    }
  });
});

describe('a huge integer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('HERALD_REQUEST_TIMEOUT_MS=1e16 and HERALD_MAX_PER_STREAM=1e300 are configuration errors, not stack traces', async () => {
    const cases = [['HERALD_REQUEST_TIMEOUT_MS', 'requestTimeoutMs'], ['HERALD_MAX_PER_STREAM', 'maxPerStream']] as const;
    const results = await Promise.all(cases.map(([env]) => runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data')], { env: { [env]: env === 'HERALD_MAX_PER_STREAM' ? '1e300' : '1e16' } })));
    for (const [i, [env, key]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`^herald: invalid configuration: option "${key}" \\(environment ${env}\\)`));
      assert.ok(!r.stderr.includes('    at '), r.stderr);
    }
  });
});

describe('herald start where it cannot start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a dataDir that is a file is one line on stderr and exit 1, not a stack trace', async () => {
    const file = join(dir, 'not-a-dir');
    writeFileSync(file, '');
    const r = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', file]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /^herald: cannot start: the data dir .*not-a-dir is a file, not a directory \(option "dataDir", set on the command line\)/);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  });

  test('a commandsAuditFile that cannot be opened is one line naming the option and exit 2, not a stack trace', async () => {
    const notDir = join(dir, 'audit-parent-is-a-file');
    writeFileSync(notDir, '');
    const notDb = join(dir, 'not-a-database.sqlite');
    writeFileSync(notDb, 'this is not an SQLite database, only text long enough to fill its header: '.repeat(2));
    for (const [file, why] of [[join(notDir, 'audit.sqlite'), /EEXIST|ENOTDIR/], [notDb, /file is not a database/]] as const) {
      const r = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data'), '--set', `commandsAuditFile=${file}`]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /^herald: invalid configuration: cannot open the command audit file .* \(commandsAuditFile\): /);
      assert.match(r.stderr, why);
      assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    }
  });

  test('a host or legacyHost no name service knows is one line on stderr and exit 1, not a stack trace', async () => {
    // A label of 64 characters is refused by the resolver itself: no query leaves the machine.
    const name = `${'a'.repeat(64)}.invalid`;
    // The legacy token in the environment: `--set` refuses a secret (a command line is every user's to read).
    for (const [args, env] of [[['--host', name, '--no-legacy'], {}], [['--set', `legacyHost=${name}`, '--legacy-port', '0'], { HERALD_LEGACY_TOKEN: 'legacy-token-0123' }]] as const) {
      const r = await runCli(['start', '--port', '0', '--public-url', 'http://127.0.0.1:1', '--data-dir', join(dir, 'data'), ...args], { env });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(r.stderr, `herald: cannot listen: getaddrinfo ENOTFOUND ${name}\n`);
    }
  });
});

describe('the option at fault is the one named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a host that is no address names host (not an empty publicUrl); an ftp:// publicUrl names publicUrl (not allowedOrigins)', async () => {
    const cases = [
      [['--host', '256.1.1.1'], /^herald: invalid configuration: option "host": "256\.1\.1\.1" is not an IP address or host name \(set on the command line\)\n$/],
      [['--public-url', 'ftp://panel.example.net/herald'], /^herald: invalid configuration: option "publicUrl": "ftp:\/\/panel\.example\.net\/herald" is not a URL like https:\/\/panel\.example\.net\/herald \(set on the command line\)\n$/],
      [['--public-url', 'panel.example.net'], /^herald: invalid configuration: option "publicUrl": "panel\.example\.net" is not a URL/],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data'), ...args])));
    for (const [i, [, message]] of cases.entries()) {
      const r = results[i]!;
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, message);
    }
  });
});
