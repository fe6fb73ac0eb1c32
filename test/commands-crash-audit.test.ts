/**
 * A run in progress when Herald dies without its shutdown: SIGKILLed (the OOM
 * killer, kill -9) or crashed. The audit file keeps the run from its start,
 * so the next start closes it with a `finished` record (its id answers from
 * the trail, not 404) and kills its program if that is provably still the
 * process Herald started; a crash that runs the 'exit' listeners records the
 * run itself. A real Herald in a child process, killed for real.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import { processIdentity } from '../src/server/commands/process-group.js';
import { gone, processAlive, processesShown, within } from './commands-fixture.js';
import { startHerald, type TestServer } from './helpers/server.js';

const SRC = new URL('../src/server/', import.meta.url).href;
const commands = { commandsEnabled: true, commandsAllow: ['sleep', 'sh'], commandsPath: '/usr/bin:/bin', legacyEnabled: false, store: 'memory' };

/**
 * A Herald in a child node (TypeScript through tsx) on `dataDir` that starts `sleep <seconds>`,
 * prints the command's id, and then waits; with `crash`, it throws from a timer (an uncaught
 * exception) once a line comes on its stdin (crashNow): not on a timer of its own, which could
 * fire, and the exiting Herald kill the program, before a loaded machine let the test see it run.
 * 'after-cancel': the sleep ignores SIGTERM (sh traps it, then execs sleep), and the line on stdin
 * cancels the run through the API first, so that the crash comes during the cancel's grace.
 */
