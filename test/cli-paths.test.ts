/**
 * `herald` where a path it is given cannot be used: run from a working
 * directory that has been removed, or with a data dir in a file system that
 * takes no new directory (/proc). One line on stderr and exit 1 (the command
 * audit file's exit 2, as for any audit file that cannot be opened), never a
 * stack trace, nor a process spinning for ever. The CLI as a child process.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, cliBundle, cliResult, runCli, type CliResult } from './helpers/cli.js';
import { skipUnlessCI } from './helpers/capability.js';

const SECRETS = { HERALD_SECRET: 'abcdefghijklmnopqrstuvwxyz0123456789', HERALD_API_TOKEN: 'api-token-0123456789' };

/** `herald ARGS…` started in `dir`, which is removed just before (a shell cds into it, removes it, then runs herald). */
function runInRemovedDir(dir: string, args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  mkdirSync(dir);
  const child = spawn('/bin/sh', ['-c', 'cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', dir, process.execPath, cliBundle(), ...args], { env: cleanEnv(env), stdio: 'pipe' });
  return cliResult(child, args);
}

describe('herald run from a directory that has been removed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-cwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('start and the client commands say so in one line and exit 1, not with a stack trace', async () => {
    const commands = [
      ['start', '--port', '0', '--no-legacy'],
      ['token', '--aid', '1'],
      ['send', '--aid', '1', '--text', 'x'],
      ['online'],
      ['config'],
    ];
    const results = await Promise.all(commands.map((args, i) => runInRemovedDir(join(dir, `gone-${i}`), args)));
    for (const [i, r] of results.entries()) {
      const name = commands[i]!.join(' ');
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, 'herald: the current directory no longer exists; cd elsewhere or give absolute paths\n', name);
      assert.equal(r.stdout, '', name);
    }
  });

  test('with an absolute data dir, the commands work there all the same', async () => {
    const dataDir = join(dir, 'data');
    const [config, token] = await Promise.all([
      runInRemovedDir(join(dir, 'gone-config'), ['config', '--data-dir', dataDir]),
      runInRemovedDir(join(dir, 'gone-token'), ['token', '--aid', '1', '--data-dir', dataDir], { HERALD_SECRET: SECRETS.HERALD_SECRET }),
    ]);
    assert.equal(config.code, 0, config.stderr);
    assert.equal((JSON.parse(config.stdout) as { dataDir: string }).dataDir, dataDir);
    assert.equal(token.code, 0, token.stderr);
    assert.match(token.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
  });
});

// A directory of procfs: there, but mkdir in it fails with ENOENT. Node 20's recursive mkdirSync
// took that for "the parent is missing" and tried again for ever, at 100 % CPU, deaf to SIGTERM.
const procDir = `/proc/${process.pid}`;
const noProc = skipUnlessCI(existsSync(procDir) ? false : 'no /proc on this system');

describe('herald start with a data dir under /proc', { skip: noProc }, () => {
  const dataDir = join(procDir, 'herald-data');

  test('a first start (secrets to generate) is one line naming the directory, and exit 1', async () => {
    const r = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', dataDir]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, `herald: cannot start: cannot keep the generated secrets in ${dataDir}/secrets.json: cannot create the directory ${dataDir}: ENOENT: no such file or directory, mkdir '${dataDir}' (${procDir} is there, but it takes no new directory: a file system such as /proc or /sys)\n`);
  });

  test('with the secrets in the environment, the store\'s directory is one line and exit 1', async () => {
    const r = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', dataDir], { env: SECRETS });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, `herald: cannot start: cannot create the directory ${dataDir}: ENOENT: no such file or directory, mkdir '${dataDir}' (${procDir} is there, but it takes no new directory: a file system such as /proc or /sys)\n`);
  });

  test('with the memory store, the command audit file\'s directory is one line naming the option, and exit 2', async () => {
    const r = await runCli(['start', '--port', '0', '--no-legacy', '--store', 'memory', '--data-dir', dataDir], { env: SECRETS });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^herald: invalid configuration: cannot open the command audit file .*commands-audit\.sqlite \(commandsAuditFile\): cannot create the directory .*herald-data: ENOENT/);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  });
});
