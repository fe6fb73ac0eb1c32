import assert from 'node:assert/strict';
import { ChildProcess } from 'node:child_process';
import { queryObjects } from 'node:v8';
import { afterEach, describe, it } from 'node:test';
import { makeRig, type Frame, type Rig } from './commands-fixture.js';

const isFinal = (id: string) => (f: Frame) => f.COMMAND_ID === id && f.TYPE !== 'COMMAND_PROGRESS';

describe('CommandRunner history', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('keeps no ChildProcess for a finished run (each held about 4.8 KB in the history)', async () => {
    rig = await makeRig({ commandsAllow: ['echo'], commandsHistory: 100 });
    const tab = rig.tab(1);
    // queryObjects collects garbage first: only what something still holds is counted.
    const before = queryObjects(ChildProcess, { format: 'count' }) as number;
    const runs = 8;
    for (let i = 0; i < runs; i++) {
      const info = await rig.runner.start({ aid: 1, program: 'echo', args: [String(i)], timeoutSec: 5, door: 'http', requestedBy: 'test' });
      await tab.next(isFinal(info.id));
      assert.equal(rig.runner.get(info.id)?.state, 'succeeded');
    }
    // Let the children's last events (close of the pipes) run out.
    await new Promise((resolve) => setImmediate(resolve));
    const after = queryObjects(ChildProcess, { format: 'count' }) as number;
    assert.ok(after - before < runs, `${after - before} ChildProcess objects are still held after ${runs} finished runs`);
  });
});
