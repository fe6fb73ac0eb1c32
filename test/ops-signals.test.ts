/**
 * SIGHUP and `herald start`. Under a service manager (no terminal) a SIGHUP
 * is someone's `systemctl kill -s HUP herald`, sent out of habit to reload a
 * daemon's configuration: Herald stopped on it with exit 0, and the unit's
 * Restart=on-failure never started it again. It is ignored there, and the log
 * says that Herald does not reload its configuration. On a terminal it still
 * means the terminal went away (an ssh session closed): Herald shuts down
 * gracefully, as on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanEnv, cliBundle, exited, LineReader, spawnCli } from './helpers/cli.js';

const SCRIPT = '/usr/bin/script';
const ENV = { HERALD_SECRET: 'x'.repeat(40), HERALD_API_TOKEN: 'ops-signals-api-token-0123' };

/** A POSIX shell word. */
const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

describe('SIGHUP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-ops-signals-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('without a terminal (a service manager): ignored, said in the log; Herald goes on serving, and SIGTERM still stops it with exit 0', async () => {
    const child = spawnCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'a'), '--log-level', 'info'], { env: ENV });
    try {
      const out = new LineReader(child.stdout);
      const url = (JSON.parse(await out.next((l) => l.includes('Herald is listening'))) as { http: string }).http;
      child.kill('SIGHUP');
      const said = JSON.parse(await out.next((l) => l.includes('SIGHUP'))) as { msg: string; level: number; signal: string };
      assert.equal(said.signal, 'SIGHUP');
      assert.match(said.msg, /^SIGHUP ignored: Herald does not reload its configuration on SIGHUP; restart it/);
      assert.equal((await fetch(`${url}/healthz`)).status, 200, 'still serving after the SIGHUP');
      assert.equal(child.exitCode, null);
      assert.ok(!out.text().includes('shutting down'), out.text());
      child.kill('SIGTERM');
      assert.deepEqual(await exited(child), { code: 0, signal: null });
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  test('on a terminal (script(1) gives it one): the terminal went away, Herald shuts down gracefully and exits 0', { skip: existsSync(SCRIPT) ? false : `${SCRIPT} is missing (util-linux)` }, async () => {
    const command = [process.execPath, cliBundle(), 'start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'b'), '--log-level', 'info', '--set', 'logPretty=false'].map(quote).join(' ');
    // -e: script exits with Herald's status.
    const child = spawn(SCRIPT, ['-qfec', command, '/dev/null'], { env: cleanEnv(ENV), stdio: 'pipe' });
    try {
      const out = new LineReader(child.stdout);
      const listening = JSON.parse((await out.next((l) => l.includes('Herald is listening'))).trim()) as { pid: number };
      process.kill(listening.pid, 'SIGHUP');
      const line = JSON.parse((await out.next((l) => l.includes('"shutting down"'))).trim()) as { signal: string };
      assert.equal(line.signal, 'SIGHUP');
      assert.deepEqual(await exited(child), { code: 0, signal: null });
      assert.ok(!out.text().includes('SIGHUP ignored'), out.text());
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
