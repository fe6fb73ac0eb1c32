/**
 * docs/auth.md: the id is the first column of the first row, a number or
 * text of digits, and a column of any other type is refused whatever it
 * holds, with a warning that names the type. On PostgreSQL the resolver
 * refused only what pg did not hand over as a number or a string (and JSON),
 * but pg hands many types over as plain text: a BIT or VARBIT B'111' came as
 * "111" and admitted admin 111, xml '7' and "char" '7' admitted admin 7.
 * Now only the types listed in the docs are read. Against the real
 * PostgreSQL, every type in one table. A char(10) '7' came padded,
 * '7         ', and was refused as no id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver } from '../src/server/auth/sql-resolver.js';
import { parseCookies } from '../src/server/auth/session-resolver.js';
import { createPostgresSessions, requireService } from './helpers/sql-services.js';
import { capturedLog } from './helpers/captured-log.js';

/** Column name → [type, value stored, what the resolver says]. */
const COLUMNS: Record<string, [string, string, string]> = {
  // Refused, the warning naming the type: pg gives each of them as text.
  bits: ['bit(3)', "B'111'", 'BIT'],
  varbits: ['varbit', "B'111'", 'VARBIT'],
  xmlid: ['xml', "'7'", 'XML'],
  onechar: ['"char"', "'7'", 'CHAR'],
  xids: ['xid', "'7'", 'XID'],
  // Admitted: the integers, oid, numeric, the floats, and text of digits.
  i2: ['int2', '7', 'admitted 7'],
  i4: ['int4', '7', 'admitted 7'],
  i8: ['int8', '7', 'admitted 7'],
  oids: ['oid', '7', 'admitted 7'],
  num: ['numeric', '7', 'admitted 7'],
  f4: ['real', '7', 'admitted 7'],
  f8: ['double precision', '7', 'admitted 7'],
  txt: ['text', "'7'", 'admitted 7'],
  vc: ['varchar(10)', "'7'", 'admitted 7'],
  bpc: ['char(1)', "'7'", 'admitted 7'],
  // pg hands char(n) over padded to n ('7         '): read without the padding, as MySQL does.
  bpc10: ['char(10)', "'7'", 'admitted 7'],
  nm: ['name', "'7'", 'admitted 7'],
};

test('PostgreSQL: only the documented types are read as an id; bit strings, xml and "char" are refused naming the type', async (t) => {
  const skipReason = await requireService('postgres');
  if (skipReason) return t.skip(skipReason);
  const db = await createPostgresSessions();
  const pool = createSqlPool(db.url, { size: 1, timeoutMs: 5000 });
  try {
    const entries = Object.entries(COLUMNS);
    await db.admin.query(`CREATE TABLE typed_ids (sid VARCHAR(64), ${entries.map(([name, [type]]) => `${name} ${type}`).join(', ')})`);
    await db.admin.query(`INSERT INTO typed_ids VALUES ('typed-1', ${entries.map(([, [, value]]) => value).join(', ')})`);
    const said: Record<string, string> = {};
    const expected: Record<string, string> = {};
    for (const [name, [, , expect]] of entries) {
      const log = capturedLog('info');
      const resolver = new SqlResolver({ pool, lookups: { admin: { query: `SELECT ${name} FROM typed_ids WHERE sid = $1`, cookie: 'sid', header: '' } }, logger: log.logger });
      const cookie = 'sid=typed-1';
      const r = await resolver.resolve({ kind: 'admin', headers: { cookie }, cookies: parseCookies(cookie), query: new URLSearchParams(), remoteAddress: '127.0.0.1' });
      if (r.outcome === 'admitted') said[name] = `admitted ${r.principal.id}`;
      else {
        const warning = log.lines().find((l) => l.msg === 'session look-up returned something that is not a positive integer id');
        said[name] = `${r.outcome} (${r.reason}), warned of ${String(warning?.columnType)}`;
      }
      expected[name] = expect.startsWith('admitted') ? expect : `refused (session has no valid id), warned of ${expect}`;
    }
    assert.deepEqual(said, expected);
  } finally {
    await pool.close();
    await db.drop();
  }
});
