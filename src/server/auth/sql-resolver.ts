/**
 * The sql resolver: the panel already keeps a table of live sessions; look
 * the tab's session id up in it. One configured query per kind of person,
 * with exactly one parameter (the session id), taken from a configured
 * header or cookie.
 */
import type { Logger } from 'pino';
import type { PrincipalKind } from '../../protocol/principal.js';
import { toPersonId } from '../../protocol/principal.js';
import { HeraldError } from '../errors.js';
import type { HeraldOptions } from '../options.js';
import type { CredentialResolver, Handshake, Refusal, Resolution } from './session-resolver.js';
import { headerValue } from './session-resolver.js';
import { LookUpFailureLog, LookUpRefusalLog } from './look-up-failure-log.js';
import type { FirstValue, SqlDialect, SqlPool } from './sql-pool.js';

/** How one kind of person is looked up. */
export interface SqlLookup {
  /** One-parameter query whose first column of the first row is the person's id. */
  readonly query: string;
  /** Cookie holding the session id ('' = none). */
  readonly cookie: string;
  /** Header holding the session id ('' = none); checked before the cookie. */
  readonly header: string;
}

export type SqlLookups = Partial<Record<PrincipalKind, SqlLookup>>;

/**
 * The old daemon's look-ups (ABillS `websocket_backend`): admins by the `sid`
 * cookie of the admin interface or an `ADMINSID` header, users by a
 * `USERSID` header. Written with `?`; `$1` for PostgreSQL.
 */
export function abillsLookups(dialect: SqlDialect): Required<SqlLookups> {
  const p = dialect === 'postgres' ? '$1' : '?';
  return {
    admin: { query: `SELECT aid FROM web_online WHERE sid = ${p}`, cookie: 'sid', header: 'ADMINSID' },
    user: { query: `SELECT uid FROM web_users_sessions WHERE sid = ${p}`, cookie: '', header: 'USERSID' },
  };
}

/** The look-ups the options describe: the preset's values for every field left empty. */
export function sqlLookupsFromOptions(o: HeraldOptions, dialect: SqlDialect): SqlLookups {
  const preset: SqlLookups = o.sqlPreset === 'abills' ? abillsLookups(dialect) : {};
  const pick = (kind: PrincipalKind, query: string, cookie: string, header: string): SqlLookup | undefined => {
    const base = preset[kind];
    const q = query || base?.query || '';
    if (q === '') return undefined;
    return { query: q, cookie: cookie || base?.cookie || '', header: header || base?.header || '' };
  };
  const out: { -readonly [K in PrincipalKind]?: SqlLookup } = {};
  const admin = pick('admin', o.sqlAdminQuery, o.sqlAdminCookie, o.sqlAdminHeader);
  const user = pick('user', o.sqlUserQuery, o.sqlUserCookie, o.sqlUserHeader);
  if (admin) out.admin = admin;
  if (user) out.user = user;
  return out;
}

/** Session ids are short printable tokens; anything else is refused without asking the database. */
const MAX_SESSION_ID_LENGTH = 512;
const SESSION_ID = /^[\x21-\x7e]+$/;

