/**
 * A command accepted as `queued` when Herald ends without its shutdown: a forced exit (the
 * 'exit' listeners run) or SIGKILL (nothing runs). Either way its id must answer from the
 * audit trail after the restart, never 404: the exiting Herald records it itself, or the next
 * start closes the row the audit file has kept for it since it was accepted. A runner on a real
 * audit file in a child process, ended for real.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import { gone, makeRig, processAlive, processesShown, within, type Rig } from './commands-fixture.js';

const TEST = new URL('./', import.meta.url).href;
const SRC = new URL('../src/server/', import.meta.url).href;

/**
 * A child node with a runner on `file`, one slot: `first` runs, `second` waits in the queue
 * (or, with `secondStarts`, starts once `first` has ended). It prints the ids once that is so,
 * and ends as told by the line on its stdin: `exit` (process.exit, as a second Ctrl-C or an
 * uncaught exception) or nothing (the test SIGKILLs it).
 */
async function runnerWithQueue(dir: string, first: string[], second: string[], secondStarts = false): Promise<{ child: ChildProcess; first: string; second: string }> {
  const code = `
    import { makeRig } from ${JSON.stringify(`${TEST}commands-fixture.ts`)};
    import { SqliteCommandAudit } from ${JSON.stringify(`${SRC}commands/audit-sqlite.ts`)};
    const rig = await makeRig({ commandsAllow: ['sleep'], commandsCwd: ${JSON.stringify(dir)}, commandsConcurrency: 1, commandsPerAdminConcurrency: 1 },
      { audit: new SqliteCommandAudit(${JSON.stringify(join(dir, 'audit.sqlite'))}, 100) });
    const tab = rig.tab(7);
    const a = await rig.runner.start({ aid: 7, program: 'sleep', args: ${JSON.stringify(first)}, door: 'http' });
    const b = await rig.runner.start({ aid: 7, program: 'sleep', args: ${JSON.stringify(second)}, door: 'http' });
    if (b.state !== 'queued') throw new Error('the second command was not queued: ' + b.state);
    if (${secondStarts}) await tab.next((f) => f.TYPE === 'COMMAND_PROGRESS' && f.COMMAND_ID === b.id && f.STATE === 'running');
    console.log(JSON.stringify({ first: a.id, second: b.id }));
    process.stdin.once('data', (line) => { if (String(line).startsWith('exit')) process.exit(1); });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  const line = await within(new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.on('exit', (status) => reject(new Error(`the child exited ${status} before its commands were in place: ${err}`)));
  }), 30_000, 'the child to start and queue its commands');
  return { child, ...(JSON.parse(line) as { first: string; second: string }) };
}

/** A sleep of its own length, so that the test finds its process and no other. */
const uniqueSeconds = (): string => `300.${process.pid}${Math.floor(Math.random() * 1e6)}`;

describe('a queued command when Herald ends without its shutdown', () => {
  let dir: string;
  let rig: Rig | undefined;
  const strays: number[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-queued-lost-'));
  });
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
    for (const pid of strays.splice(0)) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const restart = async (): Promise<Rig> => {
    rig = await makeRig({ commandsAllow: ['sleep'], commandsCwd: dir }, { audit: new SqliteCommandAudit(join(dir, 'audit.sqlite'), 100) });
    return rig;
  };

  it('a forced exit records the queued command as cancelled before it ran', async () => {
    const seconds = uniqueSeconds();
    const { child, first, second } = await runnerWithQueue(dir, [seconds], ['1']);
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the first command runs');
    strays.push(sleep);
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin!.end('exit\n');
    assert.equal(await exited, 1);

    const { runner } = await restart();
    const queued = runner.recorded(second);
    assert.ok(queued, 'the queued command is known after the restart (not 404)');
    assert.deepEqual(
      [queued.state, queued.error, queued.startedAt, queued.DURATION_MS, queued.source],
      ['cancelled', 'Herald exited before it ran (a crash, or a forced exit)', undefined, 0, 'audit'],
    );
    assert.equal(runner.recorded(first)?.error, 'Herald exited without stopping it (a crash, or a forced exit): killed');
    // Closed for good: nothing of it is left for this start to call lost.
    assert.equal(runner.audit()?.filter((r) => r.id === second).length, 1, 'one record for the queued command');
  });

  it('SIGKILL: the next start closes the queued command as lost, never started', async () => {
    const seconds = uniqueSeconds();
    const { child, first, second } = await runnerWithQueue(dir, [seconds], ['1']);
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the first command runs');
    strays.push(sleep);
    const dead = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await dead;

    const { runner } = await restart();
    const queued = runner.recorded(second);
    assert.ok(queued, 'the queued command is known after the restart (not 404)');
    assert.deepEqual(
      [queued.state, queued.error, queued.startedAt, queued.DURATION_MS],
      ['cancelled', 'lost: Herald stopped (killed or crashed) before it started: it never ran', undefined, 0],
    );
    assert.match(String(runner.recorded(first)?.error), /it was still running and was killed when Herald started again$/);
    assert.ok(await gone(sleep), 'the running command\'s program is killed by the restart');
    assert.equal(runner.audit()?.filter((r) => r.id === second).length, 1, 'one record for the queued command');
  });

  it('SIGKILL after a queued command has started: the restart knows its program and kills it', async () => {
    const seconds = uniqueSeconds();
    const { child, second } = await runnerWithQueue(dir, ['0'], [seconds], true);
    const sleep = (await processesShown(['sleep', seconds]))[0];
    assert.ok(sleep !== undefined, 'the second command runs');
    strays.push(sleep);
    const dead = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await dead;

    const { runner } = await restart();
    const started = runner.recorded(second);
    assert.equal(started?.state, 'cancelled');
    assert.match(String(started?.error), /it was still running and was killed when Herald started again$/);
    assert.ok(await gone(sleep), 'the row written at its acceptance was replaced at its launch, with its pid');
  });
});
