/**
 * The resolver cache in front of the real MariaDB and PostgreSQL, through a
 * real Herald: a refusal is kept for authNegativeCacheMs and never passes
 * for an admission, an admission for authCacheMs and then re-asked, and a
 * failed look-up (the database down, behind our own TCP proxy) is never
 * kept, neither as a refusal nor in place of what was known.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { DbProxy } from './helpers/db-proxy.js';

const POSITIVE_MS = 1200;
const NEGATIVE_MS = 600;

/** Polls the handshake status until it is `want`; resolves with the ms it took, or fails after `ms`. */
async function statusBecomes(probe: () => Promise<number>, want: number, ms: number): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const got = await probe();
    if (got === want) return Date.now() - t0;
    if (Date.now() - t0 > ms) assert.fail(`status still ${got}, not ${want}, after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const dialects = [
  { name: 'MariaDB', service: 'mariadb' as const, port: 3306, create: createMariadbSessions, insert: 'INSERT INTO web_online (sid, aid) VALUES (?, ?)', del: 'DELETE FROM web_online WHERE sid = ?' },
  { name: 'PostgreSQL', service: 'postgres' as const, port: 5432, create: createPostgresSessions, insert: 'INSERT INTO web_online (sid, aid) VALUES ($1, $2)', del: 'DELETE FROM web_online WHERE sid = $1' },
];

for (const d of dialects) {
  describe(`resolver cache against ${d.name}`, () => {
    test('refusals and admissions expire on time; an outage is cached as neither', async (t) => {
      const skipReason = await requireService(d.service);
      if (skipReason) return t.skip(skipReason);
      const db = await d.create();
      const run = (sql: string, params: unknown[]) => (db.admin as unknown as { query(s: string, p: unknown[]): Promise<unknown> }).query(sql, params);
      const proxy = new DbProxy(d.port);
      await proxy.start();
      const h = await startAuthHerald({
        authResolver: 'sql', sqlUrl: db.url.replace(`127.0.0.1:${d.port}`, `127.0.0.1:${proxy.port}`), sqlTimeoutMs: 1000,
        authCacheMs: POSITIVE_MS, authNegativeCacheMs: NEGATIVE_MS, sessionRecheckMs: 0,
      });
      try {
        const as = (sid: string) => () => h.status('admin', { headers: { cookie: `sid=${sid}` } });

        // A refusal is reused, not turned into an admission, until it expires; then the new row admits.
        const late = as('cache-late-login-1');
        assert.equal(await late(), 401);
        await run(d.insert, ['cache-late-login-1', 31]);
        assert.equal(await late(), 401, 'the refusal is reused within authNegativeCacheMs');
        const waited = await statusBecomes(late, 101, NEGATIVE_MS + 1500);
        assert.ok(waited < NEGATIVE_MS + 1500);

        // An admission is reused until authCacheMs, then the deleted row refuses.
        await run(d.del, ['cache-late-login-1']);
        assert.equal(await late(), 101, 'the admission is reused within authCacheMs');
        await statusBecomes(late, 401, POSITIVE_MS + 1500);

        // The database goes down.
        await run(d.insert, ['cache-known-2', 32]);
        await run(d.insert, ['cache-outage-3', 33]);
        assert.equal(await as('cache-known-2')(), 101);
        await proxy.stop();
        assert.equal(await as('cache-outage-3')(), 503, 'a failed look-up is 503');
        assert.equal(await as('cache-outage-3')(), 503, 'and is asked again, not served as a cached refusal');
        assert.equal(await as('cache-known-2')(), 101, 'what was known before the outage is still served until it expires');
        // It comes back: the session that failed is admitted at once (no refusal was kept for it).
        await proxy.start();
        assert.equal(await as('cache-outage-3')(), 101);
        assert.ok(!/cache-(late|known|outage)/.test(h.log()), 'a session id reached the log');
      } finally {
        await h.close();
        await proxy.stop();
        await (db as { drop(): Promise<void> }).drop();
      }
    });
  });
}
