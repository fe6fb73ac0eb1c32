/**
 * maxTabsPerPerson: one valid credential cannot hold tabs open without end.
 * A handshake past the limit is refused before the upgrade with 429
 * HERALD_ERR_TOO_MANY_TABS (the browser library retries later); a tab that
 * closes frees a place; other people are not affected; 0 means no limit.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';

async function refusal(s: TestServer, kind: 'admin' | 'user', id: number): Promise<{ status: number; body: string }> {
  return TestTab.status(`${s.wsUrl}/ws/${kind}`, { query: { token: await s.token(kind, id) } });
}

describe('maxTabsPerPerson', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxTabsPerPerson: 3 });
  });
  after(() => s.close());

  test('the tab past the limit is refused with 429 before the upgrade; a closed tab frees its place', async () => {
    const tabs = [await s.tab('admin', 5), await s.tab('admin', 5), await s.tab('admin', 5)];
    for (const t of tabs) await t.nextOfType('WELCOME');
    const refused = await refusal(s, 'admin', 5);
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(refused.body).error.code, 'HERALD_ERR_TOO_MANY_TABS');
    assert.match(JSON.parse(refused.body).error.message, /3 tabs open \(maxTabsPerPerson\)/);
    // Others are counted apart: the same id of the other kind, and another admin.
    const user = await s.tab('user', 5);
    await user.nextOfType('WELCOME');
    const other = await s.tab('admin', 6);
    await other.nextOfType('WELCOME');
    const online = await s.api('GET', '/api/v1/online/admin/5');
    assert.equal(online.status, 200);
    tabs[0]!.close();
    await tabs[0]!.closed;
    // The closed tab left the Hub when its close began; the next handshake is admitted.
    const again = await s.tab('admin', 5);
    assert.equal((await again.nextOfType('WELCOME')).ID, 5);
    assert.equal((await refusal(s, 'admin', 5)).status, 429, 'three open again: the fourth is refused again');
  });
});

describe('maxTabsPerPerson 0', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxTabsPerPerson: 0 });
  });
  after(() => s.close());

  test('means no limit', async () => {
    const tabs = await Promise.all(Array.from({ length: 120 }, () => s.tab('user', 9)));
    await Promise.all(tabs.map((t) => t.nextOfType('WELCOME')));
    assert.equal(tabs.length, 120);
  });
});
