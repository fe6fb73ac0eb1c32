/**
 * The `herald` command when what it writes to cannot take it, or its
 * terminal goes away: `run --wait` does not leave its command running on the
 * server (SIGHUP, a reader gone), a full disk is one line and status 1, and
 * a stderr nobody reads does not fail a command that did its work. A real
 * Herald running real programs, the CLI as a child process.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { startHerald, type TestServer } from './helpers/server.js';
import { cleanEnv, cliBundle, exited, LineReader, REPO_ROOT, spawnCli } from './helpers/cli.js';

describe('herald run --wait when its terminal or its reader goes away', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['ping'] });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.close());

  /** Starts a long `run --wait` and resolves once its first output line and the command's id are in. */
  async function following() {
    const child = spawnCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-i', '0.2', '-c', '300', '127.0.0.1'], { env });
    const out = new LineReader(child.stdout);
    const err = new LineReader(child.stderr);
    await out.next((l) => l.startsWith('PING 127.0.0.1'));
    const id = (await err.next((l) => l.startsWith('command '))).split(' ')[1]!;
    return { child, err, id };
  }

  async function stateOf(id: string): Promise<string> {
    return (await s.api('GET', `/api/v1/commands/${id}`)).body.state;
  }

  test('SIGHUP (the terminal closed) cancels the command on the server, as SIGTERM does, and exits 129', async () => {
    const { child, id } = await following();
    try {
      child.kill('SIGHUP');
      assert.deepEqual(await exited(child), { code: 129, signal: null });
      assert.equal(await stateOf(id), 'cancelled');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await s.api('POST', `/api/v1/commands/${id}/cancel`);
    }
  });

  test('its output\'s reader gone (| head -1) cancels the command, as SIGPIPE stops a local one, and exits 0', async () => {
    const { child, err, id } = await following();
    try {
      child.stdout.destroy();
      assert.deepEqual(await exited(child), { code: 0, signal: null }, err.text());
      assert.equal(await stateOf(id), 'cancelled');
      assert.doesNotMatch(err.text(), /EPIPE|Error/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await s.api('POST', `/api/v1/commands/${id}/cancel`);
    }
  });
});

describe('output that cannot be written', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000 });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.close());

  test('herald status > /dev/full: one line naming the error and exit 1, not a stack trace', { skip: !existsSync('/dev/full') && 'no /dev/full' }, async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const child = spawn(process.execPath, [cliBundle(), 'status'], { cwd: REPO_ROOT, env: cleanEnv(env), stdio: ['ignore', full, 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
      const [code] = await Promise.race([
        new Promise<[number | null]>((resolve) => child.on('close', (c) => resolve([c]))),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit; stderr: ${stderr}`)), 15000).unref()),
      ]);
      assert.equal(code, 1, stderr);
      assert.equal(stderr, 'herald: cannot write output: ENOSPC\n');
    } finally {
      closeSync(full);
    }
  });

  test('a stderr nobody reads (2>&1 | head -1, its reader gone) does not turn a command that did its work into status 1', async () => {
    // Nobody online: `online` says so on stderr only, and exits 0.
    const child = spawnCli(['online'], { env });
    child.stderr.destroy();
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c; });
    assert.deepEqual(await exited(child), { code: 0, signal: null });
    assert.equal(stdout, '');
  });
});
