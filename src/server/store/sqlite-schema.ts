/**
 * The SQLite store's file: opening it, its layout, and the migration from the
 * layouts before it. Version 3 (the journal, acks in it):
 *
 * - `streams`: one row per stream ever written. `epoch` is written when the
 *   stream is first appended to; `last_seq` and `acked` lazily (before
 *   journal rows are pruned, and on close): on open the true last SEQ is the
 *   larger of `last_seq` and the highest in the journal, and the true
 *   acknowledged SEQ the larger of `acked` and the journal's ack entries.
 *   A stream idle at two pruning passes in a row (nothing retained, no
 *   idempotency key) is evicted: its row is deleted, and `meta`'s
 *   `seq_floor` raised to its last SEQ in the same transaction; a stream
 *   without a row starts its SEQs above the floor (stream-index.ts). A key
 *   of `meta`, not a new table or column, but the version is 4 all the same:
 *   a Herald of version 3 does not know the floor and would give an evicted
 *   stream SEQ 1 again in its old EPOCH, so it must refuse the file
 *   ("written by a newer Herald") rather than open it.
 * - `journal`: one row per committed write batch, holding its appends and
 *   the acknowledged SEQs it raised (journal-codec.ts). Version 5: an entry
 *   may repeat the previous entry's JSON by `=` (a send to a list of people
 *   writes its JSON once); a Herald of version 4 would call such a row
 *   corrupt, so the first row that does raises the file to 5. `max_expires_at` is
 *   when the whole row may go (0 for a row of acks alone); the store keeps it
 *   in memory for every row, so it has no index.
 *
 * Version 2 wrote `acked` with each batch that raised it: an UPDATE per
 * acknowledged stream, each dirtying a page of `streams` that the WAL then
 * wrote whole. Its files open unchanged (a version 2 body is a version 3
 * body without ack entries), and so do version 3 files (they have no floor:
 * nothing was evicted). The version on the file is the oldest whose Herald
 * reads it right: it is raised only by the first write that needs it, in
 * the same transaction (prepareSchema), so that the previous Herald still
 * opens a file the current one only read. Version 1 kept one row per
 * notification (and per idempotency key) with two indexes, and updated the
 * stream's row on every append.
 */
