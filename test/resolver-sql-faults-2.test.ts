/**
 * More of the sql resolver against the real MariaDB and PostgreSQL
 * (SERVICES.md): a look-up function that fails, log lines a stranger can
 * multiply, logins the database refuses, a shutdown after the link went
 * dead, and first columns that hold neither a number nor text.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createSqlPool, type SqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver } from '../src/server/auth/sql-resolver.js';
import { parseCookies, type Handshake } from '../src/server/auth/session-resolver.js';
import { createMariadbSessions, createPostgresSessions, requireService } from './helpers/sql-services.js';
import { startAuthHerald, within } from './helpers/auth-herald.js';
import { capturedLog } from './helpers/captured-log.js';
import { FreezableProxy } from './helpers/freezable-proxy.js';

function handshake(cookie: string): Handshake {
  return { kind: 'admin', headers: { cookie }, cookies: parseCookies(cookie), query: new URLSearchParams(), remoteAddress: '127.0.0.1' };
}

const resolverOn = (pool: SqlPool, query: string, logger = capturedLog('info').logger) =>
  new SqlResolver({ pool, lookups: { admin: { query, cookie: 'sid', header: '' } }, logger });

/**
 * A TCP server on 127.0.0.1 that counts the connections made to it, and
 * either forwards each to `target` or (target 0) closes it at once, before
 * the database's greeting.
 */
class CountingProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  connections = 0;
  port = 0;

  constructor(target: number) {
    this.#server = createServer((client) => {
      this.connections++;
      if (target === 0) {
        client.destroy();
        return;
      }
      const upstream = connect(target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

describe('sql resolver on PostgreSQL: a look-up function that fails, and log lines a stranger can multiply', () => {
  let skipReason: string | undefined;
  let db: Awaited<ReturnType<typeof createPostgresSessions>>;

  before(async () => {
    skipReason = await requireService('postgres');
    if (skipReason) return;
    db = await createPostgresSessions();
    await db.admin.query('CREATE TABLE fn_sessions (sid TEXT PRIMARY KEY, aid INTEGER NOT NULL, data TEXT NOT NULL)');
    await db.admin.query("INSERT INTO fn_sessions VALUES ('fn-session-1', 1, '1')");
    await db.admin.query('CREATE TABLE uuid_sessions (sid UUID PRIMARY KEY, aid INTEGER NOT NULL)');
    // Every session's row answers 0: a look-up whose id column is not a person's id.
    await db.admin.query('CREATE TABLE zero_sessions (sid TEXT NOT NULL, aid INTEGER NOT NULL)');
    await db.admin.query("INSERT INTO zero_sessions SELECT 'zero-' || n, 0 FROM generate_series(0, 99) AS n");
  });
  after(async () => {
    if (!skipReason) await db.drop();
  });

  const lookUpFunction = (body: string) =>
    db.admin.query(`CREATE OR REPLACE FUNCTION session_aid(s TEXT) RETURNS INTEGER LANGUAGE plpgsql AS $f$ DECLARE v INTEGER; BEGIN ${body} RETURN v; END $f$`);

  test('a data exception inside the look-up function (its own cast fails) is "unavailable": tabs stay open, handshakes 503, nobody logged out', async (t) => {
    if (skipReason) return t.skip(skipReason);
    await lookUpFunction('SELECT aid INTO v FROM fn_sessions WHERE sid = $1;');
    const h = await startAuthHerald({
      authResolver: 'sql', sqlUrl: db.url, sqlPreset: 'custom', sqlAdminQuery: 'SELECT session_aid($1)', sqlAdminCookie: 'sid',
      authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 60_000,
    });
    try {
      const tab = await h.open('admin', { headers: { cookie: 'sid=fn-session-1' } });
      assert.equal((await tab.nextOfType('WELCOME')).ID, 1);
      // A bad deploy of the function: a cast of the row's data that fails (22P02) for every session.
      // Its error's context quotes the function's statement, `$1` and all.
      await lookUpFunction("SELECT (data || 'x')::int INTO v FROM fn_sessions WHERE sid = $1;");
      const direct = await db.admin.query('SELECT session_aid($1)', ['fn-session-1']).then(() => undefined, (e: { code?: string; where?: string }) => e);
      assert.equal(direct?.code, '22P02');
      assert.match(direct?.where ?? '', /\$1/);

      const round = await h.herald.watcher!.checkNow();
      assert.deepEqual([round.closedTabs, round.unavailable], [0, 1], 'the re-check took the failure for a logout');
      assert.equal(tab.ws.readyState, tab.ws.OPEN);
      assert.equal(await h.status('admin', { headers: { cookie: 'sid=fn-session-1' } }), 503);
    } finally {
      await h.close();
    }
  });

  test('300 look-ups of distinct session ids that are not of the column\'s type: 20 lines, then one that counts the rest', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const log = capturedLog('info');
    const r = resolverOn(createSqlPool(db.url, { size: 2, timeoutMs: 3000 }), 'SELECT aid FROM uuid_sessions WHERE sid = $1', log.logger);
    try {
      for (let i = 0; i < 300; i += 20) {
        const outcomes = await Promise.all(Array.from({ length: 20 }, (_, j) => r.resolve(handshake(`sid=garbage-${i + j}`))));
        for (const o of outcomes) assert.deepEqual(o, { outcome: 'refused', reason: 'malformed session id' });
      }
    } finally {
      // The summary comes when the window ends, or at close().
      await r.close();
    }
    const one = log.lines().filter((l) => l.msg === 'session look-up refused: the session id is not of its column\'s type');
    assert.equal(one.length, 20, `${one.length} lines one by one`);
    const summary = log.lines().filter((l) => l.msg.startsWith('session look-ups refused and not logged one by one'));
    assert.equal(summary.length, 1);
    assert.equal(summary[0]!.refused, 280);
    assert.deepEqual(summary[0]!.byCause, { 'not of its column\'s type': 280 });
    assert.ok(!log.lines().some((l) => JSON.stringify(l).includes('garbage-')), 'a session id reached the log');
  });

  test('100 look-ups whose first column is not a person\'s id: 20 warnings, then one that counts the rest', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const log = capturedLog('info');
    const r = resolverOn(createSqlPool(db.url, { size: 2, timeoutMs: 3000 }), 'SELECT aid FROM zero_sessions WHERE sid = $1', log.logger);
    try {
      for (let i = 0; i < 100; i += 20) {
        const outcomes = await Promise.all(Array.from({ length: 20 }, (_, j) => r.resolve(handshake(`sid=zero-${i + j}`))));
        for (const o of outcomes) assert.deepEqual(o, { outcome: 'refused', reason: 'session has no valid id' });
      }
    } finally {
      await r.close();
    }
    const one = log.lines().filter((l) => l.msg === 'session look-up returned something that is not a positive integer id');
    assert.equal(one.length, 20, `${one.length} lines one by one`);
    const summary = log.lines().filter((l) => l.msg.startsWith('session look-ups refused and not logged one by one'));
    assert.deepEqual(summary.map((l) => [l.refused, l.byCause]), [[80, { 'not an id': 80 }]]);
  });
});

describe('sql resolver: a login the database refuses is not retried', () => {
  const cases = [
    { name: 'PostgreSQL, a database that does not exist (FATAL 3D000)', service: 'postgres' as const, target: 5432, url: (port: number) => `postgres://postgres@127.0.0.1:${port}/herald_no_such_db`, code: '3D000' },
    { name: 'PostgreSQL, a role that does not exist (FATAL 28000)', service: 'postgres' as const, target: 5432, url: (port: number) => `postgres://herald_no_such_role@127.0.0.1:${port}/test`, code: '28000' },
    { name: 'PostgreSQL, a server that closes every connection at once', service: 'postgres' as const, target: 0, url: (port: number) => `postgres://postgres@127.0.0.1:${port}/test`, code: undefined },
    { name: 'MariaDB, a server that closes every connection at once', service: 'mariadb' as const, target: 0, url: (port: number) => `mysql://root@127.0.0.1:${port}/test`, code: 'PROTOCOL_CONNECTION_LOST' },
  ];
  for (const c of cases) {
    test(`${c.name}: one login per look-up, not sqlPoolSize + 1`, async (t) => {
      const skipReason = c.target === 0 ? undefined : await requireService(c.service);
      if (skipReason) return t.skip(skipReason);
      const proxy = new CountingProxy(c.target);
      const port = await proxy.listen();
      const pool = createSqlPool(c.url(port), { size: 5, timeoutMs: 3000 });
      const log = capturedLog('info');
      const r = resolverOn(pool, c.service === 'postgres' ? 'SELECT $1::text' : 'SELECT ?', log.logger);
      try {
        for (let i = 1; i <= 3; i++) {
          assert.deepEqual(await r.resolve(handshake(`sid=login-${i}`)), { outcome: 'unavailable', reason: 'session database unavailable' });
          assert.equal(proxy.connections, i, `${proxy.connections} logins for ${i} look-ups`);
        }
        if (c.code) assert.equal(log.lines().find((l) => l.msg === 'session look-up failed: database unavailable')?.code, c.code);
      } finally {
        await r.close();
        await proxy.close();
      }
    });
  }
});

