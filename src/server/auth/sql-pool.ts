/**
 * The two database drivers behind the sql resolver, reduced to the one thing
 * it needs: run a query with exactly one parameter and hand back the first
 * column of the first row. The parameter always travels separately from the
 * query text (mysql2 `execute`: a server-side prepared statement; pg: the
 * extended protocol), so a session id can never change the query, and it
 * never appears in a driver's error message either.
 */
import { createRequire } from 'node:module';
import type { Pool as MysqlDriverPool, RowDataPacket } from 'mysql2';
import type { Pool as PgDriverPool } from 'pg';
import { HeraldError } from '../errors.js';

type MysqlDriver = typeof import('mysql2');
type PgDriver = typeof import('pg');

// The drivers are loaded when a pool is first made, not with this module:
// most Heralds use neither, and loading both cost every start about 0.2 s of CPU
// (mysql2 and pg about 0.1 s each), in each `herald start` and each process that
// imports the server.
const requireDriver = createRequire(import.meta.url);
let mysqlDriver: MysqlDriver | undefined;
let pgDriver: PgDriver | undefined;
const mysql = (): MysqlDriver => (mysqlDriver ??= requireDriver('mysql2') as MysqlDriver);
const pg = (): PgDriver => (pgDriver ??= requireDriver('pg') as PgDriver);

export type SqlDialect = 'mysql' | 'postgres';

export interface SqlPool {
  readonly dialect: SqlDialect;
  /** First column of the first row, or `undefined` when there is no row. Rejects on any failure. */
  firstValue(sql: string, param: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface SqlPoolOptions {
  /** Connections kept at most. */
  readonly size: number;
  /** Longest wait to connect, for a free connection, or for one query, in ms. */
  readonly timeoutMs: number;
  /** Background connection errors (the server went away while a connection was idle). */
  readonly onError?: (error: Error) => void;
}

/** `mysql://` and `mariadb://` → mysql; `postgres://` and `postgresql://` → postgres. */
export function sqlDialectOf(url: string): SqlDialect {
  const scheme = /^([a-z]+):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'mysql' || scheme === 'mariadb') return 'mysql';
  if (scheme === 'postgres' || scheme === 'postgresql') return 'postgres';
  throw new HeraldError('HERALD_ERR_CONFIG', 'option "sqlUrl" must start with mysql://, mariadb://, postgres:// or postgresql://');
}

/**
 * Throws HERALD_ERR_CONFIG when the driver cannot use `url`. Each driver
 * judges its own URL: mysql2 parses it in createPool, and threw its parser's
 * TypeError from inside (a stack trace at start; the error's `input` is the
 * whole URL, password included); pg parses it only when it first connects,
 * so Herald started and answered every handshake 503. The message never
 * quotes the URL: it may hold a password.
 */
export function createSqlPool(url: string, options: SqlPoolOptions): SqlPool {
  const dialect = sqlDialectOf(url);
  try {
    if (dialect === 'mysql') return new MysqlPool(url, options);
    // Parses the URL as the pool will at its first connection; connects nowhere.
    const { Client } = pg();
    new Client({ connectionString: postgresUrl(url) });
    return new PostgresPool(url, options);
  } catch {
    throw new HeraldError(
      'HERALD_ERR_CONFIG',
      'option "sqlUrl" is not a URL the database driver can use (a port out of range, a malformed host, or an @ : / % in the user or password not written as %40 %3A %2F %25?); its value is not shown: it may hold a password',
    );
  }
}

function postgresUrl(url: string): string {
  return url.replace(/^postgresql:/i, 'postgres:');
}

/**
 * How long past its own limit the server may take to stop a query before
 * its connection is given up as dead, in ms.
 */
const SERVER_STOP_GRACE_MS = 1000;

function timeoutError(ms: number): Error {
  return Object.assign(new Error(`no answer within ${ms} ms`), { code: 'HERALD_SQL_TIMEOUT' });
}

/**
 * Runs `attempt` again, within the same deadline, when its connection
 * turned out to be dead: the server had ended it while it sat idle in the
 * pool (a `KILL` on MariaDB, `pg_terminate_backend` on PostgreSQL, a
 * database restart, a firewall's idle timeout) and the driver had not yet
 * noticed. The pool drops such a connection, so a later attempt draws
 * another; without it, each look-up that drew a dead connection answered
 * its tab 503 although the database was up. When every idle connection was
 * ended at once (a restart), one look-up may draw each of them in turn
 * before the driver hears of their end: so up to `retries` more attempts,
 * the pool's size, after which a fresh connection has been drawn. A look-up
 * is a SELECT, so asking again changes nothing; an error of the query
 * itself, or the deadline, is not retried.
 */
async function retryOnDeadConnection<T>(attempt: (deadline: number) => Promise<T>, timeoutMs: number, retries: number, dead: (e: unknown) => boolean): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(deadline);
    } catch (e) {
      if (retry >= retries || !dead(e) || Date.now() >= deadline) throw e;
    }
  }
}

