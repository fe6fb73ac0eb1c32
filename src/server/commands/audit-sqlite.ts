/**
 * The persisted audit trail of background commands: one row per run and per
 * refused request, in a small SQLite file of its own under DATA_DIR (so the
 * message store's schema and its cluster replacements stay unaware of it).
 * better-sqlite3 is synchronous; one short INSERT per run is well under a
 * millisecond, far below the cost of the run itself.
 */
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { HeraldError } from '../errors.js';
import type { HeraldOptions } from '../options.js';
import type { AuditQuery, CommandAuditRecord, CommandAuditStore, StoredAuditRecord } from './outcome.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS command_audit (
  row   INTEGER PRIMARY KEY AUTOINCREMENT,
  at    INTEGER NOT NULL,
  event TEXT NOT NULL,
  aid   INTEGER,
  json  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS command_audit_by_aid ON command_audit (aid, row);
CREATE INDEX IF NOT EXISTS command_audit_by_id ON command_audit (json_extract(json, '$.id')) WHERE event = 'finished';
`;

/** How many inserts between two trims of the table to `keep` rows. */
const TRIM_EVERY = 500;

export class SqliteCommandAudit implements CommandAuditStore {
  readonly #db: Database.Database;
  readonly #keep: number;
  readonly #insert: Database.Statement<[number, string, number | null, string]>;
  readonly #byId: Database.Statement<[string]>;
  #sinceTrim = 0;

  /** `file`: the database path (created when missing); `keep`: rows kept, the oldest go first. */
  constructor(file: string, keep: number) {
    // Everything that touches the file first (its directory, opening it, reading its header
    // with the first pragma) is one refusal naming it, not a stack trace at start-up: a
    // parent that is a file or not writable, a file that is not a database.
    let db: Database.Database | undefined;
    try {
      if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
      db = new Database(file);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
    } catch (e) {
      db?.close();
      throw new HeraldError('HERALD_ERR_CONFIG', `cannot open the command audit file ${file} (commandsAuditFile): ${(e as Error).message}`);
    }
    this.#db = db;
    this.#keep = keep;
    this.#insert = this.#db.prepare('INSERT INTO command_audit (at, event, aid, json) VALUES (?, ?, ?, ?)');
    // The same expression and condition as the index command_audit_by_id, so that SQLite uses it:
    // a lookup by id is one index probe, not a scan of up to commandsAuditKeep rows.
    this.#byId = this.#db.prepare(`SELECT row, json FROM command_audit WHERE event = 'finished' AND json_extract(json, '$.id') = ? ORDER BY row DESC LIMIT 1`);
    // The insert counter starts again at every start-up: without a trim here, a server that
    // restarts before TRIM_EVERY records (a daily restart, a deploy) never trims, and a
    // lowered `keep` would not apply until then either.
    this.trim();
  }

  record(entry: CommandAuditRecord): void {
    const at = entry.endedAt ?? entry.queuedAt;
    this.#insert.run(at, entry.event, Number.isSafeInteger(entry.aid) ? entry.aid : null, JSON.stringify(entry));
    if (++this.#sinceTrim >= TRIM_EVERY) this.trim();
  }

  /** Drops the oldest rows beyond `keep`. */
  trim(): void {
    this.#sinceTrim = 0;
    this.#db.prepare('DELETE FROM command_audit WHERE row <= (SELECT MAX(row) FROM command_audit) - ?').run(this.#keep);
  }

  recent(query: AuditQuery = {}): StoredAuditRecord[] {
    const where: string[] = [];
    const params: number[] = [];
    if (query.aid !== undefined) {
      where.push('aid = ?');
      params.push(query.aid);
    }
    if (query.before !== undefined) {
      where.push('row < ?');
      params.push(query.before);
    }
    const sql = `SELECT row, json FROM command_audit ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY row DESC LIMIT ?`;
    const rows = this.#db.prepare(sql).all(...params, Math.max(0, query.limit ?? 100)) as Array<{ row: number; json: string }>;
    return rows.map((r) => ({ ...(JSON.parse(r.json) as CommandAuditRecord), row: r.row }));
  }

  finished(id: string): StoredAuditRecord | undefined {
    const r = this.#byId.get(id) as { row: number; json: string } | undefined;
    return r && { ...(JSON.parse(r.json) as CommandAuditRecord), row: r.row };
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/**
 * The composition root's choice: a SQLite audit file when `commandsAuditFile`
 * is set (relative paths are under DATA_DIR), otherwise none (log lines only).
 */
export function createCommandAudit(
  options: Pick<HeraldOptions, 'commandsEnabled' | 'commandsAuditFile' | 'commandsAuditKeep' | 'dataDir'>,
): CommandAuditStore | undefined {
  if (!options.commandsEnabled || options.commandsAuditFile === '') return undefined;
  const file = options.commandsAuditFile === ':memory:' || isAbsolute(options.commandsAuditFile)
    ? options.commandsAuditFile
    : resolve(options.dataDir, options.commandsAuditFile);
  return new SqliteCommandAudit(file, options.commandsAuditKeep);
}
