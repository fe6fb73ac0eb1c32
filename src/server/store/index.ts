import { chmodSync, closeSync, lstatSync, openSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Logger } from 'pino';
import { HeraldError } from '../errors.js';
import { makeDirectory } from '../make-directory.js';
import type { HeraldOptions } from '../options.js';
import { checkDirectory, fileProblem } from '../path-trust.js';
import { MemoryStore } from './memory-store.js';
import type { MessageStore } from './message-store.js';
import { SqliteStore } from './sqlite-store.js';

export type { MessageStore } from './message-store.js';
export { MemoryStore } from './memory-store.js';
export { SqliteStore } from './sqlite-store.js';

type StoreOptions = Pick<HeraldOptions, 'store' | 'dataDir' | 'sqliteFile' | 'sqliteSynchronous' | 'pruneIntervalMs' | 'maxPerStream' | 'maxRetainedBytes'>;

/** Where the SQLite store lives for these options. */
export function sqlitePath(options: Pick<HeraldOptions, 'dataDir' | 'sqliteFile'>): string {
  return isAbsolute(options.sqliteFile) ? options.sqliteFile : resolve(options.dataDir, options.sqliteFile);
}

/**
 * Builds the configured MessageStore (called by the composition root only).
 * Background pruning starts here and stops with the store's close().
 */
