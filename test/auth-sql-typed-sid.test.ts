/**
 * A panel on PostgreSQL may keep its session ids in a typed column (uuid,
 * bigint). PostgreSQL then refuses a session id that is not of that type
 * with an error instead of "no row" (MySQL converts and finds no row), and a
 * garbage cookie must still be "refused" (401: the browser stops), not
 * "unavailable" (503: it retries for ever, each retry another query and
 * another "database unavailable" warning). An error of the query itself
 * must stay "unavailable": refusing then would log everybody out.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createSqlPool, type SqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver } from '../src/server/auth/sql-resolver.js';
import { parseCookies, type Handshake } from '../src/server/auth/session-resolver.js';
import { createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald } from './helpers/auth-herald.js';

const SESSION = '6f1c1a52-3a1e-4d1b-9a55-0d7a3f4d2b11';

function handshake(cookie: string): Handshake {
  return { kind: 'admin', headers: { cookie }, cookies: parseCookies(cookie), query: new URLSearchParams(), remoteAddress: '127.0.0.1' };
}

describe('sql resolver on PostgreSQL, session ids in typed columns', () => {
  let skipReason: string | undefined;
  let db: Awaited<ReturnType<typeof createPostgresSessions>>;
  let pool: SqlPool;
  const chunks: string[] = [];
  const logger = pino({ level: 'trace' }, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }));

  before(async () => {
    skipReason = await requireService('postgres');
    if (skipReason) return;
    db = await createPostgresSessions();
    await db.admin.query('CREATE TABLE uuid_sessions (sid UUID PRIMARY KEY, aid INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 0)');
    await db.admin.query('CREATE TABLE number_sessions (sid BIGINT PRIMARY KEY, aid INTEGER NOT NULL)');
    await db.admin.query('INSERT INTO uuid_sessions (sid, aid) VALUES ($1, 7)', [SESSION]);
    await db.admin.query('INSERT INTO number_sessions (sid, aid) VALUES (123456789, 8)');
    pool = createSqlPool(db.url, { size: 2, timeoutMs: 2000 });
  });
  after(async () => {
    if (skipReason) return;
    await pool.close();
    await db.drop();
  });

  const resolverFor = (query: string) => new SqlResolver({ pool, lookups: { admin: { query, cookie: 'sid', header: '' } }, logger });

  test('a session id that is not a uuid is refused, not "unavailable"; a real one admits', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = resolverFor('SELECT aid FROM uuid_sessions WHERE sid = $1');
    assert.deepEqual((await r.resolve(handshake(`sid=${SESSION}`))).outcome, 'admitted');
    for (const sid of ['not-a-uuid-at-all', '123', `${SESSION}0`]) {
      assert.deepEqual(await r.resolve(handshake(`sid=${sid}`)), { outcome: 'refused', reason: 'malformed session id' }, sid);
    }
    // Cast explicitly in the query: the same.
    const cast = resolverFor('SELECT aid FROM uuid_sessions WHERE sid = CAST($1 AS uuid)');
    assert.equal((await cast.resolve(handshake('sid=nope-nope'))).outcome, 'refused');
  });

  test('a session id out of a bigint column\'s range, or not a number, is refused', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = resolverFor('SELECT aid FROM number_sessions WHERE sid = $1');
    assert.deepEqual((await r.resolve(handshake('sid=123456789'))).outcome, 'admitted');
    assert.equal((await r.resolve(handshake('sid=99999999999999999999999'))).outcome, 'refused');
    assert.equal((await r.resolve(handshake('sid=12345abc'))).outcome, 'refused');
  });

  test('an error of the query itself stays "unavailable", and no session id reaches the log', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const r = resolverFor('SELECT aid / n FROM uuid_sessions WHERE sid::text = $1');
    assert.equal((await r.resolve(handshake(`sid=${SESSION}`))).outcome, 'unavailable');
    const text = chunks.join('');
    for (const sid of [SESSION, 'not-a-uuid-at-all', '12345abc']) assert.ok(!text.includes(sid), `log contains ${sid}`);
  });

  test('end to end: a garbage sid cookie is 401 before the upgrade, not 503', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const h = await startAuthHerald({
      authResolver: 'sql', sqlUrl: db.url, sqlPreset: 'custom', sqlAdminQuery: 'SELECT aid FROM uuid_sessions WHERE sid = $1', sqlAdminCookie: 'sid',
      sessionRecheckMs: 0,
    });
    try {
      assert.equal(await h.status('admin', { headers: { cookie: 'sid=garbage-session-id' } }), 401);
      assert.equal(await h.status('admin', { headers: { cookie: `sid=${SESSION}` } }), 101);
      assert.ok(!h.log().includes('garbage-session-id'));
    } finally {
      await h.close();
    }
  });
});
