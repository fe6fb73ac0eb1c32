/**
 * The two database drivers behind the sql resolver, reduced to the one thing
 * it needs: run a query with exactly one parameter and hand back the first
 * column of the first row. The parameter always travels separately from the
 * query text (mysql2 `execute`: a server-side prepared statement; pg: the
 * extended protocol), so a session id can never change the query, and it
 * never appears in a driver's error message either.
 */
import mysql from 'mysql2';
import pg from 'pg';
import { HeraldError } from '../errors.js';

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

export function createSqlPool(url: string, options: SqlPoolOptions): SqlPool {
  return sqlDialectOf(url) === 'mysql' ? new MysqlPool(url, options) : new PostgresPool(url, options);
}

/** Rejects when `promise` has not settled within `ms`; the driver's own timeouts are the first line, this is the backstop. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`query timed out after ${ms} ms`), { code: 'HERALD_SQL_TIMEOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class MysqlPool implements SqlPool {
  readonly dialect = 'mysql' as const;
  readonly #pool: mysql.Pool;
  readonly #timeoutMs: number;

  constructor(url: string, options: SqlPoolOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#pool = mysql.createPool({
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
    // An idle connection whose server went away emits 'error'; unhandled, that would end the process.
    this.#pool.on('connection', (conn) => {
      conn.on('error', (e: Error) => options.onError?.(e));
    });
  }

  async firstValue(sql: string, param: string): Promise<unknown> {
    const run = this.#pool.promise().execute<mysql.RowDataPacket[]>({ sql, rowsAsArray: true, timeout: this.#timeoutMs }, [param]);
    const [rows] = await withTimeout(run, this.#timeoutMs + 100);
    const first = rows[0] as unknown;
    return Array.isArray(first) ? (first[0] as unknown) : undefined;
  }

  async close(): Promise<void> {
    await this.#pool.promise().end().catch(() => undefined);
  }
}

class PostgresPool implements SqlPool {
  readonly dialect = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #timeoutMs: number;

  constructor(url: string, options: SqlPoolOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#pool = new pg.Pool({
      connectionString: url.replace(/^postgresql:/i, 'postgres:'),
      max: options.size,
      connectionTimeoutMillis: options.timeoutMs,
      query_timeout: options.timeoutMs,
      idleTimeoutMillis: 60_000,
      keepAlive: true,
    });
    // pg emits 'error' on the pool for idle clients that lose their server; unhandled, that would end the process.
    this.#pool.on('error', (e: Error) => options.onError?.(e));
  }

  async firstValue(sql: string, param: string): Promise<unknown> {
    const run = this.#pool.query<unknown[]>({ text: sql, values: [param], rowMode: 'array' });
    const result = await withTimeout(run, this.#timeoutMs + 100);
    const first = result.rows[0];
    return first ? first[0] : undefined;
  }

  async close(): Promise<void> {
    await this.#pool.end().catch(() => undefined);
  }
}