/** Rejects when `promise` has not settled within `ms`; `onLate` receives the promise to clean up what it yields later. */
function withTimeout<T>(promise: Promise<T>, ms: number, onLate?: (late: Promise<T>) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onLate?.(promise);
      reject(timeoutError(ms));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class MysqlPool implements SqlPool {
  readonly dialect = 'mysql' as const;
  readonly #pool: MysqlDriverPool;
  readonly #timeoutMs: number;
  readonly #size: number;

  constructor(url: string, options: SqlPoolOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#size = options.size;
    this.#pool = mysql().createPool({
      uri: url.replace(/^mariadb:/i, 'mysql:'),
      connectionLimit: options.size,
      maxIdle: options.size,
      idleTimeout: 60_000,
      connectTimeout: options.timeoutMs,
      waitForConnections: true,
      // A bounded queue: during an outage, look-ups fail fast instead of piling up.
      queueLimit: options.size * 100,
      enableKeepAlive: true,
    });
    const seconds = options.timeoutMs / 1000;
    this.#pool.on('connection', (conn) => {
      // An idle connection whose server went away emits 'error'; unhandled, that would end the process.
      conn.on('error', (e: Error) => options.onError?.(e));
      // The server stops a query at the deadline itself, as PostgreSQL's
      // statement_timeout does: a stuck query (a lock wait, a SLEEP) ran on for
      // as long as it liked, and as its connection was destroyed at the
      // deadline, each deadline that passed left one more server thread
      // behind, until the panel's own database ran out of connections.
      // MariaDB spells it max_statement_time (s), MySQL max_execution_time
      // (ms, SELECT only); each refuses the other's name, harmlessly, and both
      // are queued before the connection's first query.
      conn.query(`SET SESSION max_statement_time = ${seconds}`, () => undefined);
      conn.query(`SET SESSION max_execution_time = ${Math.ceil(options.timeoutMs)}`, () => undefined);
    });
  }

  firstValue(sql: string, param: string): Promise<unknown> {
    // A fatal error is one of the connection (lost, reset, killed), not of the query.
    return retryOnDeadConnection((deadline) => this.#attempt(sql, param, deadline), this.#timeoutMs, this.#size, (e) => (e as { fatal?: unknown }).fatal === true);
  }

  #attempt(sql: string, param: string, deadline: number): Promise<unknown> {
    const ms = Math.max(1, deadline - Date.now());
    return new Promise((resolve, reject) => {
      let settled = false;
      // The deadline covers waiting for a free connection and the query. A
      // query still running at the deadline is answered "timed out" at once,
      // but keeps its connection until the server has stopped it (within
      // timeoutMs of its start, see above) and only then goes back to the
      // pool. Destroying it instead freed the pool slot while the query ran on
      // in the server: under a storm of handshakes against a slow query, a
      // pool of 5 had 17 sessions on the server. Should the server never
      // answer (a dead link), the connection is destroyed after a grace period.
      const timer = setTimeout(() => {
        settled = true;
        reject(timeoutError(this.#timeoutMs));
      }, ms);
      this.#pool.getConnection((err, c) => {
        if (settled) {
          c?.release();
          return;
        }
        if (err) {
          settled = true;
          clearTimeout(timer);
          reject(err);
          return;
        }
        const backstop = setTimeout(() => c.destroy(), this.#timeoutMs + SERVER_STOP_GRACE_MS);
        c.execute<RowDataPacket[]>({ sql, rowsAsArray: true }, [param], (qerr, rows) => {
          clearTimeout(backstop);
          if (qerr && (qerr as { fatal?: boolean }).fatal) c.destroy();
          else c.release();
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (qerr) {
            reject(qerr);
            return;
          }
          const first = (rows as unknown[])[0];
          resolve(Array.isArray(first) ? (first[0] as unknown) : undefined);
        });
      });
    });
  }

  async close(): Promise<void> {
    await this.#pool.promise().end().catch(() => undefined);
  }
}

