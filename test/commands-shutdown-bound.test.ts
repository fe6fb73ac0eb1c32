/**
 * close(graceMs) is bounded by graceMs plus the short wait after its SIGKILL
 * (CUT_LOOSE_AFTER_KILL_MS, 1 s), whatever commandsKillGraceMs: with a
 * shutdown grace as long as the kill grace or longer, it used to wait for
 * each run's own chain (SIGTERM, the kill grace, SIGKILL, another grace, cut
 * loose), up to twice the kill grace. A run whose output a process outside
 * its group still holds is cut loose then, and still gets its audit record
 * and its notification (docs/commands.md, Shutdown). Real processes.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import { gone, makeRig, processesRunning, processesShown, within, type Frame } from './commands-fixture.js';

it('a shutdown as long as the kill grace cuts loose a run whose output a process outside its group holds when its grace ends, recorded and notified', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-shutdown-bound-'));
  const file = join(dir, 'audit.sqlite');
  const KILL_GRACE_MS = 8000;
  // The process left holding the output ends by itself after close(KILL_GRACE_MS) has cut the
  // run loose (its grace, then 1 s) and before twice the kill grace: waited for, the run would
  // have ended with its output, not cut loose. Its sleep starts with the run, so the time until
  // close() is called comes off the first margin: 6.5 s of it (with a 5 s grace it was 3.5 s, which a loaded
  // full run took up, and the run ended with its output).
  const leftover = ['sleep', '15.4718'];
  const rig = await makeRig({ commandsAllow: ['sh'], commandsKillGraceMs: KILL_GRACE_MS }, { audit: new SqliteCommandAudit(file, 1000) });
  try {
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', `setsid ${leftover.join(' ')} & echo started; exec sleep 30`], door: 'http' });
    await tab.next((f) => f.COMMAND_ID === info.id && String(f.OUTPUT ?? '').includes('started'));
    await within(rig.runner.close(KILL_GRACE_MS), 20_000, 'close');
    const final = await tab.next((f: Frame) => f.COMMAND_ID === info.id && f.TYPE === 'MESSAGE');
    assert.match(String(final.TEXT), /\[cancelled: server shutting down\]/);
    assert.match(String(final.TEXT), /left running/, 'cut loose when the shutdown\'s grace and its short wait ended, not waited for');
    assert.equal(rig.logs.filter((l) => l.id === info.id && /left its process group/.test(String(l.msg))).length, 1);
    const reopened = new SqliteCommandAudit(file, 1000);
    try {
      const rec = reopened.finished(info.id);
      assert.deepEqual([rec?.state, rec?.error], ['cancelled', 'server shutting down']);
    } finally {
      reopened.close();
    }
  } finally {
    for (const pid of await processesShown(leftover, 1000)) process.kill(pid, 'SIGKILL');
    await rig.close();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const pid of processesRunning(leftover)) assert.ok(await gone(pid));
});
