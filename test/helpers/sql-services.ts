/**
 * The shared MariaDB and PostgreSQL of SERVICES.md, for the sql resolver's
 * tests: checked reachable, started with SERVICES.md's command when not, and
 * under CI=true a failure to reach them fails loudly instead of skipping.
 * Each test gets its own database (MariaDB) or schema (PostgreSQL), dropped
 * afterwards, so runs are independent and repeatable.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import mysql from 'mysql2/promise';
import pg from 'pg';

export const MARIADB_URL = 'mysql://root@127.0.0.1:3306';
export const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

function reachable(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

async function waitReachable(port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await reachable(port)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

const START: Record<'mariadb' | 'postgres', () => void> = {
  mariadb: () => spawnSync('start-stop-daemon', ['--start', '--oknodo', '--background', '--exec', '/usr/sbin/mariadbd'], { stdio: 'ignore' }),
  postgres: () => {
    for (const version of readdirSync('/etc/postgresql')) {
      spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'ignore' });
    }
  },
};

/**
 * Resolves to undefined when the service is up (after starting it if needed),
 * or to the reason for skipping. Under CI=true it throws instead.
 */
export async function requireService(name: 'mariadb' | 'postgres'): Promise<string | undefined> {
  const port = name === 'mariadb' ? 3306 : 5432;
  if (await reachable(port)) return undefined;
  try {
    START[name]();
  } catch {
    // reported below
  }
  if (await waitReachable(port, 15_000)) return undefined;
  const why = `${name} is not reachable on 127.0.0.1:${port} and could not be started`;
  if (process.env.CI === 'true') throw new Error(why);
  console.log(`# skipping: ${why}`);
  return why;
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** A fresh MariaDB database with the ABillS session tables; `drop()` removes it. */
export async function createMariadbSessions(): Promise<{ url: string; admin: mysql.Connection; drop(): Promise<void> }> {
  const name = uniqueName('herald_auth');
  const root = await mysql.createConnection(MARIADB_URL);
  root.on('error', (e) => console.log(`# the test's own MariaDB connection failed: ${e.message}`));
  await root.query(`CREATE DATABASE \`${name}\``);
  await root.query(`USE \`${name}\``);
  await root.query('CREATE TABLE web_online (sid VARCHAR(64) PRIMARY KEY, aid INT UNSIGNED NOT NULL)');
  await root.query('CREATE TABLE web_users_sessions (sid VARCHAR(64) PRIMARY KEY, uid INT UNSIGNED NOT NULL)');
  return {
    url: `${MARIADB_URL}/${name}`,
    admin: root,
    async drop() {
      await root.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await root.end();
    },
  };
}

/**
 * A fresh PostgreSQL schema with the ABillS session tables; the URL puts it
 * first on the search_path, so the preset's unqualified table names find it.
 * `lookups` counts the queries that reach the server (`counted_aid`).
 */
export async function createPostgresSessions(base = POSTGRES_URL): Promise<{ url: string; schema: string; admin: pg.Client; lookups(): Promise<number>; drop(): Promise<void> }> {
  const schema = uniqueName('herald_auth');
  const admin = new pg.Client({ connectionString: base });
  // An error of this connection while it sits idle (the server ended it) would otherwise be an
  // uncaught exception, charged to whichever suite created it, with no test named: say what it was.
  admin.on('error', (e) => console.log(`# the test's own PostgreSQL connection failed: ${e.message}`));
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`SET search_path TO ${schema}`);
  await admin.query('CREATE TABLE web_online (sid VARCHAR(64) PRIMARY KEY, aid INTEGER NOT NULL)');
  await admin.query('CREATE TABLE web_users_sessions (sid VARCHAR(64) PRIMARY KEY, uid INTEGER NOT NULL)');
  // A look-up that counts itself, so a test can see how many queries reached the server.
  await admin.query('CREATE TABLE lookups (n INTEGER NOT NULL)');
  await admin.query('INSERT INTO lookups VALUES (0)');
  await admin.query(`CREATE FUNCTION counted_aid(s TEXT) RETURNS INTEGER LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      UPDATE lookups SET n = n + 1;
      RETURN (SELECT aid FROM web_online WHERE sid = s);
    END $$`);
  const url = `${base}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  return {
    url,
    schema,
    admin,
    async lookups() {
      const r = await admin.query<{ n: number }>('SELECT n FROM lookups');
      return r.rows[0]?.n ?? -1;
    },
    async drop() {
      await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
      await admin.end();
    },
  };
}