const CHILD_HERALD = fileURLToPath(new URL('./helpers/auth-herald.ts', import.meta.url));

/**
 * A process that embeds Herald with the sql resolver: admits two tabs at
 * once (two pooled connections), says "admitted", waits for a line on stdin
 * (the test freezes the link then), starts one more look-up (its query
 * hangs on the dead link, the other connection stays idle), closes Herald
 * and says "closed". Nothing else keeps it alive.
 */
const EMBEDDER = `
import { startAuthHerald } from ${JSON.stringify(CHILD_HERALD)};
const h = await startAuthHerald({
  authResolver: 'sql', sqlUrl: process.env.SQL_URL, sqlPoolSize: 2, sqlTimeoutMs: 2000,
  authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 0, shutdownGraceMs: 1000,
});
const tab = (sid) => h.status('admin', { headers: { cookie: 'sid=' + sid } }).catch((e) => e.message);
console.log('admitted ' + (await Promise.all([tab(process.env.SID + '-a'), tab(process.env.SID + '-b')])).join(' '));
await new Promise((resolve) => process.stdin.once('data', resolve));
process.stdin.destroy();
const hanging = tab(process.env.SID + '-a');
await new Promise((resolve) => setTimeout(resolve, 200));
await h.close();
console.log('closed; the hanging look-up: ' + await hanging);
`;

describe('sql resolver: herald.close() after the database link went dead (no byte flows, nothing closes)', () => {
  const dialects = [
    { name: 'MariaDB', service: 'mariadb' as const, create: createMariadbSessions, port: 3306, insert: 'INSERT INTO web_online (sid, aid) VALUES (?, ?)' },
    { name: 'PostgreSQL', service: 'postgres' as const, create: createPostgresSessions, port: 5432, insert: 'INSERT INTO web_online (sid, aid) VALUES ($1, $2)' },
  ];
  for (const d of dialects) {
    test(`${d.name}: the embedding process still exits by itself`, async (t) => {
      const skipReason = await requireService(d.service);
      if (skipReason) return t.skip(skipReason);
      const db = await d.create();
      const proxy = new FreezableProxy(d.port);
      const child = { process: undefined as ReturnType<typeof spawn> | undefined };
      try {
        const sid = `dead-link-${d.service}-61`;
        for (const [i, suffix] of ['-a', '-b'].entries()) {
          await (db.admin as unknown as { query(s: string, p: unknown[]): Promise<unknown> }).query(d.insert, [sid + suffix, 61 + i]);
        }
        const port = await proxy.listen();
        const url = db.url.replace(`127.0.0.1:${d.port}`, `127.0.0.1:${port}`);
        const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', EMBEDDER], {
          env: { ...process.env, SQL_URL: url, SID: sid },
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        child.process = p;
        let out = '';
        const said = (what: string) => new Promise<void>((resolve) => {
          const check = () => out.includes(what) && resolve();
          p.stdout.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            check();
          });
          check();
        });
        const exited = new Promise<number | null>((resolve) => p.once('exit', resolve));
        await within(said('admitted'), 20_000, 'the embedder to admit its tab');
        assert.match(out, /admitted 101 101/);
        assert.equal(proxy.freeze(), 2, 'the pooled connections frozen');
        p.stdin.end('go\n');
        await within(said('closed'), 15_000, 'herald.close() to return');
        // Before, the pool's socket stayed open (end() said goodbye into the dead link and waited
        // for the server to close it), and the process lived on until TCP gave the link up.
        assert.equal(await within(exited, 10_000, 'the embedding process to exit after herald.close()'), 0);
      } finally {
        if (child.process && child.process.exitCode === null) child.process.kill();
        await proxy.close();
        await db.drop();
      }
    });
  }
});

