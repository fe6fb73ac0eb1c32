/**
 * End to end: real `ws` tabs against a real Herald whose sql resolver reads
 * the ABillS session tables in the real MariaDB and PostgreSQL, and in a
 * private PostgreSQL of our own that the test stops and starts again.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { PrivatePostgres } from './helpers/private-postgres.js';
import { startAuthHerald, within, type AuthHerald } from './helpers/auth-herald.js';

const RECHECK_MS = 200;

describe('sql resolver end to end, abills preset on MariaDB', () => {
  let skipReason: string | undefined;
  let db: Awaited<ReturnType<typeof createMariadbSessions>>;
  let h: AuthHerald;
  const sids = { admin7: 'a7f3c0ffee00112233445566', admin9: 'a9b4deadbeef99887766', user42: 'u42c5aa55aa55aa55', gone: 'a12ffee1234abcd' };

  before(async () => {
    skipReason = await requireService('mariadb');
    if (skipReason) return;
    db = await createMariadbSessions();
    await db.admin.query('INSERT INTO web_online (sid, aid) VALUES (?, 7), (?, 9), (?, 12)', [sids.admin7, sids.admin9, sids.gone]);
    await db.admin.query('INSERT INTO web_users_sessions (sid, uid) VALUES (?, 42)', [sids.user42]);
    h = await startAuthHerald({ authResolver: 'sql', sqlUrl: db.url, sessionRecheckMs: RECHECK_MS });
  });
  after(async () => {
    if (skipReason) return;
    await h.close();
    await db.drop();
  });

  test('the sid cookie admits the right admin', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tab = await h.open('admin', { headers: { cookie: `lang=ru; sid=${sids.admin7}` } });
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.KIND, 'admin');
    assert.equal(welcome.ID, 7);
    tab.close();
  });

  test('the ADMINSID header admits the right admin', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tab = await h.open('admin', { headers: { ADMINSID: sids.admin9 } });
    assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['admin', 9]);
    tab.close();
  });

  test('the USERSID header admits the right user', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tab = await h.open('user', { headers: { USERSID: sids.user42 } });
    assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['user', 42]);
    tab.close();
  });

  test('a wrong or missing sid is refused with 401 before the upgrade', async (t) => {
    if (skipReason) return t.skip(skipReason);
    assert.equal(await h.status('admin', { headers: { cookie: 'sid=not-a-session' } }), 401);
    assert.equal(await h.status('admin', { headers: { ADMINSID: 'not-a-session' } }), 401);
    assert.equal(await h.status('admin'), 401);
    // A user's session does not open the admin endpoint.
    assert.equal(await h.status('admin', { headers: { ADMINSID: sids.user42 } }), 401);
  });

  test('deleting the session row closes its tab with 4401 "session ended" within the re-check interval', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const tabs = [await h.open('admin', { headers: { cookie: `sid=${sids.gone}` } }), await h.open('admin', { headers: { ADMINSID: sids.gone } })];
    for (const tab of tabs) await tab.nextOfType('WELCOME');
    const other = await h.open('admin', { headers: { cookie: `sid=${sids.admin7}` } });
    await other.nextOfType('WELCOME');
    const t0 = Date.now();
    await db.admin.query('DELETE FROM web_online WHERE sid = ?', [sids.gone]);
    for (const tab of tabs) {
      const closed = await within(tab.closed, RECHECK_MS * 2 + 1000, 'the tab to close');
      assert.deepEqual(closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
      const closeFrame = tab.frames.find((f) => f?.TYPE === 'close');
      assert.equal(closeFrame?.REASON, CloseReason.SESSION_ENDED, 'a {"TYPE":"close","REASON":"session ended"} frame precedes the close');
    }
    assert.ok(Date.now() - t0 < RECHECK_MS * 2 + 1000);
    // The other admin's tab is untouched, and the ended session cannot come back.
    assert.equal(other.ws.readyState, other.ws.OPEN);
    assert.equal(await h.status('admin', { headers: { cookie: `sid=${sids.gone}` } }), 401);
    other.close();
  });

  test('no session id ever reaches the log', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const log = h.log();
    assert.match(log, /handshake refused/);
    for (const sid of Object.values(sids)) assert.ok(!log.includes(sid), `the log contains a session id`);
  });
});

describe('sql resolver end to end, PostgreSQL', () => {
  let skipReason: string | undefined;
  let db: Awaited<ReturnType<typeof createPostgresSessions>>;

  before(async () => {
    skipReason = await requireService('postgres');
    if (skipReason) return;
    db = await createPostgresSessions();
    await db.admin.query('INSERT INTO web_online (sid, aid) VALUES ($1, 3), ($2, 4)', ['pg-admin-3-session', 'pg-burst-session']);
    await db.admin.query('INSERT INTO web_users_sessions (sid, uid) VALUES ($1, 77)', ['pg-user-77-session']);
  });
  after(async () => {
    if (!skipReason) await db.drop();
  });

  test('abills preset with $1: the sid cookie and the USERSID header admit', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = await startAuthHerald({ authResolver: 'sql', sqlUrl: db.url });
    try {
      const admin = await h.open('admin', { headers: { cookie: 'sid=pg-admin-3-session' } });
      assert.deepEqual(await admin.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['admin', 3]);
      const user = await h.open('user', { headers: { USERSID: 'pg-user-77-session' } });
      assert.deepEqual(await user.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['user', 77]);
      assert.equal(await h.status('user', { headers: { USERSID: 'pg-admin-3-session' } }), 401);
    } finally {
      await h.close();
    }
  });

  test('a burst of 50 connections for one session makes exactly one query', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = await startAuthHerald({
      authResolver: 'sql', sqlUrl: db.url, sqlPreset: 'custom', sqlAdminQuery: 'SELECT counted_aid($1)', sqlAdminCookie: 'sid',
      authCacheMs: 10_000, sessionRecheckMs: 0,
    });
    try {
      const before = await db.lookups();
      const tabs = await Promise.all(Array.from({ length: 50 }, () => h.open('admin', { headers: { cookie: 'sid=pg-burst-session' } })));
      const welcomes = await Promise.all(tabs.map((tab) => tab.nextOfType('WELCOME')));
      assert.ok(welcomes.every((w) => w.KIND === 'admin' && w.ID === 4));
      assert.equal((await db.lookups()) - before, 1);
    } finally {
      await h.close();
    }
  });
});

describe('sql resolver end to end, our own PostgreSQL stopped and started', () => {
  let server: PrivatePostgres | undefined;
  let skipReason: string | undefined;
  let url = '';

  before(async () => {
    server = await PrivatePostgres.create();
    if (!server) {
      skipReason = 'no PostgreSQL binaries under /usr/lib/postgresql';
      if (process.env.CI === 'true') throw new Error(skipReason);
      return;
    }
    const db = await createPostgresSessions(server.url);
    await db.admin.query('INSERT INTO web_online (sid, aid) VALUES ($1, 21)', ['private-pg-session-21']);
    await db.admin.end();
    url = db.url;
  });
  after(async () => {
    await server?.destroy();
  });

  test('a stopped database yields 503 (not 401), open tabs stay, and recovery admits again', async (t) => {
    if (skipReason || !server) return t.skip(skipReason ?? "the private PostgreSQL did not start");
    const h = await startAuthHerald({ authResolver: 'sql', sqlUrl: url, sqlTimeoutMs: 1000, authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 60_000 });
    // Rounds are run by hand below (checkNow), so none races the stop.
    try {
      const cookie = 'sid=private-pg-session-21';
      const open = await h.open('admin', { headers: { cookie } });
      assert.equal((await open.nextOfType('WELCOME')).ID, 21);

      await server.stop();
      assert.equal(await h.status('admin', { headers: { cookie } }), 503);
      assert.equal(await h.status('admin', { headers: { cookie: 'sid=whatever' } }), 503);
      // A re-check round that cannot reach the database leaves the tab open.
      const round = await h.herald.watcher!.checkNow();
      assert.equal(round.unavailable, 1);
      assert.equal(round.closedTabs, 0);
      assert.equal(open.ws.readyState, open.ws.OPEN);

      await server.start();
      const again = await h.open('admin', { headers: { cookie } });
      assert.equal((await again.nextOfType('WELCOME')).ID, 21);
      assert.equal(await h.status('admin', { headers: { cookie: 'sid=whatever' } }), 401);
      assert.ok(!h.log().includes('private-pg-session-21'));
    } finally {
      await h.close();
    }
  });
});