export function createStore(options: StoreOptions, logger: Logger): MessageStore {
  const onPrune = (removed: number, error?: unknown): void => {
    if (error) logger.error({ err: error }, 'store: pruning expired notifications failed');
    else if (removed > 0) logger.debug({ removed }, 'store: expired notifications pruned');
  };
  if (options.store === 'memory') {
    logger.info({ store: 'memory' }, 'store: memory (queued notifications are lost on restart)');
    return new MemoryStore({ maxPerStream: options.maxPerStream, maxRetainedBytes: options.maxRetainedBytes, pruneIntervalMs: options.pruneIntervalMs, onPrune });
  }
  const file = sqlitePath(options);
  // A file where a directory of the path should be (a dataDir that names a file): statSync
  // threw ENOTDIR, throwIfNoEntry or not, and the start ended in a stack trace.
  const notDir = fileInPath(dirname(file));
  if (notDir !== undefined) {
    const dataDir = resolve(options.dataDir);
    // The data dir or a directory above it, when the store is in it; else sqliteFile's own path.
    const key = !isAbsolute(options.sqliteFile) && (dataDir === notDir || dataDir.startsWith(`${notDir}/`)) ? 'dataDir' : 'sqliteFile';
    const why = key === 'dataDir' ? `${notDir} is a file, not a directory: name a directory (Herald creates it when it is missing)` : `${file} cannot be made: ${notDir} is a file, not a directory`;
    throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}": ${why}`);
  }
  // SQLite's own message for a directory is "unable to open database file", naming neither.
  if (statSync(file, { throwIfNoEntry: false })?.isDirectory()) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "sqliteFile" names a directory, ${file}: name a file (in it or elsewhere)`);
  }
  createPrivateFiles(file, options, logger);
  const store = new SqliteStore({
    file, maxPerStream: options.maxPerStream, maxRetainedBytes: options.maxRetainedBytes, synchronous: options.sqliteSynchronous,
    pruneIntervalMs: options.pruneIntervalMs, onPrune, logger,
    onCheckpointError: (err) => logger.warn({ err: err.message }, 'store: WAL checkpoint'),
    onFileLost: (err) => logger.error({ file, err: err.message }, 'store: file lost, every stored send is refused until Herald restarts'),
    onLockRetaken: (lockFile) => logger.warn({ lockFile }, 'store: the lock file was deleted under the running Herald; taken again'),
  });
  // SQLite gives its -wal and -shm the store file's mode: an operator's file of 0644 made them 0644 too.
  for (const path of [`${file}-wal`, `${file}-shm`]) ownerOnly(path);
  const { streams, journalRows, messages, migrated, ms } = store.loaded;
  logger.info(
    { store: 'sqlite', file, synchronous: options.sqliteSynchronous, streams, journalRows, messages, loadMs: Math.round(ms) },
    'store: sqlite (queued notifications loaded into memory from the journal)',
  );
  if (migrated > 0) logger.info({ file, migrated }, 'store: file migrated to the journal layout (schema 3)');
  const { retainedBytes, maxRetainedBytes } = store.counts();
  if (maxRetainedBytes > 0 && retainedBytes >= maxRetainedBytes) {
    logger.warn({ file, retainedBytes, maxRetainedBytes }, 'store: the notifications loaded reach maxRetainedBytes: stored sends are refused (503) until older ones expire or are dropped');
  }
  if (store.rotatedEpochs) {
    logger.warn({ file }, `store: ${store.rotation ?? 'not closed cleanly'}; so every stream got a new EPOCH (tabs are told with RESET)`);
  }
  return store;
}

/**
 * The part of `dir`'s path, `dir` itself or a directory above it, that is
 * there and is not a directory (a regular file), or undefined when there is
 * none (`dir` is a directory or can be made one) or it cannot be told (a
 * directory this user may not search: the open that follows says so).
 */
export function fileInPath(dir: string): string | undefined {
  for (let at = resolve(dir); ; at = dirname(at)) {
    let found;
    try {
      found = statSync(at, { throwIfNoEntry: false });
    } catch (e) {
      // ENOTDIR: a part above is a file; it is found further up.
      if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') return undefined;
    }
    if (found !== undefined) return found.isDirectory() ? undefined : at;
    if (at === dirname(at)) return undefined;
  }
}

/** The files SQLite and the store keep beside the store file (the WAL, its index, a rollback journal, the lock). */
const COMPANIONS = ['-wal', '-shm', '-journal', '-lock'] as const;

/**
 * The store's directories (mode 0700) and its file and lock file (0600), where they are missing:
 * the notifications and who they are for are this user's alone. With the umask's default (022)
 * SQLite made them 0644 in a 0755 directory, readable by every user of the machine. SQLite
 * creates the -wal and -shm with the mode of the file they belong to. What exists already is the
 * operator's and keeps its mode (the data dir's is checked at start: see ensureSecrets).
 *
 * Then the store's directory, file and companions are refused when another user controls them
 * (path-trust.ts): SQLite follows a link, and opened a store file, a -wal or a hot journal that
 * another user made, and wrote every notification into it. Checked after the directory is made:
 * one another user made in the meantime is then seen too.
 */
function createPrivateFiles(file: string, options: Pick<HeraldOptions, 'dataDir' | 'sqliteFile'>, logger: Logger): void {
  const dir = resolve(file, '..');
  makeDirectory(dir, 0o700);
  // The option that names the path: the data dir's, or sqliteFile's when the store is elsewhere.
  const key = dir === resolve(options.dataDir) ? 'dataDir' : 'sqliteFile';
  const verdict = checkDirectory(dir, key === 'dataDir' ? 'the data dir' : 'the store\'s directory');
  if (verdict.refusal !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}": ${verdict.refusal}`);
  // The data dir's warning is ensureSecrets's (logged once, at start).
  if (verdict.warning !== undefined && key === 'sqliteFile') logger.warn(verdict.warning);
  for (const path of [file, ...COMPANIONS.map((c) => `${file}${c}`)]) {
    const problem = fileProblem(path, path === file ? 'the store file' : 'the store\'s file');
    if (problem !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "sqliteFile": ${problem}`);
  }
  for (const path of [file, `${file}-lock`]) {
    try {
      // 'wx': created here, or left alone when it exists.
      closeSync(openSync(path, 'wx', 0o600));
    } catch {
      // It exists, or cannot be created: SQLite's open then says why, naming the file.
    }
  }
}

/**
 * Takes group's and others' permissions off `path` when it is there and no link, by its path:
 * SQLite holds it open, and closing any descriptor of a file drops every POSIX lock the process
 * holds on it (fcntl(2)). An open and close of the -shm here dropped SQLite's read lock on it,
 * so the next reader (`sqlite3 -readonly`, a backup) took itself for the first, rebuilt the
 * -shm under Herald's mapping of it, and Herald died of SIGBUS. The directory was checked to
 * be this user's alone, so no one can swap the file between the lstat and the chmod.
 */
function ownerOnly(path: string): void {
  try {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st !== undefined && st.isFile() && (st.mode & 0o077) !== 0) chmodSync(path, st.mode & 0o700);
  } catch {
    // Gone meanwhile (checkpointed away): nothing to do.
  }
}
