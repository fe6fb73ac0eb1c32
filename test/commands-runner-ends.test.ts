/**
 * How a run ends at the edges of its program's life: a cancel that crosses
 * the program's own end, and a program that leaves a process behind outside
 * its process group, still holding its output.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, it } from 'node:test';
import { gone, makeRig, processesRunning, processesShown, within, type Frame, type Rig } from './commands-fixture.js';

const isFinal = (id: string) => (f: Frame) => f.COMMAND_ID === id && f.TYPE !== 'COMMAND_PROGRESS';

/** Processes whose parent is this test process: pid, command name, state (from /proc/<pid>/stat). */
function ourChildren(): Array<{ pid: number; comm: string; state: string }> {
  const found: Array<{ pid: number; comm: string; state: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(')');
    const [state, ppid] = stat.slice(close + 2).split(' ');
    if (Number(ppid) === process.pid) found.push({ pid: Number(name), comm: stat.slice(stat.indexOf('(') + 1, close), state: state ?? '' });
  }
  return found;
}

describe('CommandRunner at the end of a program', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('answers a cancel that arrives after the program exited, but before Node reported it, with the program\'s own outcome', async () => {
    rig = await makeRig({ commandsAllow: ['true'] });
    const runner = rig.runner;
    for (let i = 0; i < 3; i++) {
      const info = await runner.start({ aid: 1, program: 'true', args: [], door: 'http' });
      // Hold the event loop (only microtasks ran since the spawn) until the kernel has the program
      // as a zombie: it has exited, and Node cannot have handled its 'exit' yet. Deterministic,
      // where the same race over the network hits 1 to 3 times in 40.
      const deadline = Date.now() + 5000;
      while (!ourChildren().some((c) => c.comm === 'true' && c.state === 'Z')) {
        assert.ok(Date.now() < deadline, 'the program did not exit within 5 s');
      }
      const done = await within(runner.cancel(info.id), 5000, 'cancel');
      assert.deepEqual([done.state, done.EXIT_CODE, done.SIGNAL, done.error], ['succeeded', 0, null, undefined]);
    }
  });

  it('still calls a program that traps SIGTERM and exits 0 on our signal cancelled', async () => {
    rig = await makeRig({ commandsAllow: ['sh'] });
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'trap "exit 0" TERM; echo ready; sleep 30 & wait'], door: 'http' });
    await tab.next((f) => f.COMMAND_ID === info.id && String(rig?.runner.get(info.id)?.output).includes('ready'));
    const done = await within(rig.runner.cancel(info.id), 5000, 'cancel');
    assert.deepEqual([done.state, done.EXIT_CODE], ['cancelled', 0]);
  });

  it('says so when a process the program started left its process group holding its output: a warning and a note in the notification', async () => {
    rig = await makeRig({ commandsAllow: ['setsid'], commandsKillGraceMs: 200 });
    const tab = rig.tab(1);
    // setsid, leading its own group as every command does, forks; the child starts a session of
    // its own (out of the group's reach) with the run's stdout, and the parent exits 0 at once.
    const argv = ['/usr/bin/sleep', '31.4159'];
    const info = await rig.runner.start({ aid: 1, program: 'setsid', args: argv, door: 'http' });
    try {
      const done = await within(rig.runner.wait(info.id), 5000, 'run with a process left outside its group');
      assert.equal(done?.state, 'succeeded', 'the program itself exited 0');
      const warned = rig.logs.filter((l) => l.level === 40 && l.id === info.id && /left its process group/.test(String(l.msg)));
      assert.equal(warned.length, 1, `one warning; logs: ${JSON.stringify(rig.logs.filter((l) => l.id === info.id))}`);
      assert.equal(warned[0]?.program, '/usr/bin/setsid');
      const final = await tab.next(isFinal(info.id));
      assert.match(String(final.TEXT), /\[a process it started still held its output at the end: left running\]/);
      // The forked child holds the output from the fork on, so on a loaded machine it may not have
      // exec'd sleep yet: look until it shows, rather than once.
      assert.equal((await processesShown(argv)).length, 1, 'the process is left running, as the warning says');
    } finally {
      // The same wait, so that a failure above leaves no sleep behind that exec'd after one scan.
      for (const pid of await processesShown(argv)) process.kill(pid, 'SIGKILL');
    }
    for (const pid of processesRunning(argv)) assert.ok(await gone(pid));
  });
});
