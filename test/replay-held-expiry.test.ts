/**
 * "An expired notification is never delivered" (docs/delivery.md,
 * Time-to-live and the cap), also one published while the tab was replaying.
 * Such a notification is held and sent after the replay; the replay's own
 * pages are read against the clock, the held frames were sent without a look
 * at their expiry: a replay paced by a slow link delivered one long after its
 * TTL ended.
 */
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { heldReadStore } from './helpers/held-read-store.js';
import { startHerald } from './helpers/server.js';

test('a notification held during a replay whose TTL ended meanwhile is not sent; one still within its TTL is', async () => {
  const held = heldReadStore('admin:5');
  const s = await startHerald({ pruneIntervalMs: 0 }, { store: held.store });
  try {
    const send = (title: string, ttl: number) => s.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: 'MESSAGE', TITLE: title }, ttl });
    assert.equal((await send('before', 3600)).status, 200);
    const tab = await s.tab('admin', 5);
    try {
      await held.reached;
      // Sent while the replay reads: held for the tab.
      const short = await send('short-lived', 0.2);
      assert.equal(short.body.delivered, 1, JSON.stringify(short.body));
      const sentAt = Date.now();
      assert.equal((await send('after', 3600)).status, 200);
      // Past the short one's expiry (200 ms after the server stamped it, before `sentAt`).
      await delay(sentAt + 400 - Date.now());
      held.release();
      await tab.next((f) => f?.TITLE === 'after');
      assert.deepEqual(tab.notifications().map((f) => f.TITLE), ['before', 'after']);
    } finally {
      tab.close();
    }
  } finally {
    await s.close();
  }
});