class PostgresPool implements SqlPool {
  readonly dialect = 'postgres' as const;
  readonly #pool: PgDriverPool;
  readonly #timeoutMs: number;
  readonly #size: number;
  /** The error of a connection that ended under its query (see #attempt). */
  readonly #onClientError: (error: Error) => void;

  constructor(url: string, options: SqlPoolOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#size = options.size;
    this.#onClientError = (e) => options.onError?.(e);
    const { Pool } = pg();
    this.#pool = new Pool({
      connectionString: postgresUrl(url),
      max: options.size,
      connectionTimeoutMillis: options.timeoutMs,
      // The server cancels a query at the deadline itself, so the connection stays usable.
      statement_timeout: options.timeoutMs,
      // ...and should it never answer (a dead link), the driver gives the query up a little later.
      query_timeout: options.timeoutMs + SERVER_STOP_GRACE_MS,
      idleTimeoutMillis: 60_000,
      keepAlive: true,
    });
    // pg emits 'error' on the pool for idle clients that lose their server; unhandled, that would end the process.
    this.#pool.on('error', (e: Error) => options.onError?.(e));
  }

  firstValue(sql: string, param: string): Promise<unknown> {
    return retryOnDeadConnection((deadline) => this.#attempt(sql, param, deadline), this.#timeoutMs, this.#size, connectionEnded);
  }

  async #attempt(sql: string, param: string, deadline: number): Promise<unknown> {
    const client = await withTimeout(this.#pool.connect(), Math.max(1, deadline - Date.now()), (late) => late.then((c) => c.release(), () => undefined));
    // A query still running at the deadline is answered "timed out" at once,
    // but keeps its connection until the server has stopped it
    // (statement_timeout) and only then goes back to the pool; destroying it
    // freed the pool slot while the query ran on in the server (a pool of 5
    // had 24 sessions on the server under a storm of handshakes).
    // While a client is checked out the pool does not listen for its errors, and pg, after
    // failing the query, emits 'error' on a client whose connection ended under it (the
    // database restarted mid-query): unheard, that error ended the whole process.
    client.on('error', this.#onClientError);
    const query = client.query<unknown[]>({ text: sql, values: [param], rowMode: 'array' });
    query.then(
      () => {
        client.off('error', this.#onClientError);
        client.release();
      },
      // A broken connection is dropped; after an error of the query (its statement_timeout too) it is reused.
      (e: unknown) => {
        client.off('error', this.#onClientError);
        client.release(connectionEnded(e) ? (e instanceof Error ? e : true) : undefined);
      },
    );
    const result = await withTimeout(query, Math.max(1, deadline - Date.now()));
    const first = result.rows[0];
    return first ? first[0] : undefined;
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }
}

/**
 * A PostgreSQL error that says the connection is gone, not that the query
 * failed: the server ended the session (severity FATAL or PANIC, e.g.
 * 57P01 after pg_terminate_backend), or the driver lost its socket (an
 * error without the server's severity: "Connection terminated
 * unexpectedly"). Errors of the query itself have severity ERROR; our own
 * deadline is never one.
 */
function connectionEnded(e: unknown): boolean {
  const { severity, code } = e as { severity?: unknown; code?: unknown };
  if (code === 'HERALD_SQL_TIMEOUT') return false;
  return severity === undefined || severity === 'FATAL' || severity === 'PANIC';
}
