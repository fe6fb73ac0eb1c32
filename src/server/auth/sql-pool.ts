/**
 * The two database drivers behind the sql resolver, reduced to the one thing
 * it needs: run a query with exactly one parameter and hand back the first
 * column of the first row. The parameter always travels separately from the
 * query text (mysql2 `execute`: a server-side prepared statement; pg: the
 * extended protocol), so a session id can never change the query, and it
 * never appears in a driver's error message either.
 */
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FieldPacket, Pool as MysqlDriverPool, RowDataPacket } from 'mysql2';
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

/**
 * The first column of a look-up's first row held neither a number nor text:
 * a boolean, binary data, an array, JSON. Whatever the driver made of it
 * (true, a Buffer, [7], the string inside a JSON '"7"') is no person's id,
 * and reading it as text made one (a BOOLEAN TRUE admitted admin 1).
 */
export interface OtherColumnType {
  /** The column's type as the driver names it (TINY, BLOB, JSONB, BYTEA), or its code when the driver has no name for it (an array's type in pg). */
  readonly columnType: string;
}

/** The first column of the first row: a number or text (null for NULL), OtherColumnType, or `undefined` when there is no row. */
export type FirstValue = number | bigint | string | null | undefined | OtherColumnType;

export interface SqlPool {
  readonly dialect: SqlDialect;
  /** First column of the first row (FirstValue). Rejects on any failure. */
  firstValue(sql: string, param: string): Promise<FirstValue>;
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
 * its connection is given up as dead, in ms. Timers are armed at
 * sqlTimeoutMs + this, so the option's maximum leaves room for it
 * (src/server/options.ts).
 */
export const SERVER_STOP_GRACE_MS = 1000;

/**
 * The share of sqlTimeoutMs a query is always left: a look-up that has not
 * got a connection by the time only this much of its deadline is left
 * answers "unavailable" at once instead of starting its query. Under
 * sustained overload (more handshakes a second than the pool answers) both
 * drivers serve their waiters oldest first, so each connection went to a
 * look-up with a few ms left, whose answer came after its deadline and was
 * thrown away: 40 handshakes a second at a pool that answers 20 admitted
 * nobody after the first second. With the query's share kept, a connection
 * goes to a look-up that can still use its answer, and the pool answers as
 * many as it can.
 */
const QUERY_SHARE = 0.5;

/**
 * How long close() lets each connection's socket close after its goodbye
 * (the server closes it), in ms; then it is destroyed.
 */
const GOODBYE_MS = 500;

function timeoutError(ms: number): Error {
  return Object.assign(new Error(`no answer within ${ms} ms`), { code: 'HERALD_SQL_TIMEOUT' });
}

function noConnectionError(ms: number): Error {
  return Object.assign(new Error(`no connection within ${ms} ms (every one busy, or connecting took that long)`), { code: 'HERALD_SQL_NO_CONNECTION' });
}

/** When a look-up must give up and when it may start a query at the latest, in ms on the monotonic clock (performance.now: a step of the wall clock must not stretch or cut a timeout). */
interface LookUpDeadlines {
  readonly answerBy: number;
  readonly startBy: number;
}

/**
 * Errors of getting a connection, as opposed to errors on one: a refused
 * login (28000, ER_ACCESS_DENIED_ERROR), a missing database, too many
 * connections (53300), a refused or reset connect. Never retried: a fresh
 * connection fails the same way, and each look-up tried sqlPoolSize + 1
 * logins (the FATAL of a refused PostgreSQL login was taken for a dead
 * connection).
 */
const connectFailures = new WeakSet<object>();

function connectFailed(e: unknown): unknown {
  if (typeof e === 'object' && e !== null) connectFailures.add(e);
  return e;
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
 * itself, a failure to get a connection at all (connectFailures), or the
 * deadline, is not retried, nor is any once a query may no longer start
 * (QUERY_SHARE).
 */
async function retryOnDeadConnection<T>(attempt: (deadlines: LookUpDeadlines) => Promise<T>, timeoutMs: number, retries: number, dead: (e: unknown) => boolean): Promise<T> {
  const now = performance.now();
  const deadlines = { answerBy: now + timeoutMs, startBy: now + timeoutMs * (1 - QUERY_SHARE) };
  for (let retry = 0; ; retry++) {
    try {
      return await attempt(deadlines);
    } catch (e) {
      const connectFailure = typeof e === 'object' && e !== null && connectFailures.has(e);
      if (retry >= retries || connectFailure || !dead(e) || performance.now() >= deadlines.startBy) throw e;
    }
  }
}

/** Rejects with `error(ms)` when `promise` has not settled within `ms`; `onLate` receives the promise to clean up what it yields later. */
function withTimeout<T>(promise: Promise<T>, ms: number, onLate: ((late: Promise<T>) => void) | undefined, error: (ms: number) => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onLate?.(promise);
      reject(error(ms));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Waits for a pool's end(), which waits for its queries in flight, at most
 * `ms`: each of them is given up within sqlTimeoutMs + SERVER_STOP_GRACE_MS
 * of its start, and should the driver's end() hang on one all the same,
 * the sockets are still closed.
 */
async function settledWithin(ended: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([ended.catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * The sockets of a pool's connections. A pool's end() says goodbye on each
 * connection and leaves its socket for the server to close; on a link that
 * went dead (no byte flows, nothing closes) the server never does, and the
 * open socket kept an embedding process alive after herald.close().
 */
class PoolSockets {
  readonly #open = new Set<Duplex>();

  add<S extends Duplex>(socket: S): S {
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
    return socket;
  }

  /** Waits up to `ms` for every socket to close, then destroys those still open. */
  async closeWithin(ms: number): Promise<void> {
    const open = [...this.#open];
    if (open.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(open.map((s) => (s.destroyed ? undefined : new Promise((resolve) => s.once('close', resolve))))),
      new Promise((resolve) => (timer = setTimeout(resolve, ms))),
    ]);
    clearTimeout(timer);
    for (const s of this.#open) s.destroy();
  }
}

/** A driver's name for a type code, for the log: pg does not name arrays' types, so the code then. */
function typeName(names: object, code: number | undefined): string {
  if (code === undefined) return 'unknown';
  return Object.entries(names).find(([name, c]) => c === code && !/^\d/.test(name))?.[0] ?? String(code);
}

/** mysql2's codes for JSON (which it parses), TINYINT (BOOLEAN when its length is 1) and YEAR. */
const MYSQL_JSON = 245;
const MYSQL_TINY = 1;
const MYSQL_YEAR = 13;

/**
 * A MySQL value as the resolver may read it. BOOLEAN is TINYINT(1), and
 * mysql2 hands it over as the number 1: refused by its column, as are JSON
 * (parsed by mysql2), YEAR (a number: 2007 admitted admin 2007) and anything
 * mysql2 does not give as a number or text (binary strings and BIT as a
 * Buffer, dates as a Date).
 */
function mysqlFirstValue(value: unknown, field: FieldPacket | undefined): FirstValue {
  if (value === null) return null;
  const type = field?.columnType;
  const bool = type === MYSQL_TINY && field?.columnLength === 1;
  if (bool || type === MYSQL_JSON || type === MYSQL_YEAR || !(typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string')) {
    return { columnType: bool ? 'TINYINT(1), a BOOLEAN' : typeName(mysql().Types, type) };
  }
  return value;
}

/** bpchar, the type of a char(n) column. */
const PG_BPCHAR = 1042;

/**
 * The PostgreSQL types whose values may be ids (docs/auth.md): the integers,
 * oid, numeric and the floats, which pg hands over as a number or as digits,
 * and text (text, varchar, char(n), name). Named by their type OIDs, which
 * are fixed in PostgreSQL's catalog; a domain's column is sent as its base
 * type. An allowlist, not a list of what to refuse: pg hands many other types
 * over as plain text, and a BIT or VARBIT B'111' came as "111" and admitted
 * admin 111, as xml '7' and "char" '7' admitted admin 7.
 */
const PG_ID_TYPES: ReadonlySet<number> = new Set([
  21, 23, 20, 26, // int2, int4, int8, oid
  1700, 700, 701, // numeric, float4, float8
  25, 1043, PG_BPCHAR, 19, // text, varchar, bpchar (char(n)), name
]);

/**
 * A char(n) value without the blanks PostgreSQL pads it with to n: a
 * char(10) '7' comes as '7         ', which no id is, and every session of
 * such a column was refused. PostgreSQL itself holds these blanks
 * insignificant (section 8.3 of its manual), and MySQL and MariaDB strip
 * them on reading. Only spaces are padding; a loop, not / +$/, which
 * backtracks over every run of interior spaces.
 */
function withoutPadding(value: string): string {
  let end = value.length;
  while (end > 0 && value.charCodeAt(end - 1) === 0x20) end--;
  return end === value.length ? value : value.slice(0, end);
}

/**
 * A PostgreSQL value as the resolver may read it: a number, bigint or
 * string of one of PG_ID_TYPES. Any other type is refused whatever pg made
 * of it: a boolean, a Buffer for bytea, an array, a Date, JSON (which pg
 * parses: a jsonb '"7"' came as the string "7"), bit strings, xml.
 */
function pgFirstValue(value: unknown, typeId: number | undefined): FirstValue {
  if (value === null) return null;
  if (typeId === undefined || !PG_ID_TYPES.has(typeId) || !(typeof value === 'number' || typeof value === 'bigint' || typeof value === 'string')) {
    return { columnType: typeName(pg().types.builtins, typeId) };
  }
  return typeId === PG_BPCHAR && typeof value === 'string' ? withoutPadding(value) : value;
}

class MysqlPool implements SqlPool {
  readonly dialect = 'mysql' as const;
  readonly #pool: MysqlDriverPool;
  readonly #timeoutMs: number;
  readonly #size: number;
  readonly #sockets = new PoolSockets();

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
      const socket = mysqlSocket(conn);
      if (socket) this.#sockets.add(socket);
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

  firstValue(sql: string, param: string): Promise<FirstValue> {
    // A fatal error is one of the connection (lost, reset, killed), not of the query.
    return retryOnDeadConnection((deadlines) => this.#attempt(sql, param, deadlines), this.#timeoutMs, this.#size, (e) => (e as { fatal?: unknown }).fatal === true);
  }

  #attempt(sql: string, param: string, { answerBy, startBy }: LookUpDeadlines): Promise<FirstValue> {
    return new Promise((resolve, reject) => {
      let settled = false;
      // The wait for a connection ends when the query's share of the deadline
      // is all that is left (QUERY_SHARE); the query has until the deadline.
      // A query still running at the deadline is answered "timed out" at once,
      // but keeps its connection until the server has stopped it (within
      // timeoutMs of its start, see above) and only then goes back to the
      // pool. Destroying it instead freed the pool slot while the query ran on
      // in the server: under a storm of handshakes against a slow query, a
      // pool of 5 had 17 sessions on the server. Should the server never
      // answer (a dead link), the connection is destroyed after a grace period.
      let timer = setTimeout(() => {
        settled = true;
        reject(noConnectionError(this.#timeoutMs * (1 - QUERY_SHARE)));
      }, Math.max(1, startBy - performance.now()));
      // (A look-up that gave up stays in mysql2's queue; its turn hands the connection straight on.)
      this.#pool.getConnection((err, c) => {
        if (settled) {
          c?.release();
          return;
        }
        clearTimeout(timer);
        if (err) {
          settled = true;
          reject(connectFailed(err));
          return;
        }
        timer = setTimeout(() => {
          settled = true;
          reject(timeoutError(this.#timeoutMs));
        }, Math.max(1, answerBy - performance.now()));
        // mysql2's destroy() only half-closes the socket, which on a dead link stays open, and
        // leaves the query and a close()'s goodbye queued behind it unanswered for ever; ended
        // under it, the socket fails the query (fatal) and the connection leaves the pool.
        const backstop = setTimeout(() => (mysqlSocket(c) ?? c).destroy(), this.#timeoutMs + SERVER_STOP_GRACE_MS);
        c.execute<RowDataPacket[]>({ sql, rowsAsArray: true }, [param], (qerr, rows, fields) => {
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
          resolve(Array.isArray(first) ? mysqlFirstValue(first[0], fields[0]) : undefined);
        });
      });
    });
  }

  async close(): Promise<void> {
    await settledWithin(this.#pool.promise().end(), this.#timeoutMs + SERVER_STOP_GRACE_MS);
    await this.#sockets.closeWithin(GOODBYE_MS);
  }
}

/** mysql2 keeps a connection's socket (a TLS one once upgraded) as `stream`; its typings do not say so. */
function mysqlSocket(conn: object): Socket | undefined {
  const stream = (conn as { stream?: unknown }).stream;
  return stream instanceof Socket ? stream : undefined;
}

class PostgresPool implements SqlPool {
  readonly dialect = 'postgres' as const;
  readonly #pool: PgDriverPool;
  readonly #timeoutMs: number;
  readonly #size: number;
  readonly #sockets = new PoolSockets();
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
      // (#attempt waits less: QUERY_SHARE. pg's own limit takes a look-up that gave up out of its queue.)
      connectionTimeoutMillis: options.timeoutMs,
      // The server cancels a query at the deadline itself, so the connection stays usable.
      statement_timeout: options.timeoutMs,
      // ...and should it never answer (a dead link), the driver gives the query up a little later.
      query_timeout: options.timeoutMs + SERVER_STOP_GRACE_MS,
      idleTimeoutMillis: 60_000,
      keepAlive: true,
      // The socket pg would make itself (a TLS one wraps it), kept to be closed by close().
      stream: () => this.#sockets.add(new Socket()),
    });
    // pg emits 'error' on the pool for idle clients that lose their server; unhandled, that would end the process.
    this.#pool.on('error', (e: Error) => options.onError?.(e));
  }

  firstValue(sql: string, param: string): Promise<FirstValue> {
    return retryOnDeadConnection((deadlines) => this.#attempt(sql, param, deadlines), this.#timeoutMs, this.#size, connectionEnded);
  }

  async #attempt(sql: string, param: string, { answerBy, startBy }: LookUpDeadlines): Promise<FirstValue> {
    // The wait for a connection ends when the query's share of the deadline is all that is left (QUERY_SHARE).
    const waitMs = Math.max(1, startBy - performance.now());
    const client = await withTimeout(this.#pool.connect(), waitMs, (late) => late.then((c) => c.release(), () => undefined), () => noConnectionError(this.#timeoutMs * (1 - QUERY_SHARE))).catch((e: unknown) => {
      throw connectFailed(e);
    });
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
    const result = await withTimeout(query, Math.max(1, answerBy - performance.now()), undefined, () => timeoutError(this.#timeoutMs));
    const first = result.rows[0];
    return first ? pgFirstValue(first[0], result.fields[0]?.dataTypeID) : undefined;
  }

  async close(): Promise<void> {
    await settledWithin(this.#pool.end(), this.#timeoutMs + SERVER_STOP_GRACE_MS);
    await this.#sockets.closeWithin(GOODBYE_MS);
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
