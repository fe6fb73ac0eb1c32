/**
 * commandsCwd removed (a temporary-file cleaner, a redeploy) or replaced after start-up. The
 * system's spawn error names the program (`spawn /usr/bin/sleep ENOENT`), which is there: the
 * run's error, and so its admin's text, says what is missing instead. Herald does not make the
 * directory again (docs/commands.md).
 */
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { makeRig } from './commands-fixture.js';

describe('the commands\' working directory gone after start-up', () => {
  it('a run fails saying the working directory is gone, not that the program is missing', async () => {
    const rig = await makeRig({ commandsAllow: ['sleep'] });
    try {
      const tab = rig.tab(7);
      rmSync(rig.cwd, { recursive: true, force: true });
      const info = await rig.runner.start({ aid: 7, program: 'sleep', args: ['0'], door: 'http' });
      const done = await rig.runner.wait(info.id);
      const said = `the working directory ${rig.cwd} is gone (commandsCwd)`;
      assert.deepEqual([done?.state, done?.error], ['failed', said]);
      const final = await tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === info.id);
      assert.equal(final.TEXT, `[could not run: ${said}]`);
      const warned = rig.logs.find((l) => l.level === 40 && l.id === info.id && l.cwd === rig.cwd);
      assert.equal(warned?.err, `spawn ${info.path} ENOENT`, 'the system\'s message is in the log');
      assert.equal(existsSync(rig.cwd), false, 'not made again');
    } finally {
      await rig.close();
    }
  });

  it('a file in its place: the working directory is no longer a directory', async () => {
    const rig = await makeRig({ commandsAllow: ['sleep'] });
    try {
      rmSync(rig.cwd, { recursive: true, force: true });
      writeFileSync(rig.cwd, '');
      const info = await rig.runner.start({ aid: 7, program: 'sleep', args: ['0'], door: 'http' });
      const done = await rig.runner.wait(info.id);
      assert.deepEqual([done?.state, done?.error], ['failed', `the working directory ${rig.cwd} is no longer a directory (commandsCwd)`]);
    } finally {
      await rig.close();
    }
  });
});
