/**
 * The sql resolver under sustained overload, against the real MariaDB and
 * PostgreSQL (SERVICES.md), through a real Herald and real `ws` handshakes:
 * more handshakes of distinct sessions a second than the pool can look up.
 * Both drivers serve the look-ups waiting for a connection oldest first, and
 * each connection went to a look-up with only a few ms of its deadline left,
 * whose answer came too late and was thrown away: after the first second
 * nobody was admitted at all. The pool must go on admitting about as many
 * as it can look up.
 */
// test-runner: own process: it counts admissions second by second, which another file's work in the same event loop (a synchronous SQLite write) would stall
import { after, before, describe, test } from 'node:test';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { assertGoodput, offerHandshakes } from './helpers/overload.js';

/** A look-up of 100 ms: a pool of 2 answers at most 20 a second. */
const QUERY_S = 0.1;
const POOL = 2;
const CAPACITY_PER_S = POOL / QUERY_S;
/** Twice what the pool can answer, for OFFER_S seconds. */
const OFFERED_PER_S = 2 * CAPACITY_PER_S;
const OFFER_S = 5;
/** The seconds judged: from the third on, when the queue of the first ones has long built up. */
const JUDGED_FROM_S = 2;

const dialects = [
  {
    name: 'MariaDB', service: 'mariadb' as const,
    async create() {
      const db = await createMariadbSessions();
      return { url: db.url, insert: (values: string) => db.admin.query(`INSERT INTO web_online (sid, aid) VALUES ${values}`), drop: () => db.drop() };
    },
    query: `SELECT (SELECT aid FROM web_online WHERE sid = ?) FROM (SELECT SLEEP(${QUERY_S})) AS slow`,
  },
  {
    name: 'PostgreSQL', service: 'postgres' as const,
    async create() {
      const db = await createPostgresSessions();
      return { url: db.url, insert: (values: string) => db.admin.query(`INSERT INTO web_online (sid, aid) VALUES ${values}`), drop: () => db.drop() };
    },
    query: `SELECT (SELECT aid FROM web_online WHERE sid = $1) FROM pg_sleep(${QUERY_S})`,
  },
];

for (const d of dialects) {
  describe(`sql resolver under sustained overload, ${d.name}`, () => {
    let skipReason: string | undefined;
    let db: Awaited<ReturnType<(typeof d)['create']>>;
    const sessions = OFFERED_PER_S * OFFER_S + 50;

    before(async () => {
      skipReason = await requireService(d.service);
      if (skipReason) return;
      db = await d.create();
      await db.insert(Array.from({ length: sessions }, (_, i) => `('overload-${i}', ${i + 1})`).join(', '));
    });
    after(async () => {
      if (!skipReason) await db.drop();
    });

    test(`${OFFERED_PER_S} handshakes a second at a pool that looks up ${CAPACITY_PER_S}: the later seconds still admit, not 503 to everybody`, async (t) => {
      if (skipReason) return t.skip(skipReason);
      const h = await startAuthHerald({
        authResolver: 'sql', sqlUrl: db.url, sqlPreset: 'custom', sqlAdminQuery: d.query, sqlAdminCookie: 'sid',
        sqlPoolSize: POOL, sqlTimeoutMs: 1000, authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 0,
      });
      try {
        const offered = await offerHandshakes(h, OFFERED_PER_S, OFFER_S, (i) => `sid=overload-${i}`);
        const { table } = offered;
        console.log(`# ${d.name}: admitted/sent by the second they were sent in: ${table}`);
        assertGoodput(offered, JUDGED_FROM_S, CAPACITY_PER_S, 'the pool can look up');
      } finally {
        await h.close();
      }
    });
  });
}
