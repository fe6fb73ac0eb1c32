/**
 * `commandsEnv` is the one place an operator puts credentials for the
 * programs Herald runs (an SNMP community, a report script's database
 * password). Its values reach the program and nothing else: not the log at
 * trace level, not `herald config`, not a configuration error; and the
 * program gets nothing of the server's own environment (its API token, its
 * signing secret), through a real `herald start` and a real child process.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';

const SERVER_SECRETS = {
  HERALD_API_TOKEN: 'api-token-ENVLEAK-0123456789',
  HERALD_SECRET: 'signing-secret-ENVLEAK-0123456789abcdef',
  HERALD_LEGACY_TOKEN: 'legacy-token-ENVLEAK-0123',
};
const COMMUNITY = 'snmp-community-CMDSECRET-42';
const DB_PASSWORD = 'db-password-CMDSECRET-43';
const COMMANDS_ENV = ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8', `SNMP_COMMUNITY=${COMMUNITY}`, `REPORT_DB_PASSWORD=${DB_PASSWORD}`];

/** Fails with the offending lines when `text` holds `secret` (or its URL encoding). */
function assertAbsent(text: string, secret: string, where: string): void {
  for (const form of new Set([secret, encodeURIComponent(secret)])) {
    assert.ok(!text.includes(form), `${where} holds ${form}:\n${text.split('\n').filter((l) => l.includes(form)).join('\n')}`);
  }
}

describe('commandsEnv values reach the program only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-sec-env-'));
  const cwd = realpathSync(mkdtempSync(join(tmpdir(), 'herald-sec-cwd-')));
  const env = { ...SERVER_SECRETS, HERALD_COMMANDS_ENV: JSON.stringify(COMMANDS_ENV) };
  let child: ChildProcessWithoutNullStreams;
  let stdout: LineReader;
  let stderr: LineReader;
  let http = '';

  before(async () => {
    child = spawnCli(['start', '--port', '0', '--no-legacy', '--log-level', 'trace', '--data-dir', join(dir, 'data'),
      '--set', 'commandsAllow=["env","pwd","no-such-program-here"]', '--set', `commandsCwd=${cwd}`], { env });
    stdout = new LineReader(child.stdout);
    stderr = new LineReader(child.stderr);
    http = (JSON.parse(await stdout.next((l) => l.includes('Herald is listening'))) as { http: string }).http;
  });

  after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(cwd, { recursive: true, force: true });
  });

  async function run(program: string, args: string[] = []): Promise<{ status: number; body: any }> {
    const headers = { authorization: `Bearer ${SERVER_SECRETS.HERALD_API_TOKEN}`, 'content-type': 'application/json' };
    const res = await fetch(`${http}/api/v1/commands`, { method: 'POST', headers, body: JSON.stringify({ aid: 1, program, args }) });
    const body = await res.json() as any;
    if (res.status !== 201) return { status: res.status, body };
    const done = await fetch(`${http}/api/v1/commands/${body.id}?wait=10`, { headers });
    return { status: res.status, body: await done.json() };
  }

  test('the program sees exactly commandsEnv and runs in commandsCwd', async () => {
    const r = await run('env');
    assert.equal(r.body.state, 'succeeded', JSON.stringify(r.body));
    assert.deepEqual((r.body.output as string).trim().split('\n').sort(), [...COMMANDS_ENV].sort());
    const pwd = await run('pwd');
    assert.equal((pwd.body.output as string).trim(), cwd);
  });

  test('an allowed program missing on PATH is refused by name, without a crash', async () => {
    const r = await run('no-such-program-here');
    assert.equal(r.status, 422);
    assert.equal(r.body.error.code, 'HERALD_ERR_COMMAND_NOT_FOUND');
    assert.doesNotMatch(JSON.stringify(r.body), /at .*\.(ts|js):\d+/, 'a stack trace in the answer');
    assert.equal((await fetch(`${http}/healthz`)).status, 200);
  });

  test('herald config shows commandsEnv\'s names, not its values', async () => {
    const r = await runCli(['config', '--data-dir', join(dir, 'data')], { env });
    assert.equal(r.code, 0, r.stderr);
    const shown = JSON.parse(r.stdout) as { commandsEnv: string[] };
    assert.deepEqual(shown.commandsEnv, ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8', 'SNMP_COMMUNITY=(set)', 'REPORT_DB_PASSWORD=(set)']);
    for (const s of [COMMUNITY, DB_PASSWORD, ...Object.values(SERVER_SECRETS)]) assertAbsent(r.stdout + r.stderr, s, 'herald config');
  });

  test('a commandsEnv that does not parse is refused naming the option, without quoting it', async () => {
    const broken = await runCli(['config'], { env: { HERALD_COMMANDS_ENV: `["PATH=/bin","REPORT_DB_PASSWORD=${DB_PASSWORD}"` } });
    assert.equal(broken.code, 2);
    assert.match(broken.stderr, /commandsEnv/);
    assertAbsent(broken.stderr + broken.stdout, DB_PASSWORD, 'the error');
    // A bare secret pasted without its KEY= (the entry is then not KEY=VALUE).
    const bare = await runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data2')], { env: { HERALD_COMMANDS_ENV: `["PATH=/bin","${DB_PASSWORD}"]` } });
    assert.equal(bare.code, 2, bare.stderr);
    assert.match(bare.stderr, /commandsEnv/);
    assertAbsent(bare.stderr + bare.stdout, DB_PASSWORD, 'the error');
  });

  test('nothing of it, nor the server\'s own secrets, reaches the log at trace level', async () => {
    child.kill('SIGTERM');
    assert.equal((await exited(child)).code, 0);
    const everything = `${stdout.text()}\n${stderr.text()}`;
    assert.match(everything, /"audit":"command"/, 'the commands were run and audited');
    for (const s of [COMMUNITY, DB_PASSWORD, ...Object.values(SERVER_SECRETS), 'CMDSECRET', 'ENVLEAK']) assertAbsent(everything, s, 'the log');
  });
});