async function heraldRunningSleep(dataDir: string, seconds: string, crash: boolean | 'after-cancel'): Promise<{ child: ChildProcess; id: string }> {
  const run = crash === 'after-cancel'
    ? `program: 'sh', args: ['-c', ${JSON.stringify(`trap "" TERM; exec sleep ${seconds}`)}]`
    : `program: 'sleep', args: [${JSON.stringify(seconds)}]`;
  const onLine = crash === 'after-cancel'
    ? "process.stdin.once('data', () => { herald.commands.cancel(info.id).catch(() => {}); setTimeout(() => { throw new Error('boom: an application bug'); }, 100); });"
    : "process.stdin.once('data', () => setTimeout(() => { throw new Error('boom: an application bug'); }, 0));";
  const code = `
    import { createHerald } from ${JSON.stringify(`${SRC}herald.ts`)};
    import { loadOptions } from ${JSON.stringify(`${SRC}options.ts`)};
    const options = loadOptions({ env: {}, overrides: { ...${JSON.stringify(commands)}, host: '127.0.0.1', port: 0,
      dataDir: ${JSON.stringify(dataDir)}, logLevel: 'silent', secret: 'crash-audit-secret-0123456789abcdef0123', apiToken: 'crash-audit-token-0123456789' } });
    const herald = await createHerald(options);
    const info = await herald.commands.start({ aid: 7, ${run}, door: 'http', requestedBy: 'test' });
    console.log(JSON.stringify({ id: info.id }));
    ${crash ? onLine : 'setInterval(() => {}, 1000);'}
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: [crash ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  const line = await within(new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on('exit', (code) => reject(new Error(`the Herald child exited ${code} before starting the command: ${err}`)));
  }), 30_000, 'the Herald child to start its command');
  return { child, id: (JSON.parse(line) as { id: string }).id };
}

/** A sleep of its own length, so that the test finds its process and no other. */
const uniqueSeconds = (): string => `300.${process.pid}${Math.floor(Math.random() * 1e6)}`;

describe('a run in progress when Herald dies without its shutdown', () => {
  let dataDir: string;
  let fresh: TestServer | undefined;
  const strays: number[] = [];
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-crash-audit-'));
  });
  afterEach(async () => {
    await fresh?.close();
    fresh = undefined;
    for (const pid of strays.splice(0)) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('SIGKILL: the next start records the run as lost and kills its program, still running', async () => {
    const seconds = uniqueSeconds();
    const { child, id } = await heraldRunningSleep(dataDir, seconds, false);
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the command runs');
    strays.push(sleep);
    const dead = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await dead;
    assert.ok(processAlive(sleep), 'a SIGKILLed Herald leaves its program running');

    fresh = await startHerald(commands, { dataDir });
    assert.ok(await gone(sleep), `the program ${sleep} is killed when Herald starts again`);
    const got = await fresh.api('GET', `/api/v1/commands/${id}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.state, got.body.source, got.body.aid, got.body.args, got.body.requestedBy], ['cancelled', 'audit', 7, [seconds], 'test']);
    assert.match(got.body.error, /^lost: Herald stopped \(killed or crashed\) without seeing its end; it was still running and was killed/);
    const trail = await fresh.api('GET', '/api/v1/commands/audit');
    assert.equal(trail.body.records.filter((r: { id?: string }) => r.id === id).length, 1, 'one record for the run');
    // Closed for good: a second start finds nothing left to close.
    await fresh.close();
    fresh = await startHerald(commands, { dataDir });
    const again = await fresh.api('GET', '/api/v1/commands/audit');
    assert.equal(again.body.records.filter((r: { id?: string }) => r.id === id).length, 1, 'still one record for the run');
  });

  it('a crash (an uncaught exception): the exiting Herald kills the program and records the run itself', async () => {
    const seconds = uniqueSeconds();
    const { child, id } = await heraldRunningSleep(dataDir, seconds, true);
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the command runs');
    strays.push(sleep);
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.end('crash\n');
    const code = await exited;
    assert.notEqual(code, 0, 'the Herald child crashed');
    assert.ok(await gone(sleep), 'the exit listener killed the program');

    fresh = await startHerald(commands, { dataDir });
    const got = await fresh.api('GET', `/api/v1/commands/${id}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.state, got.body.source, got.body.error], ['cancelled', 'audit', 'Herald exited without stopping it (a crash, or a forced exit): killed']);
  });

  it('a crash during a cancel\'s grace: the run is recorded as cancelled through the API, not as one Herald never stopped', async () => {
    const seconds = uniqueSeconds();
    const { child, id } = await heraldRunningSleep(dataDir, seconds, 'after-cancel');
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the command runs');
    strays.push(sleep);
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.end('cancel, then crash\n');
    assert.notEqual(await exited, 0, 'the Herald child crashed');
    assert.ok(await gone(sleep), 'the exit listener killed the program, which ignored the SIGTERM');

    fresh = await startHerald(commands, { dataDir });
    const got = await fresh.api('GET', `/api/v1/commands/${id}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.state, got.body.source, got.body.error], ['cancelled', 'audit', 'through the API']);
  });

  it('kills only a program that is provably the one Herald started, and leaves the runs of a Herald still alive alone', async () => {
    // A live process under a recorded pid whose identity is not the one recorded: the pid was reused.
    const stranger = spawn('sleep', ['300'], { stdio: 'ignore' });
    strays.push(stranger.pid!);
    const audit = new SqliteCommandAudit(join(dataDir, 'commands-audit.sqlite'), 1000);
    const base = { event: 'finished' as const, aid: 9, door: 'http' as const, program: 'sleep', path: '/usr/bin/sleep', args: ['300'], queuedAt: 1, startedAt: 2, state: 'running' as const };
    audit.running({ record: { ...base, id: 'reused-pid' }, pid: stranger.pid!, identity: 'another-boot/1', host: hostname(), heraldPid: 999_999_999, heraldIdentity: 'another-boot/2' });
    // This very process is a live Herald's stand-in: what it runs is not a restart's to close.
    audit.running({ record: { ...base, id: 'live-herald' }, pid: stranger.pid!, identity: processIdentity(stranger.pid!)!, host: hostname(), heraldPid: process.pid, heraldIdentity: processIdentity(process.pid)! });
    // A run of another host sharing the file: not this start's either.
    audit.running({ record: { ...base, id: 'other-host' }, pid: stranger.pid!, identity: processIdentity(stranger.pid!)!, host: `not-${hostname()}`, heraldPid: 999_999_999 });
    // Left as a process that died would leave it: rows in command_runs, no `finished` records.
    audit.close();

    fresh = await startHerald(commands, { dataDir });
    assert.equal(await gone(stranger.pid!, 300), false, 'the process that got the pid is not killed');
    const got = await fresh.api('GET', '/api/v1/commands/reused-pid');
    assert.deepEqual([got.status, got.body.state, got.body.aid], [200, 'failed', 9], JSON.stringify(got.body));
    assert.match(got.body.error, /^lost: .*it had ended when Herald started again, its outcome unknown$/);
    for (const id of ['live-herald', 'other-host']) assert.equal((await fresh.api('GET', `/api/v1/commands/${id}`)).status, 404, id);
    const db = new Database(join(dataDir, 'commands-audit.sqlite'), { readonly: true });
    try {
      const open = (db.prepare('SELECT id FROM command_runs ORDER BY id').all() as Array<{ id: string }>).map((r) => r.id);
      assert.deepEqual(open, ['live-herald', 'other-host']);
    } finally {
      db.close();
    }
  });
});