import { accessSync, closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { HeraldError } from '../errors.js';
import { encodeEntry } from './journal-codec.js';
import { derivedEpoch, EPOCH_DERIVATION, newEpoch, type EpochDerivation } from './message-id.js';

export const SCHEMA_VERSION = '5';

/** `meta`'s key for the highest last SEQ of any evicted stream (absent: 0). */
export const SEQ_FLOOR_KEY = 'seq_floor';

/**
 * `meta`'s key for how never-written streams derive their EPOCH from the
 * store epoch (message-id.ts): `<derivation> <store epoch>`, e.g.
 * `sha256 kq3Xw1Zp`. It holds only while the store epoch is the one named:
 * a new store epoch (a rotation, by this Herald or an older one) derives
 * the current way.
 */
const DERIVATION_KEY = 'epoch_derivation';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS streams (
  stream   TEXT PRIMARY KEY,
  epoch    TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  acked    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal (
  id             INTEGER PRIMARY KEY,
  max_expires_at INTEGER NOT NULL,
  body           TEXT NOT NULL
);
`;

export interface OpenedStoreFile {
  db: Database.Database;
  /** Holds the `<file>-lock` file's exclusive lock until closed (absent for `:memory:`). */
  lock: Database.Database | undefined;
  /** The epoch never-written streams derive theirs from. */
  storeEpoch: string;
  /** How they derive it: the way this file's streams were written with (see DERIVATION_KEY). */
  derivation: EpochDerivation;
  /** The schema version on the file (SqliteStore raises it when a write needs a newer one). */
  schema: number;
  /** See SqliteStore.rotatedEpochs. */
  rotatedEpochs: boolean;
  /** Why the epochs were rotated (undefined when they were not): see SqliteStore.rotation. */
  rotation: string | undefined;
  /** Notifications migrated from a version 1 file (0 when it was not one). */
  migrated: number;
}

/**
 * What the `-wal` beside the file held before this open: `missing`, `empty`
 * (0 bytes), `valid` (a header SQLite reads), or `unusable` (too short, or a
 * header whose magic, version or checksum is wrong: SQLite then ignores the
 * whole WAL, commits and all, without an error).
 */
type WalState = 'missing' | 'empty' | 'valid' | 'unusable';

/** Reads the WAL header's 32 bytes (https://www.sqlite.org/fileformat2.html#walformat). */
function inspectWal(file: string): WalState {
  let fd: number;
  try {
    fd = openSync(`${file}-wal`, 'r');
  } catch (e) {
    // Not readable is not "missing": SQLite's open then fails and says why.
    return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'valid';
  }
  try {
    if (fstatSync(fd).size === 0) return 'empty';
    const header = Buffer.alloc(32);
    if (readSync(fd, header, 0, 32, 0) < 32) return 'unusable';
    const magic = header.readUInt32BE(0);
    if (magic !== 0x377f0682 && magic !== 0x377f0683) return 'unusable';
    if (header.readUInt32BE(4) !== 3007000) return 'unusable';
    // The checksum's words are big-endian when the magic's low bit is set, else little-endian.
    const word = (i: number): number => (magic & 1 ? header.readUInt32BE(i) : header.readUInt32LE(i));
    let s0 = 0;
    let s1 = 0;
    for (let i = 0; i < 24; i += 8) {
      s0 = (s0 + word(i) + s1) >>> 0;
      s1 = (s1 + word(i + 4) + s0) >>> 0;
    }
    return s0 === header.readUInt32BE(24) && s1 === header.readUInt32BE(28) ? 'valid' : 'unusable';
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens (or creates) the file for one store: its lock taken (a second
 * process is refused with HERALD_ERR_UNAVAILABLE), WAL without automatic
 * checkpoints (a WalCheckpointer runs them off the event loop), the schema
 * read (a version 1 file migrated), epochs rotated when commits may have been
 * lost, and the file marked as open (`clean` = 0 until the store's close).
 * All of it in one transaction that is left open: the caller loads the
 * store first, then calls settleStoreFile, which commits it and copies into
 * the file what a killed process left in the WAL, or, when the load failed,
 * abandonStoreFile, which rolls it back. A failed start thus leaves the file
 * as it was, its `clean` mark and a version 1 file's layout included (a
 * start refused for a body it could not read had committed both), and a
 * WAL that is not the file's (a backup restored beside a killed Herald's
 * WAL) never overwrites it.
 */
export function openStoreFile(file: string, options: { synchronous?: 'normal' | 'full'; bootId?: string }): OpenedStoreFile {
  const lock = file === ':memory:' ? undefined : takeLock(file);
  if (lock) {
    try {
      refuseUnwritable(file);
    } catch (e) {
      lock.close();
      throw e;
    }
  }
  const wal: WalState = lock ? inspectWal(file) : 'valid';
  let db: Database.Database;
  try {
    db = new Database(file);
  } catch (e) {
    lock?.close();
    throw openError(file, e);
  }
  try {
    // Before anything is written (journal_mode = WAL writes the header):
    // another program's database is left as it is.
    refuseForeign(db, file);
    db.pragma('busy_timeout = 1000');
    db.pragma('journal_mode = WAL');
    // The checkpoint worker's connection shares the WAL, so the locking mode
    // stays normal; `<file>-lock` keeps other processes out instead.
    if (lock) db.pragma('wal_autocheckpoint = 0');
    // The open's own commit is fsynced whatever the setting: it records that
    // the store is open (`clean` = 0), which is what tells the next start,
    // after a power cut, that commits may be lost. Under NORMAL nothing would
    // fsync it before the first checkpoint, 4 MB of sends later (days for a
    // quiet panel), and a power cut that took the sends took the mark too:
    // the next start kept every EPOCH and assigned the lost SEQs again.
    db.pragma('synchronous = FULL');
    db.exec('BEGIN IMMEDIATE');
    const { found, schema, migrated } = prepareSchema(db);
    const boot = options.bootId ?? currentBootId();
    const rotation = lostCommitsPossible(db, boot, wal);
    const rotatedEpochs = rotation !== undefined;
    // The epoch of streams that have no row yet: a head() need not write a
    // row (a connect must not cost an INSERT), and the epoch it reports
    // stays the one the stream's first append records.
    const stored = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'epoch'").get()?.value;
    const storeEpoch = stored === undefined || rotatedEpochs ? newEpoch() : stored;
    if (rotatedEpochs) {
      // Derived from the new store epoch (as new as a random one): a stream
      // evicted later and written again (stream-index.ts) keeps its EPOCH.
      const rows = db.prepare<[], { stream: string }>('SELECT stream FROM streams').all();
      const rotate = db.prepare<[string, string]>('UPDATE streams SET epoch = ? WHERE stream = ?');
      for (const r of rows) rotate.run(derivedEpoch(storeEpoch, r.stream), r.stream);
    }
    const derivation = storeEpoch === stored ? fileDerivation(db, storeEpoch, found) : EPOCH_DERIVATION;
    const put = db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    put.run('epoch', storeEpoch);
    put.run(DERIVATION_KEY, `${derivation} ${storeEpoch}`);
    put.run('boot', boot ?? '');
    put.run('clean', '0');
    put.run('synchronous', options.synchronous === 'full' ? 'full' : 'normal');
    // Committed by settleStoreFile once the store loaded (see above).
    return { db, lock, storeEpoch, derivation, schema, rotatedEpochs, rotation, migrated };
  } catch (e) {
    abandonStoreFile(file, db, lock);
    throw openError(file, e);
  }
}

/**
 * Once the store loaded: commits the open's transaction (fsynced: see
 * openStoreFile), copies into the file what a killed process left in the
 * WAL (from here the WAL holds this run's commits only), and sets the run's
 * `synchronous`.
 */
export function settleStoreFile(opened: OpenedStoreFile, synchronous: 'normal' | 'full' | undefined): void {
  opened.db.exec('COMMIT');
  if (opened.lock) opened.db.pragma('wal_checkpoint(TRUNCATE)');
  opened.db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
}

/**
 * Closes a store whose open failed: rolls back the open's transaction (the
 * file stays as it was: its schema version, its `clean` mark), and closes
 * without copying the WAL into the file.
 * SQLite's last connection to close checkpoints the WAL and deletes it: a
 * WAL that is not the file's (another store's, left beside a restored
 * backup) overwrote the intact file that way, and a start that failed after
 * the open's commit left `clean` = 0 without a WAL, which the next start
 * takes for a lost WAL. A read-only connection opened first keeps the
 * close from checkpointing (it is not the last), and never checkpoints
 * itself.
 */
export function abandonStoreFile(file: string, db: Database.Database, lock: Database.Database | undefined): void {
  try {
    if (db.inTransaction) db.exec('ROLLBACK');
  } catch {
    // Closing rolls it back all the same.
  }
  let guard: Database.Database | undefined;
  if (lock) {
    try {
      guard = new Database(file, { readonly: true, fileMustExist: true });
      // Its first read takes the shared lock the close of `db` then cannot get past.
      guard.pragma('schema_version');
    } catch {
      // A file SQLite cannot read at all: there is no WAL of it to apply either.
    }
  }
  db.close();
  guard?.close();
  lock?.close();
}

/**
 * Refuses a store file (or a `-wal`, `-shm` beside it) that this process
 * cannot write, naming it and its mode. SQLite opens such a file read-only,
 * creates the `-wal` and `-shm` with the file's mode (0444: they then
 * blocked the start after the file was made writable again), and fails with
 * "attempt to write a readonly database", which names neither.
 */
function refuseUnwritable(file: string): void {
  for (const path of [file, `${file}-wal`, `${file}-shm`]) {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st) continue;
    try {
      accessSync(path, constants.W_OK);
    } catch {
      const mode = `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner uid ${st.uid}`;
      const fix = path === file ? `make it writable for this user (uid ${process.getuid?.() ?? '?'})` : `remove it (Herald stopped): SQLite makes it again`;
      throw new HeraldError('HERALD_ERR_INTERNAL', `cannot open store ${file}: ${path} is read-only (${mode}): ${fix}`);
    }
  }
}

/**
 * Refuses a database that is not Herald's: one that holds tables but no
 * `meta` table. Herald added its tables to it and switched it to WAL.
 */
function refuseForeign(db: Database.Database, file: string): void {
  const names = db.prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE substr(name, 1, 7) <> 'sqlite_' LIMIT 50").all().map((r) => r.name);
  if (names.length === 0 || names.includes('meta')) return;
  throw new Error(`${file} is not Herald's store (it holds other tables: ${names.slice(0, 5).join(', ')}${names.length > 5 ? ', …' : ''}, and no meta table); it was left as it is: point sqliteFile at another file`);
}

function openError(file: string, e: unknown, lockFile?: string): HeraldError {
  if (e instanceof HeraldError) return e;
  const busy = (e as { code?: string }).code === 'SQLITE_BUSY';
  if (busy) return new HeraldError('HERALD_ERR_UNAVAILABLE', `store ${file} is in use by another process`);
  // SQLite's own words ("unable to open database file") name no file: say
  // which one, and why when the directory cannot be written (a read-only
  // mount), where the store file itself may be there and readable.
  const what = lockFile ? `cannot take its lock file ${lockFile}: ${(e as Error).message}` : (e as Error).message;
  return new HeraldError('HERALD_ERR_INTERNAL', `cannot open store ${file}: ${what}${unwritableDir(file)}`);
}

/** ' (its directory … is not writable: …)' when it is not, else ''. */
function unwritableDir(file: string): string {
  const dir = dirname(file);
  try {
    accessSync(dir, constants.W_OK);
    return '';
  } catch (e) {
    return ` (its directory ${dir} is not writable: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  }
}

/**
 * One process per store file: an exclusive lock on `<file>-lock` (a tiny
 * SQLite file in exclusive locking mode), held until the store closes. The
 * operating system drops it when the process dies, so a killed Herald never
 * leaves a stale lock behind.
 */
export function takeLock(file: string, timeoutMs = 1000): Database.Database {
  let lock: Database.Database;
  try {
    // A second process waits up to a second for the lock (a restart whose old process is still closing), then is refused.
    lock = new Database(`${file}-lock`, { timeout: timeoutMs });
  } catch (e) {
    throw openError(file, e, `${file}-lock`);
  }
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.pragma('journal_mode = MEMORY');
    // Exclusive locking mode keeps the lock of the first write until close.
    lock.exec('BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder; COMMIT');
    lock.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    return lock;
  } catch (e) {
    lock.close();
    throw openError(file, e, `${file}-lock`);
  }
}

/** Entries per journal row written by the migration. */
const MIGRATION_ROW = 1000;

/**
 * Inside the open transaction: creates the tables of a new file (version
 * 5), or migrates a version 1 file (to version 3, the journal it is then);
 * a file of version 2 to 5 keeps its version, which SqliteStore raises in
 * the transaction of the first write an older Herald would misread (a
 * journal row, which may hold ack entries: 3; the SEQ floor: 4; a row that
 * repeats a JSON: 5), so a
 * Herald that read the file and wrote nothing newer (its listen failed,
 * say) leaves it to the previous Herald. Returns the version found
 * (undefined for a new file), the version on the file now and how many
 * notifications were migrated (0 when none), and throws on a version it
 * does not know.
 */
function prepareSchema(db: Database.Database): { found: number | undefined; schema: number; migrated: number } {
  db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID');
  const version = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema'").get()?.value;
  const set = db.prepare<[string]>("INSERT INTO meta (key, value) VALUES ('schema', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  if (version === undefined) {
    db.exec(SCHEMA);
    set.run(SCHEMA_VERSION);
    return { found: undefined, schema: Number(SCHEMA_VERSION), migrated: 0 };
  }
  if (version === '1') {
    const migrated = migrateV1(db);
    set.run('3');
    return { found: 1, schema: 3, migrated };
  }
  if (version !== '2' && version !== '3' && version !== '4' && version !== SCHEMA_VERSION) throw new Error(`unknown schema version ${version} (this Herald reads versions 1 to ${SCHEMA_VERSION}: the file was written by a newer Herald, or is not Herald's)`);
  db.exec(SCHEMA);
  return { found: Number(version), schema: Number(version), migrated: 0 };
}

/**
 * How this file's streams derived their EPOCHs from `storeEpoch`: as
 * recorded for it (DERIVATION_KEY), or else (a file of a Herald before the
 * record, or one whose store epoch an older Herald rotated since) as a
 * stream's stored EPOCH shows: a stream's row records the EPOCH derived
 * when it was first written. The current way wins when any stream was
 * written so (tabs connected since hold cursors derived that way); with no
 * stream to tell (none, or all rotated to random EPOCHs by an older
 * Herald), a version 1 file derived with SHA-256, any other the current way.
 * Run once per store epoch: the answer is recorded.
 */
function fileDerivation(db: Database.Database, storeEpoch: string, found: number | undefined): EpochDerivation {
  const recorded = db.prepare<[], { value: string }>(`SELECT value FROM meta WHERE key = '${DERIVATION_KEY}'`).get()?.value;
  if (recorded !== undefined) {
    const [name, epoch] = recorded.split(' ');
    if (epoch === storeEpoch && (name === 'mix48' || name === 'sha256')) return name;
  }
  let sha256 = false;
  for (const r of db.prepare<[], { stream: string; epoch: string }>('SELECT stream, epoch FROM streams').iterate()) {
    if (r.epoch === derivedEpoch(storeEpoch, r.stream, 'mix48')) return 'mix48';
    if (!sha256 && r.epoch === derivedEpoch(storeEpoch, r.stream, 'sha256')) sha256 = true;
  }
  return sha256 || found === 1 ? 'sha256' : EPOCH_DERIVATION;
}

/**
 * Version 1 → 3: every notification (with its idempotency key) becomes a
 * journal entry, in stream and SEQ order, 1000 per row; a key whose
 * notification was already dropped for the cap stays, as an entry without
 * JSON; streams keep epoch, last_seq and acked. One transaction (the
 * caller's): a failed migration leaves the file as it was.
 */
function migrateV1(db: Database.Database): number {
  db.exec(SCHEMA);
  const keys = new Map<string, { stream: string; key: string; seq: number; expiresAt: number }>();
  for (const k of db.prepare<[], { stream: string; key: string; seq: number; expires_at: number }>(
    'SELECT stream, key, seq, expires_at FROM idempotency',
  ).iterate()) {
    keys.set(`${k.stream}\0${k.seq}`, { stream: k.stream, key: k.key, seq: k.seq, expiresAt: k.expires_at });
  }
  const insert = db.prepare<[number, string]>('INSERT INTO journal (max_expires_at, body) VALUES (?, ?)');
  let body = '';
  let entries = 0;
  let maxExpires = 0;
  const add = (entry: string, expiresAt: number): void => {
    body += entry;
    if (expiresAt > maxExpires) maxExpires = expiresAt;
    if (++entries === MIGRATION_ROW) flush();
  };
  const flush = (): void => {
    if (entries > 0) insert.run(maxExpires, body);
    body = '';
    entries = 0;
    maxExpires = 0;
  };
  // Keyset pages: a statement cannot run while another one is being iterated.
  const page = db.prepare<[string, number], { stream: string; seq: number; json: string; expires_at: number }>(
    'SELECT stream, seq, json, expires_at FROM messages WHERE (stream, seq) > (?, ?) ORDER BY stream, seq LIMIT 1000',
  );
  let migrated = 0;
  let after: [string, number] = ['', 0];
  for (;;) {
    const rows = page.all(...after);
    if (rows.length === 0) break;
    for (const m of rows) {
      const k = keys.get(`${m.stream}\0${m.seq}`);
      if (k) keys.delete(`${m.stream}\0${m.seq}`);
      add(encodeEntry(m.stream, m.seq, m.expires_at, 0, k?.key, m.json), m.expires_at);
      migrated++;
    }
    const last = rows[rows.length - 1]!;
    after = [last.stream, last.seq];
  }
  for (const k of keys.values()) {
    add(encodeEntry(k.stream, k.seq, k.expiresAt, 0, k.key, undefined), k.expiresAt);
  }
  flush();
  db.exec(`
    DROP TABLE messages;
    DROP TABLE idempotency;
    ALTER TABLE streams DROP COLUMN retained;
  `);
  return migrated;
}

/** Linux's id of this boot of the machine; undefined elsewhere (the check is then skipped). */
function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why commits may have been lost, or undefined when none can have been. The
 * store was not closed cleanly (`clean` = 0) and
 * - its WAL is gone, or SQLite cannot use it (a header that does not check
 *   out: SQLite then ignores every frame in it). A killed process always
 *   leaves its WAL (0 bytes when nothing was committed since the open's
 *   checkpoint), and the open's commit that set `clean` = 0 was written to
 *   a WAL, so `clean` = 0 in a file without one means a WAL was deleted
 *   (by hand, a cleaner, a restore of a backup taken from a running
 *   Herald), whatever the machine and the setting did; or
 * - the machine booted since (a killed process loses nothing under WAL;
 *   only an OS crash or power cut can, with synchronous=normal). The
 *   setting that counts is the one of the run that did not close (recorded
 *   when it opened; a file from before that was recorded ran with the
 *   default, normal), not this open's: turning `full` on after a power cut
 *   does not bring back what the run under `normal` lost.
 */
function lostCommitsPossible(db: Database.Database, boot: string | undefined, wal: WalState): string | undefined {
  const get = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  if (get.get('clean')?.value !== '0') return undefined;
  if (wal === 'missing') return 'not closed cleanly, and its -wal file is gone: the last sends before it stopped may be lost';
  if (wal === 'unusable') return 'not closed cleanly, and its -wal file is not a WAL SQLite can read (overwritten?): the last sends before it stopped may be lost';
  if (boot === undefined) return undefined;
  const lastBoot = get.get('boot')?.value;
  const lastSynchronous = get.get('synchronous')?.value;
  if (lastSynchronous !== 'full' && lastBoot !== undefined && lastBoot !== '' && lastBoot !== boot) {
    return 'not closed cleanly before the machine restarted: the last sends before the crash may be lost';
  }
  return undefined;
}
