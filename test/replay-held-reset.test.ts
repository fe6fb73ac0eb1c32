/**
 * docs/delivery.md: what is published to a tab during its replay is held and
 * sent after it, in the order it was published. When sends during the replay
 * push the stream past maxPerStream, the replay's RESET "too far behind"
 * (the gap in what it had yet to read from the store) was set at the store's
 * new oldest SEQ - 1, past the held frames: those at or below it, which
 * Herald held in memory for this open tab, were dropped silently at release.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heldReadStore } from './helpers/held-read-store.js';
import { startHerald } from './helpers/server.js';

test('the notifications published during a replay are sent after it, though the cap pushed the store past them, after a RESET at the gap', async () => {
  const held = heldReadStore('admin:5', 3);
  const s = await startHerald({ pruneIntervalMs: 0 }, { store: held.store });
  try {
    const send = (title: string) => s.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: 'MESSAGE', TITLE: title } });
    for (const title of ['old1', 'old2', 'old3']) assert.equal((await send(title)).status, 200);
    const tab = await s.tab('admin', 5);
    try {
      await held.reached;
      // While the replay reads SEQ 1..3: SEQ 4..8, held for the tab; the cap (3) drops 1..5 from the store.
      for (let i = 1; i <= 5; i++) {
        const r = await send(`live${i}`);
        assert.equal(r.body.delivered, 1, JSON.stringify(r.body));
      }
      held.release();
      await tab.next((f) => f?.TITLE === 'live5');
      const seen = tab.frames
        .filter((f) => f?.TYPE === 'RESET' || f?.TYPE === 'MESSAGE')
        .map((f) => (f.TYPE === 'RESET' ? `RESET ${f.SEQ} ${f.REASON}` : `${f.TITLE} ${f.SEQ}`));
      // What the replay had yet to send (1..3) is gone: said where the gap ends, and the held ones follow.
      assert.deepEqual(seen, ['RESET 3 too far behind', 'live1 4', 'live2 5', 'live3 6', 'live4 7', 'live5 8']);
    } finally {
      tab.close();
    }
  } finally {
    await s.close();
  }
});
