/**
 * A shutdown during a session re-check round at a panel that stopped
 * answering. close() waited for the whole round before it told the tabs:
 * 8 look-ups at a time, each up to httpResolverTimeoutMs (or sqlTimeoutMs),
 * so 80 sessions took 30 s, past the CLI's deadline, which exited 1 with
 * no tab told and the store not closed. Now the round asks nothing more once
 * stopped, and the tabs are told while its look-ups in flight end.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hangingPanel } from './helpers/hanging-panel.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import type { TestTab } from './helpers/ws-client.js';

const SESSIONS = 40;

test('a shutdown while a re-check round waits on a panel that stopped answering tells every tab at once and asks the panel nothing more', async () => {
  const panel = await hangingPanel();
  const h = await startAuthHerald({
    authResolver: 'http', httpResolverUrl: panel.url,
    httpResolverTimeoutMs: 3000, authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 300, maxTabsPerPerson: 0,
  });
  const tabs: TestTab[] = [];
  try {
    for (let i = 1; i <= SESSIONS; i++) {
      const tab = await h.open('admin', { headers: { cookie: `panel_session=s${i}` } });
      await tab.nextOfType('WELCOME');
      tabs.push(tab);
    }
    panel.hang();
    // A round has started and holds its look-ups at the panel.
    while (panel.askedWhileHanging() === 0) await new Promise((r) => setTimeout(r, 20));
    const closing = h.herald.close();
    const closes = await Promise.all(tabs.map((t) => t.closed));
    // Told before the round went on: at most the look-ups in flight when it stopped (8 at a time), not all 40.
    const askedWhenTold = panel.askedWhileHanging();
    assert.deepEqual(new Set(closes.map((c) => c.code)), new Set([1001]));
    assert.ok(askedWhenTold <= 8, `${askedWhenTold} of ${SESSIONS} sessions asked before the tabs were told`);
    await closing;
    assert.ok(panel.askedWhileHanging() <= 8, `${panel.askedWhileHanging()} of ${SESSIONS} sessions asked in all after the stop`);
  } finally {
    await h.close().catch(() => undefined);
    panel.close();
  }
});
