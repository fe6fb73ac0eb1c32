/**
 * RESUME frames racing a replay that is still running: the tab must still
 * see each stream once per rewind, in order, with no gap, and live
 * notifications only after the replay they would otherwise overtake.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

describe('RESUME during a replay', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ replayBatch: 10 });
  });
  after(() => s.close());

  /** Splits a list of SEQs at each rewind; every run must be consecutive. */
  function runs(seqs: number[]): number[][] {
    const out: number[][] = [];
    for (const q of seqs) {
      const cur = out[out.length - 1];
      if (cur && q === cur[cur.length - 1]! + 1) cur.push(q);
      else out.push([q]);
    }
    return out;
  }

  test('two RESUMEs sent while the first replay runs, with live sends at the same time', async () => {
    const backlog = 300;
    await Promise.all(Array.from({ length: backlog }, (_, i) => s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'R', N: i + 1 } })));
    const epoch = (await s.herald.store.head('admin:1')).epoch;
    const tab = await s.tab('admin', 1, { query: { seq: '0', epoch } });
    tab.send({ TYPE: 'RESUME', SEQ: 100, EPOCH: epoch });
    tab.send({ TYPE: 'RESUME', SEQ: 200, EPOCH: epoch });
    const live = s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'R', N: backlog + 1 } });
    await live;
    await tab.next((f) => f.SEQ === backlog + 1);
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    const seqs = tab.notifications().map((f) => f.SEQ as number);
    const r = runs(seqs);
    // Each run starts at a cursor the tab gave (1, 101 or 201) and ends at the last SEQ it was owed.
    for (const run of r) {
      assert.ok([1, 101, 201].includes(run[0]!), `a run starts after a cursor: ${JSON.stringify(r.map((x) => [x[0], x[x.length - 1]]))}`);
      assert.ok(run[run.length - 1]! >= backlog, `a run is not cut short: ${JSON.stringify(r.map((x) => [x[0], x[x.length - 1]]))}`);
    }
    assert.equal(seqs[seqs.length - 1], backlog + 1);
    tab.close();
  });
});
