/**
 * PROTOCOL.md §1 on the old daemon's separate ports (19443 for admins, 19445
 * for users, any path): the panel's own credentials — the `sid` cookie or
 * `ADMINSID` header for an admin, the `USERSID` header for a user — MUST
 * admit there as on /ws/admin and /ws/user, and the port, not the path,
 * decides who may connect: an admin's credential on the user port is refused
 * with 401 before the upgrade, so no socket ever exists for it. Checked with
 * the abills SQL preset on the real MariaDB (as auth-sql-gateway.test.ts),
 * and with signed tokens, which need no database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { createMariadbSessions, requireService } from './helpers/sql-services.js';
import { TestTab, type TestTabOptions } from './helpers/ws-client.js';

/** The handshake's refusal: its status and Herald's error code, or 101 when it was upgraded. */
async function refusal(url: string, options: TestTabOptions): Promise<{ status: number; code?: string }> {
  const { status, body } = await TestTab.status(url, options);
  if (status === 101) return { status };
  return { status, code: (JSON.parse(body) as { error: { code: string } }).error.code };
}

const UNAUTHORIZED = { status: 401, code: 'HERALD_ERR_UNAUTHORIZED' };

describe("the old daemon's ports with the abills preset on MariaDB", () => {
  let skipReason: string | undefined;
  let db: Awaited<ReturnType<typeof createMariadbSessions>>;
  let h: AuthHerald;
  let adminUrl = '';
  let userUrl = '';
  let origin = '';
  const sids = { admin7: 'a7c0mpa7f3c0ffee0011', user42: 'u42c0mpa7c5aa55aa55' };
  const tabs: TestTab[] = [];
  const open = async (url: string, options: TestTabOptions) => {
    const tab = await TestTab.open(url, { origin, ...options });
    tabs.push(tab);
    return tab;
  };

  before(async () => {
    skipReason = await requireService('mariadb');
    if (skipReason) return;
    db = await createMariadbSessions();
    await db.admin.query('INSERT INTO web_online (sid, aid) VALUES (?, 7)', [sids.admin7]);
    await db.admin.query('INSERT INTO web_users_sessions (sid, uid) VALUES (?, 42)', [sids.user42]);
    // 0 turns these ports off, so they are free ports picked beforehand.
    const [adminPort, userPort] = [await restartablePort(), await restartablePort()];
    h = await startAuthHerald({ authResolver: 'sql', sqlUrl: db.url, adminPort, userPort });
    assert.deepEqual([h.herald.urls.adminPort, h.herald.urls.userPort], [adminPort, userPort]);
    adminUrl = `ws://127.0.0.1:${adminPort}`;
    userUrl = `ws://127.0.0.1:${userPort}`;
    // The panel's page, as a browser would send it.
    origin = h.herald.urls.http;
  });
  after(async () => {
    if (skipReason) return;
    for (const tab of tabs) tab.terminate();
    await h.close();
    await db.drop();
  });

  test('the admin\'s sid cookie on adminPort at any path admits that admin', async (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const path of ['/any/path?lang=ru', '/', '/ws/user']) {
      const tab = await open(`${adminUrl}${path}`, { headers: { cookie: `lang=ru; sid=${sids.admin7}; theme=dark` } });
      const welcome = await tab.nextOfType('WELCOME');
      assert.deepEqual([welcome.KIND, welcome.ID], ['admin', 7], path);
      tab.close();
    }
  });

  test('the admin\'s ADMINSID header on adminPort admits that admin', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tab = await open(`${adminUrl}/admin/`, { headers: { ADMINSID: sids.admin7 } });
    assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['admin', 7]);
    tab.close();
  });

  test('the USERSID header on userPort at / admits the user, whose tab gets what the legacy door sends that user', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tab = await open(`${userUrl}/`, { headers: { USERSID: sids.user42 } });
    assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['user', 42]);
    const legacy = await RawLegacyClient.connect(h.herald.urls.legacy!.port);
    try {
      const r = await legacy.request('{"DATA":{"TEXT":"Оплата получена","TITLE":"Платёж","TYPE":"MESSAGE"},"ID":"42","TO":"USER","TYPE":"MESSAGE"}');
      assert.deepEqual(r.answer, { TYPE: 'RESULT', RESULT: [1] });
    } finally {
      legacy.destroy();
    }
    assert.equal((await tab.nextOfType('MESSAGE')).TITLE, 'Платёж');
    tab.close();
  });

  test('an admin\'s session on userPort is refused 401 before the upgrade, whatever the path and however it is sent', async (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const path of ['/', '/ws/admin']) {
      for (const [how, headers] of [
        ['sid cookie', { cookie: `sid=${sids.admin7}` }],
        ['ADMINSID header', { ADMINSID: sids.admin7 }],
        ['as USERSID', { USERSID: sids.admin7 }],
      ] as const) {
        assert.deepEqual(await refusal(`${userUrl}${path}`, { origin, headers }), UNAUTHORIZED, `${how} at ${path}`);
      }
    }
  });

  test('a user\'s session on adminPort is refused 401 before the upgrade', async (t) => {
    if (skipReason) return t.skip(skipReason);
    for (const [how, headers] of [
      ['USERSID header', { USERSID: sids.user42 }],
      ['as the sid cookie', { cookie: `sid=${sids.user42}` }],
      ['as ADMINSID', { ADMINSID: sids.user42 }],
    ] as const) {
      assert.deepEqual(await refusal(`${adminUrl}/ws/user`, { origin, headers }), UNAUTHORIZED, how);
    }
  });
});

describe("the old daemon's ports with signed tokens", () => {
  let s: TestServer;
  let adminUrl = '';
  let userUrl = '';

  before(async () => {
    const [adminPort, userPort] = [await restartablePort(), await restartablePort()];
    s = await startHerald({ adminPort, userPort });
    adminUrl = `ws://127.0.0.1:${adminPort}`;
    userUrl = `ws://127.0.0.1:${userPort}`;
  });
  after(() => s?.close());

  test('a user\'s token on userPort at / admits the user', async () => {
    const tab = await TestTab.open(`${userUrl}/`, { origin: s.url, query: { token: await s.token('user', 42) } });
    try {
      assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['user', 42]);
    } finally {
      tab.close();
    }
  });

  test('an admin\'s token on userPort, and a user\'s on adminPort, are refused 401 before the upgrade', async () => {
    const admin = await s.token('admin', 7);
    const user = await s.token('user', 42);
    for (const path of ['/', '/ws/admin']) {
      assert.deepEqual(await refusal(`${userUrl}${path}`, { origin: s.url, query: { token: admin } }), UNAUTHORIZED, `admin token at ${path}`);
    }
    assert.deepEqual(await refusal(`${adminUrl}/ws/user`, { origin: s.url, query: { token: user } }), UNAUTHORIZED, 'user token on adminPort');
    // The same tokens are good ones: each opens its own port.
    assert.equal((await TestTab.status(`${adminUrl}/`, { origin: s.url, query: { token: admin } })).status, 101);
    assert.equal((await TestTab.status(`${userUrl}/ws/admin`, { origin: s.url, query: { token: user } })).status, 101);
  });
});