/** A query must take exactly the one parameter, in its dialect's spelling. */
export function checkQuery(dialect: SqlDialect, kind: PrincipalKind, query: string): void {
  const option = kind === 'admin' ? 'sqlAdminQuery' : 'sqlUserQuery';
  if (dialect === 'mysql') {
    const marks = query.split('?').length - 1;
    if (marks !== 1) throw new HeraldError('HERALD_ERR_CONFIG', `option "${option}" must have exactly one ? placeholder for MySQL (found ${marks})`);
  } else if (!/\$1(?!\d)/.test(query) || /\$([2-9]|1\d)/.test(query)) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "${option}" must use exactly one parameter, $1, for PostgreSQL`);
  }
}

/**
 * PostgreSQL refuses a parameter that is not a value of its column's type (a
 * `uuid` or `bigint` session column, and a cookie that is not one) with a
 * data exception (SQLSTATE class 22) raised while binding `$1`, where MySQL
 * converts and finds no row. That is a session id no session can have, so a
 * refusal, not an outage. Only an error PostgreSQL places at the parameter
 * counts: its CONTEXT (`where`) is then the one line "unnamed portal
 * parameter $1 = '...'", translated with the server's locale but keeping
 * `$1`. A data exception of the query itself (a division by zero, a cast of
 * a column) is the query's fault, and refusing then would log everybody
 * out; so is one inside a function the query calls, whose CONTEXT quotes the
 * function's statement, `$1` and all, on a line of its own above the
 * function's ("SQL statement "…$1…"" then "PL/pgSQL function …").
 */
function isMalformedParameter(e: unknown): boolean {
  const { code, where } = e as { code?: unknown; where?: unknown };
  return typeof code === 'string' && code.startsWith('22') && typeof where === 'string' && !where.includes('\n') && /\$1(?!\d)/.test(where);
}

export interface SqlResolverOptions {
  readonly pool: SqlPool;
  readonly lookups: SqlLookups;
  readonly logger?: Logger | undefined;
}

export class SqlResolver implements CredentialResolver {
  readonly name = 'sql';
  readonly #pool: SqlPool;
  readonly #lookups: SqlLookups;
  /** Failed look-ups, bounded: during an outage every one fails (LookUpFailureLog). */
  readonly #failures: LookUpFailureLog | undefined;
  /** Refusals worth a line, bounded: a stranger chooses how many (LookUpRefusalLog). */
  readonly #refusals: LookUpRefusalLog | undefined;

  constructor(options: SqlResolverOptions) {
    this.#pool = options.pool;
    this.#lookups = options.lookups;
    this.#failures = options.logger && new LookUpFailureLog(options.logger, 'sql');
    this.#refusals = options.logger && new LookUpRefusalLog(options.logger, 'sql');
    for (const kind of ['admin', 'user'] as const) {
      const lookup = this.#lookups[kind];
      if (!lookup) continue;
      checkQuery(this.#pool.dialect, kind, lookup.query);
      if (lookup.cookie === '' && lookup.header === '') {
        throw new HeraldError('HERALD_ERR_CONFIG', `the ${kind} look-up has a query but neither a cookie nor a header to take the session id from`);
      }
    }
  }

  credentialOf(handshake: Handshake): string | Refusal {
    const lookup = this.#lookups[handshake.kind];
    if (!lookup) return { outcome: 'refused', reason: `${handshake.kind}s are not admitted` };
    // Checked as they come, untrimmed: node has already dropped the spaces and tabs around a
    // header's value (RFC 9110 §5.5), and parseCookies those around a cookie's before decoding
    // it. A trim() here also dropped what decoding gave (`sid=%20abc%0A`) and U+00A0, U+FEFF,
    // U+3000, and such an id was looked up as printable ASCII.
    const fromHeader = lookup.header ? headerValue(handshake.headers, lookup.header) : undefined;
    const sid = fromHeader || (lookup.cookie ? handshake.cookies.get(lookup.cookie) : undefined);
    if (!sid) return { outcome: 'refused', reason: 'no session id' };
    if (sid.length > MAX_SESSION_ID_LENGTH || !SESSION_ID.test(sid)) return { outcome: 'refused', reason: 'malformed session id' };
    return sid;
  }

  async resolve(handshake: Handshake): Promise<Resolution> {
    const credential = this.credentialOf(handshake);
    return typeof credential === 'string' ? this.recheck(handshake.kind, credential) : credential;
  }

  async recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    const lookup = this.#lookups[kind];
    if (!lookup) return { outcome: 'refused', reason: `${kind}s are not admitted` };
    let value: FirstValue;
    try {
      value = await this.#pool.firstValue(lookup.query, credential);
    } catch (e) {
      // Log the driver's code only: its message could quote the query's context
      // (PostgreSQL's quotes the session id itself: 'invalid input syntax for type uuid: "…"').
      const code = (e as { code?: unknown }).code;
      if (isMalformedParameter(e)) {
        this.#refusals?.refused('info', 'not of its column\'s type', { resolver: 'sql', kind, code }, 'session look-up refused: the session id is not of its column\'s type');
        return { outcome: 'refused', reason: 'malformed session id' };
      }
      const known = typeof code === 'string' ? code : undefined;
      this.#failures?.failed(known ?? 'no code', { resolver: 'sql', kind, code: known }, 'session look-up failed: database unavailable');
      return { outcome: 'unavailable', reason: 'session database unavailable' };
    }
    if (value === undefined || value === null) return { outcome: 'refused', reason: 'session not found' };
    // Only a number or text is an id (sql-pool.ts: OtherColumnType); a bigint is read as its digits.
    const columnType = typeof value === 'object' ? value.columnType : undefined;
    const id = typeof value === 'object' ? undefined : toPersonId(typeof value === 'bigint' ? String(value) : value);
    if (id === undefined) {
      this.#refusals?.refused('warn', 'not an id', { resolver: 'sql', kind, columnType }, 'session look-up returned something that is not a positive integer id');
      return { outcome: 'refused', reason: 'session has no valid id' };
    }
    return { outcome: 'admitted', principal: { kind, id }, credential };
  }

  async close(): Promise<void> {
    this.#failures?.flush();
    this.#refusals?.flush();
    await this.#pool.close();
  }
}
