/**
 * What a run leaves behind: a child that stays in the program's process group
 * with its output closed dies with the run, a properly detached one (setsid,
 * output closed) is left running as documented; and output past the cap,
 * which is dropped, is read at a trickle, so a program that keeps writing
 * waits on its pipe instead of keeping Herald busy. Real processes.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { DROPPED_OUTPUT_READ_MS } from '../src/server/commands/runner.js';
import { gone, makeRig, processAlive, within, type Rig } from './commands-fixture.js';

/** Pids of the processes this test process started whose command name is `comm`. */
function ourChildrenNamed(comm: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === process.pid && stat.slice(stat.indexOf('(') + 1, close) === comm) found.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Bytes the process has written so far (/proc/<pid>/io, `wchar`). */
function written(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  return Number(/^wchar: (\d+)$/m.exec(io)?.[1]);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('what a run leaves behind', () => {
  let rig: Rig | undefined;
  const strays: number[] = [];
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
    for (const pid of strays.splice(0)) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  });

  it('kills a child the program left in its process group with its output closed when the run ends', async () => {
    rig = await makeRig({ commandsAllow: ['sh'] });
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 300 </dev/null >/dev/null 2>&1 & echo $!'], door: 'http' });
    const done = await within(rig.runner.wait(info.id).then((i) => i!), 5000, 'the run');
    const child = Number(done.output.trim());
    strays.push(child);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.ok(child > 0, done.output);
    assert.ok(await gone(child), `the left-over sleep ${child} is gone`);
  });

  it('ends the run when what the program left in its group ends by itself, without waiting for the grace or signalling the free group id', async () => {
    // A grace far longer than the left-over child lives: waiting it out, the run stayed `running`
    // after everything had ended, and its SIGKILL went to whatever group had the id by then.
    rig = await makeRig({ commandsAllow: ['sh'], commandsKillGraceMs: 30_000 });
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 0.3 </dev/null >/dev/null 2>&1 & exit 0'], door: 'http' });
    const done = await within(rig.runner.wait(info.id).then((i) => i!), 15_000, 'the run to end once its group is empty');
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.equal(done.EXIT_CODE, 0);
  });

  it('leaves a process detached properly (setsid, output closed) running', async () => {
    rig = await makeRig({ commandsAllow: ['sh'] });
    // Not the leader of sh's group, setsid does not fork: $! is the sleep itself.
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!'], door: 'http' });
    const done = await within(rig.runner.wait(info.id).then((i) => i!), 5000, 'the run');
    const daemon = Number(done.output.trim());
    strays.push(daemon);
    assert.equal(done.state, 'succeeded', JSON.stringify(done));
    assert.equal(await gone(daemon, 300), false, `the detached sleep ${daemon} runs on`);
  });

  it('past the output cap reads a program that keeps writing at a trickle: what it writes stays bounded', async () => {
    rig = await makeRig({ commandsAllow: ['yes'], commandsOutputCap: 1024 });
    const runner = rig.runner;
    const info = await runner.start({ aid: 1, program: 'yes', args: [], door: 'http', timeoutSec: 60 });
    const [pid] = ourChildrenNamed('yes');
    assert.ok(pid !== undefined, 'yes is running');
    const deadline = Date.now() + 5000;
    while (runner.get(info.id)?.TRUNCATED !== true) {
      assert.ok(Date.now() < deadline, 'the output reached the cap within 5 s');
      await pause(10);
    }
    // Read as it came, `yes` writes hundreds of MB a second (GB on a fast machine). Read once
    // per DROPPED_OUTPUT_READ_MS, at most 64 KiB a read, it can write no more than those reads
    // took, plus what its pipe and the stream's buffer had room for: it spends the rest of the
    // time blocked in write().
    const t0 = Date.now();
    const from = written(pid);
    await pause(1000);
    const wrote = written(pid) - from;
    const reads = Math.ceil((Date.now() - t0) / DROPPED_OUTPUT_READ_MS) + 1;
    const most = reads * 65536 + 1024 * 1024;
    assert.ok(wrote <= most, `yes wrote ${wrote} bytes in a second past the cap (at most ${most} at ${reads} reads)`);
    const done = await within(runner.cancel(info.id), 5000, 'the cancel');
    assert.deepEqual([done.state, done.TRUNCATED, Buffer.byteLength(done.output)], ['cancelled', true, 1024]);
  });
});
