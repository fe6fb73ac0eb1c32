/**
 * The persisted audit trail of background commands: one row per run and per
 * refused request, in a small SQLite file of its own under DATA_DIR (so the
 * message store's schema and its cluster replacements stay unaware of it).
 * better-sqlite3 is synchronous; one short INSERT per run is well under a
 * millisecond, far below the cost of the run itself.
 *
 * The file belongs to operators too: they rotate it (mv, logrotate), delete it
 * and open it in a `sqlite3` shell while Herald runs. Hence a rollback journal
 * (not WAL), a check before each write that the path still names the open
 * file, and a short busy timeout with the records that find the file locked
 * kept in memory until it is free (docs/commands.md, Audit).
 *
 * Besides the trail, the file keeps the runs in progress (`command_runs`, one
 * row from a run's acceptance, queued or started, to its `finished` record, written in the same
 * transaction as that record): a Herald killed or crashed in the middle of a
 * run leaves its row, and the next start closes it (CommandRunJournal).
 */
import { closeSync, openSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import type { HeraldOptions } from '../options.js';
import { makeDirectory } from '../make-directory.js';
import { checkDirectory, fileProblem } from '../path-trust.js';
import type { CommandRunJournal, RunningCommandRecord } from './command-service.js';
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
CREATE INDEX IF NOT EXISTS command_audit_by_event ON command_audit (event, row);
CREATE TABLE IF NOT EXISTS command_runs (
  id   TEXT PRIMARY KEY,
  json TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * The file's layout, in SQLite's user_version. 1 (user_version 0: files from before it was
 * set): `command_audit` alone. 2: `command_runs` too, added to a version 1 file as it opens
 * (an older Herald ignores it). A higher version is a newer Herald's: refused.
 */
const AUDIT_SCHEMA_VERSION = 2;

/**
 * Of `keep` (commandsAuditKeep), the share refused requests have, kept apart from the runs:
 * the newest `keep` runs' records stay whatever is refused, and so do the newest tenth of
 * that many refusals. A refusal costs its caller nothing (on loopback the legacy door asks no
 * token for COMMAND); sharing one bound, 100,000 of them pushed every run out of the trail.
 */
export const AUDIT_REFUSALS_SHARE = 10;

/** How many inserts between two trims of the table to `keep` rows. */
const TRIM_EVERY = 500;
/**
 * How long a write waits for another process's lock, ms. better-sqlite3 waits synchronously,
 * on the event loop: its default 5000 ms froze the whole server for 5 s per finished command
 * while an operator's `sqlite3` shell held BEGIN IMMEDIATE. Our own INSERT takes well under
 * 1 ms, and a reader's lock lasts about as long, so 10 ms rides those out; a lock held for
 * longer is a person's, and the records wait in memory instead (PENDING_MAX, RETRY_MS).
 */
export const AUDIT_BUSY_MS = 10;
/** How long opening the file (and close()'s last write) may wait for a lock, ms: once, not per command; as the main store (sqlite-schema.ts). */
const OPEN_BUSY_MS = 1000;
/** Records kept in memory while the file is locked; past it the oldest go (counted in a warning). About 1 KB each: a couple of MB. */
export const AUDIT_PENDING_MAX = 2000;
/**
 * Ended runs whose `command_runs` row is kept in memory to be removed, while the file cannot be
 * written; past it the oldest are forgotten (counted with the dropped records). An id each: 0.5 MB.
 * More than the records (PENDING_MAX): a run's row matters more than its record, whose absence
 * is only a gap, while a row left over is reported as a run lost to a crash.
 */
export const AUDIT_ENDED_RUNS_MAX = 10 * AUDIT_PENDING_MAX;
/** How often records kept in memory try the locked file again, ms. Each try costs at most AUDIT_BUSY_MS of the event loop: 2 %. */
export const AUDIT_RETRY_MS = 500;

/** An open audit file, and which file it was when opened (a rotation replaces or removes what the path names). */
interface Open {
  readonly db: Database.Database;
  readonly insert: Database.Statement<[number, string, number | null, string]>;
  readonly byId: Database.Statement<[string]>;
  readonly putRun: Database.Statement<[string, string]>;
  readonly dropRun: Database.Statement<[string]>;
  readonly dev: number;
  readonly ino: number;
}

export class SqliteCommandAudit implements CommandAuditStore, CommandRunJournal {
  readonly #file: string;
  readonly #keep: number;
  readonly #keepRefused: number;
  #open: Open | undefined;
  #sinceTrim = 0;
  #trimDue = false;
  /** Records not yet written, oldest first: the file was locked by another process. */
  readonly #pending: CommandAuditRecord[] = [];
  /** Oldest pending records dropped for PENDING_MAX since the last warning about it. */
  #dropped = 0;
  #retry: NodeJS.Timeout | undefined;
  /** A lock has held records back since the last write (warned once per such spell). */
  #locked = false;
  /**
   * A write failed for another reason (a full disk, EMFILE: every write opens the `-journal`)
   * since the last one that went through: its message, warned once per such spell.
   */
  #failing: string | undefined;
  #log: Pick<Logger, 'warn' | 'info'> | undefined;
  /** This process's runs in progress (id → row JSON), until their `finished` record. */
  readonly #runs = new Map<string, string>();
  /** Runs whose row is not yet written (or removed) in the file: a lock held them back, or the file is new. */
  readonly #runsDue = new Set<string>();

  /**
   * `file`: the database path (created when missing); `keep`: the runs' records kept, the oldest
   * go first; `keepRefused`: the refusals' records kept, apart (default: a tenth of `keep`).
   */
  constructor(file: string, keep: number, keepRefused = Math.ceil(keep / AUDIT_REFUSALS_SHARE)) {
    this.#file = file;
    this.#keep = keep;
    this.#keepRefused = keepRefused;
    this.#open = this.#openFile(OPEN_BUSY_MS);
  }

  /** Where warnings go (a rotated or locked file); the runner hands over its logger. */
  useLogger(log: Pick<Logger, 'warn' | 'info'>): void {
    this.#log = log;
  }

  /**
   * Opens (or creates) the file with its schema, trimmed. Everything that touches the file first
   * (its directory, opening it, reading its header, the first write) is one refusal naming it,
   * not a stack trace at start-up: a parent that is a file or not writable, a file that is not a
   * database, a file that may be read but not written.
   */
  #openFile(busyMs: number): Open {
    const file = this.#file;
    let db: Database.Database | undefined;
    try {
      // This user's alone (directory 0700, file 0600; the journal SQLite creates beside it takes
      // the file's mode): who ran what, with which arguments. With the umask's default SQLite
      // made it 0644 in a 0755 directory. A file or directory that exists keeps its mode.
      if (file !== ':memory:') {
        makeDirectory(dirname(file), 0o700);
        // Nothing another user controls (path-trust.ts): SQLite follows a link, and wrote who ran
        // what into a file, or through a dangling link into a new one, of another user's choosing;
        // it also plays back a hot journal it finds beside the file. At every open: a rotation
        // puts a new file at the path. (A group-writable directory of this process's own group is
        // warned about at start for the data dir, and let through here.)
        const refusal = checkDirectory(dirname(file), 'its directory').refusal
          ?? [file, `${file}-journal`, `${file}-wal`, `${file}-shm`].map((path) => fileProblem(path, path === file ? 'the file' : 'its companion')).find((p) => p !== undefined);
        if (refusal !== undefined) throw new Error(refusal);
        try {
          closeSync(openSync(file, 'wx', 0o600));
        } catch {
          // It exists ('wx' leaves it alone), or cannot be created: SQLite's open just below says why.
        }
      }
      db = new Database(file, { timeout: busyMs });
      // A rollback journal, not WAL: SQLite does not checkpoint a WAL into a file that was moved
      // (SQLITE_READONLY_DBMOVED), so a rotation left its records in a `-wal` under the old name,
      // which the next file at that name then took over or overwrote. Herald writes one row per
      // run; WAL's concurrency buys nothing here. A file that is WAL from an older Herald is
      // checkpointed and turned back by this pragma.
      const mode = db.pragma('journal_mode = DELETE', { simple: true });
      if (mode !== 'delete' && mode !== 'memory') throw new Error(`its journal mode stays ${String(mode)}: is it open in another program?`);
      db.pragma('synchronous = NORMAL');
      const version = Number(db.pragma('user_version', { simple: true }));
      if (version > AUDIT_SCHEMA_VERSION) {
        throw new Error(`its schema version is ${version}, this Herald knows up to ${AUDIT_SCHEMA_VERSION}: it was written by a newer Herald`);
      }
      db.exec(SCHEMA);
      if (version !== AUDIT_SCHEMA_VERSION) db.pragma(`user_version = ${AUDIT_SCHEMA_VERSION}`);
      const { dev, ino } = file === ':memory:' ? { dev: 0, ino: 0 } : statSync(file);
      const open: Open = {
        db, dev, ino,
        insert: db.prepare('INSERT INTO command_audit (at, event, aid, json) VALUES (?, ?, ?, ?)'),
        // The same expression and condition as the index command_audit_by_id, so that SQLite uses it:
        // a lookup by id is one index probe, not a scan of up to commandsAuditKeep rows.
        byId: db.prepare(`SELECT row, json FROM command_audit WHERE event = 'finished' AND json_extract(json, '$.id') = ? ORDER BY row DESC LIMIT 1`),
        putRun: db.prepare('INSERT OR REPLACE INTO command_runs (id, json) VALUES (?, ?)'),
        dropRun: db.prepare('DELETE FROM command_runs WHERE id = ?'),
      };
      // The insert counter starts again at every open: without a trim here, a server that
      // restarts before TRIM_EVERY records (a daily restart, a deploy) never trims, and a
      // lowered `keep` would not apply until then either. It is the first write: a file that
      // can be read but not written fails here, inside the refusal. A lock held by someone
      // else only puts it off to the next write.
      try {
        this.#trimIn(db);
      } catch (e) {
        if (!isBusy(e)) throw e;
        this.#trimDue = true;
      }
      db.pragma(`busy_timeout = ${AUDIT_BUSY_MS}`);
      return open;
    } catch (e) {
      db?.close();
      throw new HeraldError('HERALD_ERR_CONFIG', `cannot open the command audit file ${file} (commandsAuditFile): ${(e as Error).message}`);
    }
  }

  /**
   * The open file, reopened when the path no longer names it: an operator moved (rotated) or
   * deleted it. What was written stays in the moved file; what comes now goes to a new file at
   * the path. One stat per call, microseconds, against a run of a program.
   */
  #current(): Open {
    const open = this.#open;
    if (open !== undefined && open.db.open && (this.#file === ':memory:' || this.#samePath(open))) return open;
    if (open?.db.open) {
      // A file that was moved cannot be written to (SQLITE_READONLY_DBMOVED): nothing is lost by closing it.
      open.db.close();
      this.#log?.warn({ file: this.#file }, 'command audit file was moved or deleted: records from now on go to a new file at its path');
    }
    this.#open = undefined;
    this.#open = this.#openFile(AUDIT_BUSY_MS);
    // A new file at the path (rotated, deleted): the runs still in progress belong in it, or a
    // crash now would leave no trace of them where the next start looks.
    for (const id of this.#runs.keys()) this.#runsDue.add(id);
    return this.#open;
  }

  #samePath(open: Open): boolean {
    try {
      const now = statSync(this.#file);
      return now.dev === open.dev && now.ino === open.ino;
    } catch {
      return false;
    }
  }

  record(entry: CommandAuditRecord): void {
    // The run's end: its row goes in the same transaction as this record, so that a crash
    // leaves either the row (closed at the next start) or the record, never both or neither.
    // Also a row another process left (a lost run the runner closes at start-up).
    if (entry.event === 'finished' && entry.id !== undefined) {
      this.#runs.delete(entry.id);
      this.#runsDue.add(entry.id);
      if (this.#runsDue.size > AUDIT_ENDED_RUNS_MAX) this.#forgetOldestEnded();
    }
    this.#pending.push(entry);
    if (this.#pending.length > AUDIT_PENDING_MAX) {
      this.#pending.shift();
      this.#dropped++;
    }
    // Records wait for the retry in order behind those already waiting: trying the locked file
    // again for each would cost AUDIT_BUSY_MS of the event loop per record.
    if (this.#retry === undefined) this.#flush();
  }

  #forgetOldestEnded(): void {
    for (const id of this.#runsDue) {
      if (this.#runs.has(id)) continue;
      this.#runsDue.delete(id);
      this.#dropped++;
      return;
    }
  }

  running(run: RunningCommandRecord): void {
    const id = run.record.id;
    if (id === undefined) return;
    this.#runs.set(id, JSON.stringify(run));
    this.#runsDue.add(id);
    if (this.#retry === undefined) this.#flush();
  }

  unfinished(): RunningCommandRecord[] {
    const rows = this.#current().db.prepare('SELECT id, json FROM command_runs').all() as Array<{ id: string; json: string }>;
    return rows.filter((r) => !this.#runs.has(r.id)).map((r) => JSON.parse(r.json) as RunningCommandRecord);
  }

  /**
   * Writes the pending records, oldest first, and the runs' rows that are due, in one
   * transaction; a lock leaves them pending and tries again later.
   */
  #flush(): void {
    if (this.#pending.length === 0 && this.#runsDue.size === 0) return;
    let open: Open;
    try {
      open = this.#current();
      for (let attempt = 0; ; attempt++) {
        try {
          open.db.transaction(() => {
            for (const entry of this.#pending) {
              const at = entry.endedAt ?? entry.queuedAt;
              open.insert.run(at, entry.event, Number.isSafeInteger(entry.aid) ? entry.aid : null, JSON.stringify(entry));
            }
            for (const id of this.#runsDue) {
              const json = this.#runs.get(id);
              if (json === undefined) open.dropRun.run(id);
              else open.putRun.run(id, json);
            }
          }).immediate();
          break;
        } catch (e) {
          // Moved between the stat and the write: once more, at the new file.
          if (attempt > 0 || (e as { code?: string }).code !== 'SQLITE_READONLY_DBMOVED') throw e;
          open = this.#current();
        }
      }
    } catch (e) {
      if (isBusy(e)) {
        this.#scheduleRetry();
        return;
      }
      // Not a lock (a full disk, EMFILE, a file that became read-only): kept in memory as for a
      // lock (at most PENDING_MAX records) and tried again. Dropped, a run's end took with it the
      // removal of its `command_runs` row, and the next start, however clean, called the run
      // lost: "Herald stopped (killed or crashed)", which it had not.
      this.#failed(e as Error);
      return;
    }
    const written = this.#pending.length;
    this.#pending.length = 0;
    this.#runsDue.clear();
    if (this.#locked || this.#failing !== undefined || this.#dropped > 0) {
      const what = this.#failing !== undefined ? 'writable' : 'free';
      this.#locked = false;
      this.#failing = undefined;
      this.#log?.info({ file: this.#file, written, dropped: this.#dropped }, `command audit file is ${what} again: the records kept in memory are written`);
      if (this.#dropped > 0) this.#log?.warn({ file: this.#file, dropped: this.#dropped }, `command audit: ${this.#dropped} records were dropped while they could not be written (more than ${AUDIT_PENDING_MAX} waiting)`);
      this.#dropped = 0;
    }
    this.#sinceTrim += written;
    if (this.#trimDue || this.#sinceTrim >= TRIM_EVERY) {
      try {
        this.trim();
      } catch (e) {
        // The records are written; a trim that meets a lock waits for the next write.
        if (!isBusy(e)) throw e;
        this.#trimDue = true;
      }
    }
  }

  /** A write that failed for another reason than a lock: said once per spell, tried again. */
  #failed(e: Error): void {
    if (this.#failing === undefined) {
      this.#log?.warn(
        { file: this.#file, err: e.message, pending: this.#pending.length },
        `command audit file cannot be written (${e.message}): records are kept in memory (at most ${AUDIT_PENDING_MAX}) and written when it can be`,
      );
    }
    this.#failing = e.message;
    this.#arm();
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined) return;
    if (!this.#locked) this.#log?.warn(
      { file: this.#file, pending: this.#pending.length },
      `command audit file is locked by another process (a sqlite3 shell in a transaction?): records are kept in memory (at most ${AUDIT_PENDING_MAX}) and written when it is free`,
    );
    this.#locked = true;
    this.#arm();
  }

  #arm(): void {
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      try {
        this.#flush();
      } catch (e) {
        this.#log?.warn({ file: this.#file, err: (e as Error).message }, 'command audit sink failed');
      }
      // A lock still held, or a write that fails still, re-arms the timer.
    }, AUDIT_RETRY_MS);
    // Records waiting for the file must not keep a process that is otherwise done alive; close() writes them.
    this.#retry.unref();
  }

  /** Drops the oldest runs' records beyond `keep`, and the oldest refusals' beyond their own bound. */
  trim(): void {
    this.#trimIn(this.#current().db);
  }

  #trimIn(db: Database.Database): void {
    // Each kind by its own bound (AUDIT_REFUSALS_SHARE), through the index on (event, row): the
    // newest `keep` of a kind are walked once, the older ones deleted.
    const trim = db.prepare(`DELETE FROM command_audit WHERE event = @event AND row <= (
      SELECT row FROM command_audit WHERE event = @event ORDER BY row DESC LIMIT 1 OFFSET @keep)`);
    db.transaction(() => {
      trim.run({ event: 'finished', keep: this.#keep });
      trim.run({ event: 'refused', keep: this.#keepRefused });
    }).immediate();
    this.#sinceTrim = 0;
    this.#trimDue = false;
  }

  /**
   * Newest first. Records still waiting for a locked file come first, with the row numbers they
   * will most likely get (the next of the table's AUTOINCREMENT sequence): a caller that reads
   * the trail right after a run sees that run.
   */
  recent(query: AuditQuery = {}): StoredAuditRecord[] {
    return readable(() => this.#recent(query));
  }

  #recent(query: AuditQuery): StoredAuditRecord[] {
    const { db } = this.#current();
    const limit = Math.max(0, query.limit ?? 100);
    const seq = (db.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'command_audit'`).get() as { seq: number } | undefined)?.seq ?? 0;
    const waiting = this.#pending
      .map((rec, i) => ({ ...rec, row: seq + i + 1 }))
      .filter((r) => (query.aid === undefined || r.aid === query.aid) && (query.before === undefined || r.row < query.before))
      .reverse();
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
    const rows = db.prepare(sql).all(...params, limit) as Array<{ row: number; json: string }>;
    const stored = rows.map((r) => ({ ...(JSON.parse(r.json) as CommandAuditRecord), row: r.row }));
    return [...waiting, ...stored].slice(0, limit);
  }

  finished(id: string): StoredAuditRecord | undefined {
    for (let i = this.#pending.length - 1; i >= 0; i--) {
      const rec = this.#pending[i] as CommandAuditRecord;
      // Its row is not known yet; nobody reads it from a single record (recordedInfo ignores it).
      if (rec.event === 'finished' && rec.id === id) return { ...rec, row: 0 };
    }
    const r = readable(() => this.#current().byId.get(id) as { row: number; json: string } | undefined);
    return r && { ...(JSON.parse(r.json) as CommandAuditRecord), row: r.row };
  }

  /**
   * Writes what is still pending if the file lets it within OPEN_BUSY_MS (once, at shutdown), then
   * closes. When that fails, the runs this Herald saw end still lose their `command_runs` row if
   * the file takes that much: left, the next start would call them lost to a kill or a crash.
   */
  close(): void {
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    if (this.#pending.length > 0 || this.#runsDue.size > 0) {
      try {
        if (this.#open?.db.open) this.#open.db.pragma(`busy_timeout = ${OPEN_BUSY_MS}`);
        this.#flush();
      } catch (e) {
        this.#log?.warn({ file: this.#file, err: (e as Error).message }, 'command audit sink failed');
      }
      if (this.#pending.length > 0 || this.#runsDue.size > 0) this.#lastResort();
      if (this.#retry !== undefined) clearTimeout(this.#retry);
      this.#retry = undefined;
    }
    if (this.#open?.db.open) this.#open.db.close();
  }

  /** close()'s write failed: the ended runs' rows alone, then a warning naming what is lost. */
  #lastResort(): void {
    const ended = [...this.#runsDue].filter((id) => !this.#runs.has(id));
    let rowsLeft = ended;
    if (ended.length > 0) {
      try {
        const open = this.#current();
        open.db.transaction(() => {
          for (const id of ended) open.dropRun.run(id);
        }).immediate();
        rowsLeft = [];
      } catch {
        // Said below.
      }
    }
    const why = this.#failing ?? (this.#locked ? 'locked by another process' : 'not written');
    this.#log?.warn(
      { file: this.#file, err: why, lost: this.#pending.length, dropped: this.#dropped, runsLeftOpen: rowsLeft.length > 0 ? rowsLeft : undefined },
      `command audit file cannot be written at shutdown (${why}): ${this.#pending.length} records kept in memory are lost (they are in the log lines)`
        + (rowsLeft.length > 0 ? `; ${rowsLeft.length} ended runs stay open in it, and the next start will report them lost although this Herald saw them end` : ''),
    );
    this.#pending.length = 0;
    this.#runsDue.clear();
  }
}

/**
 * A read of the file: one that meets another process's lock (a `sqlite3` shell's BEGIN EXCLUSIVE,
 * or a write of its own while it commits) after AUDIT_BUSY_MS is HERALD_ERR_UNAVAILABLE, "ask
 * again" (503), not a failure of Herald's (500), nor "no such command" (404).
 */
function readable<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (isBusy(e)) throw new HeraldError('HERALD_ERR_UNAVAILABLE', 'the command audit file is locked by another process (a sqlite3 shell holding a lock?): try again');
    throw e;
  }
}

function isBusy(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
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