describe('sql resolver: a first column that holds neither a number nor text is no id', () => {
  const dialects = [
    {
      name: 'MariaDB', service: 'mariadb' as const, create: createMariadbSessions, p: '?',
      columns: {
        // refused: what mysql2 gives as a Buffer, and BOOLEAN (TINYINT(1)), which it gives as the number 1
        vbin: ['VARBINARY(10)', "'7'", false], bool: ['BOOLEAN', 'TRUE', false], bit: ['BIT(8)', '7', false], bin: ['BLOB', "'7'", false],
        // refused: a YEAR, which mysql2 gives as a number (2007 admitted admin 2007)
        yr: ['YEAR', '2007', false],
        // admitted: numbers and text of digits (TEXT is a BLOB type with a character set)
        i4: ['INT', '7', true], i8: ['BIGINT UNSIGNED', '7', true], txt: ['VARCHAR(10)', "'7'", true], tiny3: ['TINYINT(3)', '7', true], text: ['TEXT', "'7'", true],
      },
    },
    {
      name: 'PostgreSQL', service: 'postgres' as const, create: createPostgresSessions, p: '$1',
      columns: {
        // refused: an array, JSON (pg parses it: jsonb '"7"' came as the string "7"), bytea, a boolean
        arr: ['int[]', "'{7}'", false], jsonb: ['jsonb', `'"7"'`, false], json: ['json', "'7'", false], bytea: ['bytea', "'7'", false], bool: ['bool', 'true', false],
        // admitted: numbers and text of digits
        int4: ['int4', '7', true], int8: ['int8', '7', true], txt: ['text', "'7'", true], num: ['numeric', '7', true],
      },
    },
  ];
  for (const d of dialects) {
    test(`${d.name}: refused with a warning that names the column's type; numbers and text of digits still admitted`, async (t) => {
      const skipReason = await requireService(d.service);
      if (skipReason) return t.skip(skipReason);
      const db = await d.create();
      const pool = createSqlPool(db.url, { size: 1, timeoutMs: 3000 });
      const run = (sql: string) => (db.admin as unknown as { query(s: string): Promise<unknown> }).query(sql);
      try {
        const entries = Object.entries(d.columns) as [string, [string, string, boolean]][];
        await run(`CREATE TABLE typed_ids (sid VARCHAR(64), ${entries.map(([name, [type]]) => `${name} ${type}`).join(', ')})`);
        await run(`INSERT INTO typed_ids VALUES ('typed-1', ${entries.map(([, [, value]]) => value).join(', ')})`);
        const outcomes: Record<string, string> = {};
        const expected: Record<string, string> = {};
        const unwarned: string[] = [];
        for (const [name, [, , admitted]] of entries) {
          const log = capturedLog('info');
          const r = resolverOn(pool, `SELECT ${name} FROM typed_ids WHERE sid = ${d.p}`, log.logger);
          const o = await r.resolve(handshake('sid=typed-1'));
          outcomes[name] = o.outcome === 'admitted' ? `admitted ${o.principal.id}` : `${o.outcome}: ${o.reason}`;
          expected[name] = admitted ? 'admitted 7' : 'refused: session has no valid id';
          const warned = log.lines().some((l) => l.msg === 'session look-up returned something that is not a positive integer id' && typeof l.columnType === 'string');
          if (!admitted && !warned) unwarned.push(name);
        }
        assert.deepEqual(outcomes, expected);
        assert.deepEqual(unwarned, [], 'refused without a warning that names the column\'s type');
      } finally {
        await pool.close();
        await db.drop();
      }
    });
  }
});
