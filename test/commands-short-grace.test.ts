/**
 * A short commandsKillGraceMs (0 is allowed) is how long a program has after
 * SIGTERM, not how long a killed group's output has to reach its end: Herald
 * waits at least CUT_LOOSE_AFTER_KILL_MS for that before it stops reading
 * the output and calls something left running. With the grace as that wait,
 * runs were cut loose before their pipes' end arrived (past the output cap
 * the pipes are read only every 10 ms), reported as leaving a process
 * running, with a warning, and a stopped run lost its SIGNAL. Real processes.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { makeRig, within, type Frame, type Rig } from './commands-fixture.js';

const isFinal = (id: string) => (f: Frame) => f.COMMAND_ID === id && f.TYPE === 'MESSAGE';
const LEFT_RUNNING = /left running/;

describe('commandsKillGraceMs 0', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  function leftRunningWarnings(r: Rig): Frame[] {
    return r.logs.filter((l) => /left its process group/.test(String(l.msg)));
  }

  it('does not call a program that wrote past the output cap and exited a run that left something running', async () => {
    const r = (rig = await makeRig({ commandsAllow: ['sh'], commandsKillGraceMs: 0, commandsOutputCap: 1024 }));
    const tab = r.tab(1);
    for (let i = 0; i < 10; i++) {
      const info = await r.runner.start({ aid: 1, program: 'sh', args: ['-c', "head -c 200000 /dev/zero | tr '\\0' x; echo END"], door: 'http' });
      const done = await within(r.runner.wait(info.id), 20_000, 'the run');
      const final = await tab.next(isFinal(info.id));
      assert.deepEqual([done?.state, done?.TRUNCATED, done?.output.length], ['succeeded', true, 1024], `run ${i}`);
      assert.doesNotMatch(String(final.TEXT), LEFT_RUNNING, `run ${i}: ${String(final.TEXT).slice(-120)}`);
    }
    assert.deepEqual(leftRunningWarnings(r), []);
  });

  it('reports the signal that ended a timed-out or cancelled program, and nothing left running', async () => {
    const r = (rig = await makeRig({ commandsAllow: ['sleep'], commandsKillGraceMs: 0 }));
    const tab = r.tab(1);
    for (let i = 0; i < 5; i++) {
      const timedOut = await r.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http', timeoutSec: 0.2 });
      const cancelled = await r.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
      const ends = [
        await within(r.runner.wait(timedOut.id), 10_000, 'the timeout'),
        await within(r.runner.cancel(cancelled.id), 10_000, 'the cancel'),
      ];
      assert.deepEqual(ends.map((e) => e?.state), ['timed_out', 'cancelled'], `round ${i}`);
      for (const end of ends) {
        // SIGTERM, or SIGKILL when it came before sleep had its default handler back (exec): a signal, not null.
        assert.match(String(end?.SIGNAL), /^SIG(TERM|KILL)$/, `round ${i}: ${JSON.stringify(end)}`);
        assert.doesNotMatch(String((await tab.next(isFinal(end?.id ?? ''))).TEXT), LEFT_RUNNING, `round ${i}`);
      }
    }
    assert.deepEqual(leftRunningWarnings(r), []);
  });
});
