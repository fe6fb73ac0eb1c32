/**
 * docs/auth.md: a session id with any character outside printable ASCII (a
 * space, a control character, a byte above 127, also once decoded) is
 * refused, 401 "malformed session id", without a query; a cookie's value is
 * percent-decoded, a header's is taken as sent. The sql resolver trimmed the
 * id (String#trim) before that check, and parseCookies trimmed the raw value
 * the same way: `sid=%20abc%20`, `abc%0A`, `%C2%A0abc`, `%E3%80%80abc` and a
 * header or cookie with the byte 0xA0 before the id were looked up as `abc`
 * and admitted. Only the spaces and tabs HTTP itself puts around a header's
 * or a cookie's value are not part of it.
 *
 * On the real MariaDB through a real Herald (raw header bytes, as a client
 * sends them), then on the real PostgreSQL with a query that counts itself,
 * so "without a query" is seen.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSqlPool, type SqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver } from '../src/server/auth/sql-resolver.js';
import { parseCookies, type Handshake } from '../src/server/auth/session-resolver.js';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald } from './helpers/auth-herald.js';

const SID = 'a7f3c0ffee';

/** Cookies whose id, once decoded, has something outside printable ASCII around the real one. */
const MALFORMED_COOKIES = [
  `sid=%20${SID}%20`,
  `sid=%09${SID}`,
  `sid=${SID}%0A`,
  `sid=%C2%A0${SID}`,
  `sid=${SID}%EF%BB%BF`,
  `sid=%E3%80%80${SID}`,
  `sid=%E2%80%A8${SID}`,
  // The byte 0xA0 as sent, read as Latin-1: U+00A0.
  `sid=\u00a0${SID}`,
];

describe('sql resolver: a session id is checked as sent, not trimmed', () => {
  test('MariaDB, end to end: white space and bytes above 127 around a live id are refused 401; HTTP\'s own spaces around a value are not part of it', async (t) => {
    const skip = await requireService('mariadb');
    if (skip) return t.skip(skip);
    const db = await createMariadbSessions();
    await db.admin.query('INSERT INTO web_online (sid, aid) VALUES (?, 7)', [SID]);
    const h = await startAuthHerald({ authResolver: 'sql', sqlUrl: db.url, sessionRecheckMs: 0 });
    try {
      assert.equal(await h.status('admin', { headers: { cookie: `sid=${SID}` } }), 101);
      for (const cookie of MALFORMED_COOKIES) assert.equal(await h.status('admin', { headers: { cookie } }), 401, JSON.stringify(cookie));
      assert.equal(await h.status('admin', { headers: { ADMINSID: `\u00a0${SID}` } }), 401, 'a header with the byte 0xA0 before the id');
      assert.equal(await h.status('admin', { headers: { ADMINSID: `${SID}\u00a0` } }), 401, 'a header with the byte 0xA0 after the id');
      // Spaces and tabs around a header's value or a cookie's are HTTP's (RFC 9110 §5.5, RFC 6265 §5.2).
      assert.equal(await h.status('admin', { headers: { ADMINSID: ` \t${SID} ` } }), 101);
      assert.equal(await h.status('admin', { headers: { cookie: `lang=en;  sid= ${SID}\t` } }), 101);
      assert.ok(!h.log().includes(SID), 'the session id reached the log');
    } finally {
      await h.close();
      await db.drop();
    }
  });

  describe('PostgreSQL: refused without a query', () => {
    let skipReason: string | undefined;
    let db: Awaited<ReturnType<typeof createPostgresSessions>>;
    let pool: SqlPool;
    before(async () => {
      skipReason = await requireService('postgres');
      if (skipReason) return;
      db = await createPostgresSessions();
      await db.admin.query('INSERT INTO web_online (sid, aid) VALUES ($1, 7)', [SID]);
      pool = createSqlPool(db.url, { size: 1, timeoutMs: 5000 });
    });
    after(async () => {
      if (skipReason) return;
      await pool.close();
      await db.drop();
    });

    test('each malformed id is refused before the database is asked', async (t) => {
      if (skipReason) return t.skip(skipReason);
      // Under PostgreSQL's exact comparison a trimmed id would find the row: counted_aid counts what reaches it.
      const resolver = new SqlResolver({ pool, lookups: { admin: { query: 'SELECT counted_aid($1)', cookie: 'sid', header: 'ADMINSID' } } });
      const handshake = (headers: Record<string, string>): Handshake => ({
        kind: 'admin', headers, cookies: parseCookies(headers.cookie), query: new URLSearchParams(), remoteAddress: '127.0.0.1',
      });
      for (const cookie of MALFORMED_COOKIES) {
        assert.deepEqual(await resolver.resolve(handshake({ cookie })), { outcome: 'refused', reason: 'malformed session id' }, JSON.stringify(cookie));
      }
      for (const adminsid of [`\u00a0${SID}`, `${SID}\ufeff`, ` ${SID}`, `${SID}\n`]) {
        assert.deepEqual(await resolver.resolve(handshake({ adminsid })), { outcome: 'refused', reason: 'malformed session id' }, JSON.stringify(adminsid));
      }
      assert.equal(await db.lookups(), 0, 'no malformed id reached the database');
      assert.equal((await resolver.resolve(handshake({ cookie: `sid=${SID}` }))).outcome, 'admitted');
      assert.equal(await db.lookups(), 1);
    });
  });
});
