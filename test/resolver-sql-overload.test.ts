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
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald } from './helpers/auth-herald.js';

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
        const answers: Promise<{ second: number; status: number }>[] = [];
        const t0 = Date.now();
        await new Promise<void>((resolve) => {
          let i = 0;
          const timer = setInterval(() => {
            const second = Math.floor((Date.now() - t0) / 1000);
            if (second >= OFFER_S) {
              clearInterval(timer);
              resolve();
              return;
            }
            const sid = `overload-${i++}`;
            answers.push(h.status('admin', { headers: { cookie: `sid=${sid}` } }).then((status) => ({ second, status })));
          }, 1000 / OFFERED_PER_S);
        });
        const results = await Promise.all(answers);
        const perSecond = Array.from({ length: OFFER_S }, (_, s) => results.filter((r) => r.second === s));
        const table = perSecond.map((rs) => `${rs.filter((r) => r.status === 101).length}/${rs.length}`).join(' ');
        console.log(`# ${d.name}: admitted/sent by the second they were sent in: ${table}`);
        // Every session exists: an answer is "admitted" or "unavailable", never "refused".
        assert.deepEqual([...new Set(results.map((r) => r.status))].filter((s) => s !== 101 && s !== 503), []);
        // A ratio of what the pool can do, generous for a busy machine: before, these seconds admitted none.
        const judged = perSecond.slice(JUDGED_FROM_S).flat();
        const admitted = judged.filter((r) => r.status === 101).length;
        const floor = 0.3 * CAPACITY_PER_S * (OFFER_S - JUDGED_FROM_S);
        assert.ok(admitted >= floor, `${admitted} admitted in seconds ${JUDGED_FROM_S + 1} to ${OFFER_S}, fewer than 30% of what the pool can look up (${floor}): ${table}`);
        for (const [s, rs] of perSecond.entries()) {
          if (s < JUDGED_FROM_S) continue;
          assert.ok(rs.some((r) => r.status === 101), `nobody admitted in second ${s + 1}: ${table}`);
        }
      } finally {
        await h.close();
      }
    });
  });
}
