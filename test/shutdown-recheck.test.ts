/**
 * A shutdown during a session re-check round at a panel that stopped
 * answering. close() waited for the whole round before it told the tabs:
 * 8 look-ups at a time, each up to httpResolverTimeoutMs (or sqlTimeoutMs),
 * so 80 sessions took 30 s, past the CLI's deadline, which exited 1 with
 * no tab told and the store not closed. Now the round asks nothing more once
 * stopped, and the tabs are told while its look-ups in flight end.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { parseCookies } from '../src/server/auth/session-resolver.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import type { TestTab } from './helpers/ws-client.js';

const SESSIONS = 40;

test('a shutdown while a re-check round waits on a panel that stopped answering tells every tab at once and asks the panel nothing more', async () => {
  let hanging = false;
  let askedWhileHanging = 0;
  const held: ServerResponse[] = [];
  const panel = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (hanging) {
        askedWhileHanging++;
        held.push(res);
        return;
      }
      const sid = parseCookies(req.headers.cookie).get('panel_session') ?? '';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id: Number(sid.slice('s'.length)) }));
    });
  });
  panel.listen(0, '127.0.0.1');
  await once(panel, 'listening');
  const h = await startAuthHerald({
    authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`,
    httpResolverTimeoutMs: 3000, authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 300, maxTabsPerPerson: 0,
  });
  const tabs: TestTab[] = [];
  try {
    for (let i = 1; i <= SESSIONS; i++) {
      const tab = await h.open('admin', { headers: { cookie: `panel_session=s${i}` } });
      await tab.nextOfType('WELCOME');
      tabs.push(tab);
    }
    hanging = true;
    // A round has started and holds its look-ups at the panel.
    while (askedWhileHanging === 0) await new Promise((r) => setTimeout(r, 20));
    const closing = h.herald.close();
    const closes = await Promise.all(tabs.map((t) => t.closed));
    // Told before the round went on: at most the look-ups in flight when it stopped (8 at a time), not all 40.
    const askedWhenTold = askedWhileHanging;
    assert.deepEqual(new Set(closes.map((c) => c.code)), new Set([1001]));
    assert.ok(askedWhenTold <= 8, `${askedWhenTold} of ${SESSIONS} sessions asked before the tabs were told`);
    await closing;
    assert.ok(askedWhileHanging <= 8, `${askedWhileHanging} of ${SESSIONS} sessions asked in all after the stop`);
  } finally {
    for (const res of held) res.destroy();
    await h.close().catch(() => undefined);
    panel.closeAllConnections();
    panel.close();
  }
});
