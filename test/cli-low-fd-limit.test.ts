/**
 * `herald start` under an open-file limit too low for node to load its
 * modules (its ES module loader opens many files at once): one line on
 * stderr that says what to do, exit 1. It was node's EMFILE stack trace of
 * its own loader, before any of Herald's code ran. The real built CLI
 * (dist/cli/main.js, as the systemd unit runs it) under util-linux's prlimit.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanEnv } from './helpers/cli.js';

const PRLIMIT = '/usr/bin/prlimit';
const DIST_MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const dataDir = mkdtempSync(join(tmpdir(), 'herald-low-fd-'));
after(() => rmSync(dataDir, { recursive: true, force: true }));

test('herald start with an open-file limit of 100: one line saying to raise it, exit 1, no stack trace', async () => {
  // util-linux's prlimit is part of every Debian system; its absence is a broken machine, not a reason to skip.
  assert.ok(existsSync(PRLIMIT), `${PRLIMIT} is missing (apt-get install util-linux)`);
  assert.ok(existsSync(DIST_MAIN), 'dist/ is built (npm run build)');
  const child = spawn(PRLIMIT, ['--nofile=100:100', process.execPath, DIST_MAIN, 'start', '--port', '0', '--data-dir', dataDir, '--set', 'legacyPort=0'], {
    env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(code, 1, `exit status (stderr: ${stderr})`);
  assert.equal(stdout, '');
  assert.match(stderr, /^herald: cannot load: the process ran out of file descriptors \(EMFILE\)\. Raise its open-file limit to at least 256 \(ulimit -n in the shell, LimitNOFILE= in a systemd unit; docs\/deploy\.md\)\.\n$/);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
});
