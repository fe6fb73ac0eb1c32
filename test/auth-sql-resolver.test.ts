/**
 * The sql resolver against the real MariaDB and PostgreSQL (SERVICES.md):
 * the abills preset's cookie and headers, custom queries, refusals, an
 * unreachable database, and the cache's one-query-per-burst promise counted
 * at the server itself.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadOptions } from '../src/server/options.js';
import { createSessionResolver } from '../src/server/auth/index.js';
import { CachedResolver } from '../src/server/auth/cached-resolver.js';
import { createSqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver, abillsLookups, checkQuery } from '../src/server/auth/sql-resolver.js';
import { parseCookies, type Handshake, type SessionResolver } from '../src/server/auth/session-resolver.js';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';

function handshake(kind: 'admin' | 'user', headers: Record<string, string> = {}): Handshake {
  return { kind, headers, cookies: parseCookies(headers.cookie), query: new URLSearchParams(), remoteAddress: '127.0.0.1' };
}

function capturingLogger(): { logger: pino.Logger; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return { logger: pino({ level: 'trace' }, stream), text: () => chunks.join('') };
}

const dialects = [
  { name: 'MariaDB', service: 'mariadb' as const, create: createMariadbSessions, insertAdmin: 'INSERT INTO web_online (sid, aid) VALUES (?, ?)', insertUser: 'INSERT INTO web_users_sessions (sid, uid) VALUES (?, ?)', del: 'DELETE FROM web_online WHERE sid = ?' },
  { name: 'PostgreSQL', service: 'postgres' as const, create: createPostgresSessions, insertAdmin: 'INSERT INTO web_online (sid, aid) VALUES ($1, $2)', insertUser: 'INSERT INTO web_users_sessions (sid, uid) VALUES ($1, $2)', del: 'DELETE FROM web_online WHERE sid = $1' },
];

for (const d of dialects) {
  describe(`sql resolver, abills preset, ${d.name}`, () => {
    let skipReason: string | undefined;
    let db: Awaited<ReturnType<typeof d.create>>;
    let resolver: SessionResolver;
    const log = capturingLogger();
    const run = async (sql: string, params: unknown[]) => {
      // Both clients take (sql, params); the shapes of their answers differ and do not matter here.
      await (db.admin as unknown as { query(s: string, p: unknown[]): Promise<unknown> }).query(sql, params);
    };

    before(async () => {
      skipReason = await requireService(d.service);
      if (skipReason) return;
      db = await d.create();
      await run(d.insertAdmin, ['adminsid-7-aaaaaaaa', 7]);
      await run(d.insertAdmin, ['adminsid-9-bbbbbbbb', 9]);
      await run(d.insertUser, ['usersid-42-cccccccc', 42]);
      const options = loadOptions({ env: {}, overrides: { authResolver: 'sql', sqlUrl: db.url, authCacheMs: 0, authNegativeCacheMs: 0 } });
      resolver = createSessionResolver(options, log.logger);
    });
    after(async () => {
      if (skipReason) return;
      await resolver.close();
      await db.drop();
    });

    test('admits an admin by the sid cookie', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const r = await resolver.resolve(handshake('admin', { cookie: 'lang=en; sid=adminsid-7-aaaaaaaa' }));
      assert.equal(r.outcome, 'admitted');
      assert.deepEqual(r.outcome === 'admitted' && r.principal, { kind: 'admin', id: 7 });
    });

    test('admits an admin by the ADMINSID header, which wins over the cookie', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const r = await resolver.resolve(handshake('admin', { adminsid: 'adminsid-9-bbbbbbbb', cookie: 'sid=adminsid-7-aaaaaaaa' }));
      assert.deepEqual(r.outcome === 'admitted' && r.principal, { kind: 'admin', id: 9 });
    });

    test('admits a user by the USERSID header; the admin sid cookie does not admit a user', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const r = await resolver.resolve(handshake('user', { usersid: 'usersid-42-cccccccc' }));
      assert.deepEqual(r.outcome === 'admitted' && r.principal, { kind: 'user', id: 42 });
      const viaCookie = await resolver.resolve(handshake('user', { cookie: 'sid=usersid-42-cccccccc' }));
      assert.deepEqual(viaCookie, { outcome: 'refused', reason: 'no session id' });
    });

    test('refuses an unknown sid, a missing sid and an injection attempt', async (t) => {
      if (skipReason) return t.skip(skipReason);
      assert.equal((await resolver.resolve(handshake('admin', { cookie: 'sid=nope' }))).outcome, 'refused');
      assert.equal((await resolver.resolve(handshake('admin', {}))).outcome, 'refused');
      // Parameterised: the quote is just part of a sid that matches no row.
      assert.equal((await resolver.resolve(handshake('admin', { adminsid: "x'OR'1'='1" }))).outcome, 'refused');
      // An admin's session id does not open the user endpoint (other table).
      assert.equal((await resolver.resolve(handshake('user', { usersid: 'adminsid-7-aaaaaaaa' }))).outcome, 'refused');
    });

    test('a deleted session is refused on re-check', async (t) => {
      if (skipReason) return t.skip(skipReason);
      await run(d.insertAdmin, ['adminsid-11-dddddddd', 11]);
      assert.equal((await resolver.recheck('admin', 'adminsid-11-dddddddd')).outcome, 'admitted');
      await run(d.del, ['adminsid-11-dddddddd']);
      assert.equal((await resolver.recheck('admin', 'adminsid-11-dddddddd')).outcome, 'refused');
    });

    test('session ids never reach the log', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const text = log.text();
      for (const sid of ['adminsid-7-aaaaaaaa', 'adminsid-9-bbbbbbbb', 'usersid-42-cccccccc', 'adminsid-11-dddddddd']) assert.ok(!text.includes(sid), `log contains ${sid}`);
    });
  });
}

describe('sql resolver: failures and configuration', () => {
  test('an unreachable database is "unavailable", never "refused", and the log holds no sid', async () => {
    const log = capturingLogger();
    for (const url of ['mysql://root@127.0.0.1:1/x', 'postgres://postgres@127.0.0.1:1/x']) {
      const pool = createSqlPool(url, { size: 1, timeoutMs: 1000 });
      const resolver = new SqlResolver({ pool, lookups: abillsLookups(pool.dialect), logger: log.logger });
      const r = await resolver.resolve(handshake('admin', { cookie: 'sid=secret-session-id-1234' }));
      assert.equal(r.outcome, 'unavailable', url);
      await resolver.close();
    }
    assert.match(log.text(), /database unavailable/);
    assert.ok(!log.text().includes('secret-session-id-1234'));
  });

  test('a query slower than sqlTimeoutMs is "unavailable", and the pool still works afterwards', async (t) => {
    const cases = [
      { service: 'mariadb' as const, create: createMariadbSessions, slow: 'SELECT aid FROM web_online WHERE sid = ? AND SLEEP(1) = 0', fast: 'SELECT aid FROM web_online WHERE sid = ?', insert: 'INSERT INTO web_online (sid, aid) VALUES (?, 3)' },
      { service: 'postgres' as const, create: createPostgresSessions, slow: 'SELECT aid FROM web_online, pg_sleep(1) WHERE sid = $1', fast: 'SELECT aid FROM web_online WHERE sid = $1', insert: 'INSERT INTO web_online (sid, aid) VALUES ($1, 3)' },
    ];
    for (const c of cases) {
      const skipReason = await requireService(c.service);
      if (skipReason) return t.skip(skipReason);
      const db = await c.create();
      try {
        await (db.admin as unknown as { query(s: string, p: unknown[]): Promise<unknown> }).query(c.insert, ['slow-session-3']);
        const pool = createSqlPool(db.url, { size: 1, timeoutMs: 300 });
        const slow = new SqlResolver({ pool, lookups: { admin: { query: c.slow, cookie: 'sid', header: '' } } });
        const t0 = Date.now();
        assert.equal((await slow.resolve(handshake('admin', { cookie: 'sid=slow-session-3' }))).outcome, 'unavailable', c.service);
        assert.ok(Date.now() - t0 < 2000, `${c.service} answered after ${Date.now() - t0} ms`);
        const fast = new SqlResolver({ pool, lookups: { admin: { query: c.fast, cookie: 'sid', header: '' } } });
        assert.equal((await fast.resolve(handshake('admin', { cookie: 'sid=slow-session-3' }))).outcome, 'admitted', c.service);
        await pool.close();
      } finally {
        await db.drop();
      }
    }
  });

  test('queries must have exactly one parameter in their dialect', () => {
    assert.throws(() => checkQuery('mysql', 'admin', 'SELECT aid FROM t'), /exactly one \?/);
    assert.throws(() => checkQuery('mysql', 'admin', 'SELECT aid FROM t WHERE a = ? AND b = ?'), /exactly one \?/);
    assert.throws(() => checkQuery('postgres', 'user', 'SELECT uid FROM t WHERE a = ?'), /\$1/);
    assert.throws(() => checkQuery('postgres', 'user', 'SELECT uid FROM t WHERE a = $1 AND b = $2'), /\$1/);
    checkQuery('postgres', 'user', 'SELECT uid FROM t WHERE a = $1');
    checkQuery('mysql', 'user', 'SELECT uid FROM t WHERE a = ?');
  });

  test('options: sql needs a database URL, custom needs a query', () => {
    assert.throws(() => loadOptions({ env: {}, overrides: { authResolver: 'sql' } }), /sqlUrl/);
    assert.throws(() => loadOptions({ env: {}, overrides: { authResolver: 'sql', sqlUrl: 'mysql://x/y', sqlPreset: 'custom' } }), /sqlAdminQuery/);
    assert.throws(() => loadOptions({ env: {}, overrides: { authResolver: 'http' } }), /httpResolverUrl/);
    const fromEnv = loadOptions({ env: { HERALD_AUTH_RESOLVER: 'http', HERALD_HTTP_RESOLVER_URL: 'http://127.0.0.1:1/s', HERALD_HTTP_RESOLVER_HEADERS: 'ADMINSID,Authorization', HERALD_SESSION_RECHECK_MS: '200' } });
    assert.deepEqual(fromEnv.httpResolverHeaders, ['ADMINSID', 'Authorization']);
    assert.equal(fromEnv.sessionRecheckMs, 200);
    assert.throws(() => createSessionResolver(loadOptions({ env: {}, overrides: { authResolver: 'http', httpResolverUrl: 'http://127.0.0.1:1/', httpResolverHeaders: ['Host'] } })), /host/);
    assert.throws(() => createSessionResolver(loadOptions({ env: {}, overrides: { authResolver: 'sql', sqlUrl: 'postgres://x/y', sqlPreset: 'custom', sqlAdminQuery: 'SELECT aid FROM t WHERE sid = ?' } })), /\$1/);
  });
});

describe('sql resolver cache, PostgreSQL', () => {
  test('a burst of 50 look-ups of one session makes exactly one query at the server', async (t) => {
    const skipReason = await requireService('postgres');
    if (skipReason) return t.skip(skipReason);
    const db = await createPostgresSessions();
    try {
      await db.admin.query('INSERT INTO web_online (sid, aid) VALUES ($1, $2)', ['burst-session-0001', 5]);
      const pool = createSqlPool(db.url, { size: 5, timeoutMs: 3000 });
      const inner = new SqlResolver({ pool, lookups: { admin: { query: 'SELECT counted_aid($1)', cookie: 'sid', header: '' } } });
      const cached = new CachedResolver(inner, { positiveMs: 5000, negativeMs: 1000, maxEntries: 100 });
      const results = await Promise.all(Array.from({ length: 50 }, () => cached.resolve(handshake('admin', { cookie: 'sid=burst-session-0001' }))));
      assert.ok(results.every((r) => r.outcome === 'admitted' && r.principal.id === 5));
      assert.equal(await db.lookups(), 1);
      // Later look-ups within authCacheMs are served from the cache too.
      await cached.resolve(handshake('admin', { cookie: 'sid=burst-session-0001' }));
      assert.equal(await db.lookups(), 1);
      // A re-check always asks the database.
      assert.equal((await cached.recheck('admin', 'burst-session-0001')).outcome, 'admitted');
      assert.equal(await db.lookups(), 2);
      await cached.close();
    } finally {
      await db.drop();
    }
  });
});
