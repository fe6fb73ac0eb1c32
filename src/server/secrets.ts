import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { HeraldError } from './errors.js';
import { makeDirectory } from './make-directory.js';
import { credentialProblem, type HeraldOptions } from './options.js';
import { checkDirectory, fileProblem } from './path-trust.js';

export interface StoredSecrets {
  secret: string;
  apiToken: string;
}

export interface SecretsResult {
  options: HeraldOptions;
  /** Where generated secrets live. */
  file: string;
  /** True when this call generated and wrote at least one of them. */
  generated: boolean;
  /** Which of them this call generated (the others came from the configuration or the file). */
  generatedKeys: ReadonlyArray<keyof StoredSecrets>;
  /**
   * The generated ones whose notice (where they are, how to use them) is still to be printed:
   * those this call generated, and those a start before it generated but stopped before
   * printing (see `noticeFile`). Printed once Herald listens, then `announced()`.
   */
  noticeKeys: ReadonlyArray<keyof StoredSecrets>;
  /**
   * What other users of this machine may read, one line each, to be logged as warnings: the data
   * dir or secrets.json, when they existed already with group or other permissions (Herald
   * creates both for this user alone, but does not change the mode of what an operator made).
   */
  warnings: readonly string[];
  /** The notice of `noticeKeys` is printed: no later start prints it again. */
  announced(): void;
}

export function secretsFile(dataDir: string): string {
  return join(resolve(dataDir), 'secrets.json');
}

/**
 * DATA_DIR/secrets.json.notice: the keys Herald generated whose notice no
 * start has printed yet, one a line. A start that fails after generating
 * them (a port in use, a store locked) keeps them, and the next start prints
 * the notice. It once removed them instead, so that the next start would
 * generate and announce new ones; but a start beside it may have read them
 * meanwhile and be running with them, and it went on with keys no file held
 * (the next restart generated others, and every token signed with the old
 * secret was refused).
 */
export function noticeFile(dataDir: string): string {
  return `${secretsFile(dataDir)}.notice`;
}

/** The keys noticeFile owes a notice of; none when it is absent or unreadable. */
function owedNotice(file: string): Array<keyof StoredSecrets> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return (['secret', 'apiToken'] as const).filter((key) => text.split('\n').includes(key));
}

/** Reads DATA_DIR/secrets.json if present. */
export function readSecrets(dataDir: string): Partial<StoredSecrets> {
  return readSecretsFile(secretsFile(dataDir)).stored;
}

/** secrets.json's values and its text as read (undefined: there is no such file). */
function readSecretsFile(file: string): { stored: Partial<StoredSecrets>; text: string | undefined } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    // Read, not looked for first: a first start beside this one that failed
    // removes the file it made (discard), and between the look and the read
    // this start said "cannot read ... ENOENT" and refused to start.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { stored: {}, text: undefined };
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON.parse's message: V8's quotes the text around the error ('Unexpected
    // token 'Z', ...""secret": Zq8vN3kTg5"... is not valid JSON'), ten characters
    // of the secret on the terminal and in the service's journal.
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: it is not valid JSON (its contents are not shown: they are secrets)`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new HeraldError('HERALD_ERR_CONFIG', `cannot read ${file}: it is not valid JSON for secrets (an object with "secret" and "apiToken" was expected)`);
  }
  const { secret, apiToken } = parsed as Partial<Record<keyof StoredSecrets, unknown>>;
  const stored: Partial<StoredSecrets> = { ...(typeof secret === 'string' ? { secret } : {}), ...(typeof apiToken === 'string' ? { apiToken } : {}) };
  // The rules a configured value must meet (options.ts), for a file edited by hand: {"secret": "x",
  // "apiToken": "y"} started, and the API took `Bearer y`. What Herald generates meets them.
  for (const key of ['secret', 'apiToken'] as const) {
    const problem = credentialProblem(key, stored[key] ?? '');
    if (problem !== undefined) {
      throw new HeraldError('HERALD_ERR_CONFIG', `${file}: "${key}" ${problem} (remove it from the file to have a new one generated)`);
    }
  }
  return { stored, text };
}

/** `path`'s permission bits when it exists and gives group or others any access to it, else undefined. */
function openToOthers(path: string): number | undefined {
  let mode: number | undefined;
  try {
    mode = statSync(path, { throwIfNoEntry: false })?.mode;
  } catch {
    // A path through a file (ENOTDIR), a parent this user may not search: what uses it says so.
  }
  return mode !== undefined && (mode & 0o077) !== 0 ? mode & 0o777 : undefined;
}

/**
 * Refuses a data dir that another user controls (path-trust.ts): a symbolic link, another user's,
 * writable by others. One that another user made beforehand (under /tmp) held their secrets.json,
 * and Herald took their API token. Returns the warning for a directory writable by this process's
 * own group, if it is one.
 */
function trustedDir(dir: string): string | undefined {
  const verdict = checkDirectory(dir, 'the data dir');
  if (verdict.refusal !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "dataDir": ${verdict.refusal}`);
  return verdict.warning;
}

/**
 * Writes `text` to `file` whole or not at all: into a new file beside it
 * (0600), fsynced, then renamed over it. Written in place, a first start on
 * a full disk left secrets.json empty (created, then the write failed), and
 * every later start refused it as not valid JSON until it was deleted by
 * hand. The temporary file is removed when a step fails.
 *
 * `create`: only if `file` is not there, by a hard link instead of the
 * rename; false when another process made it first. Two first starts at once
 * in one data dir each renamed its own secrets over the other's, and one ran
 * with keys the file no longer held. A file system without hard links gets
 * the rename.
 */
function writeWhole(file: string, text: string, { create = false } = {}): boolean {
  const temp = join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    const data = Buffer.from(text, 'utf8');
    for (let at = 0; at < data.length;) at += writeSync(fd, data, at, data.length - at, at);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (create) {
      const link = linkNew(temp, file);
      if (link !== 'unsupported') {
        rmSync(temp, { force: true });
        return link === 'made';
      }
    }
    renameSync(temp, file);
    return true;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(temp, { force: true });
    throw e;
  }
}

/** Links `target` to `existing` unless `target` is there already ('taken'). */
function linkNew(existing: string, target: string): 'made' | 'taken' | 'unsupported' {
  try {
    linkSync(existing, target);
    return 'made';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return 'taken';
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') return 'unsupported';
    throw e;
  }
}

/** A lock beside secrets.json older than this is a crashed start's: what it guards takes milliseconds. */
const LOCK_STALE_MS = 10_000;
/** How long a start waits for the lock before it gives up (longer than LOCK_STALE_MS, so a stale lock is taken over first). */
const LOCK_WAIT_MS = 15_000;

/** Whether a process `pid` exists (EPERM: it does, another user's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `file`.lock, an exclusive lock (O_EXCL) holding this process's PID, waiting while another
 * start holds it; returns its release. A lock whose process is gone, or older than LOCK_STALE_MS
 * (a PID used again since), was left by a start that crashed, and is removed.
 */
function lockBeside(file: string): () => void {
  const lock = `${file}.lock`;
  const until = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return () => rmSync(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let stale = false;
    try {
      const held = statSync(lock);
      const pid = Number(readFileSync(lock, 'utf8').trim());
      // An empty file is a lock being written: stale only by its age.
      stale = Date.now() - held.mtimeMs > LOCK_STALE_MS || (Number.isSafeInteger(pid) && pid > 0 && !alive(pid));
      // Removed only if it is still the one judged: another start may have replaced it meanwhile.
      if (stale && statSync(lock).ino === held.ino) unlinkSync(lock);
    } catch (e) {
      // Released between the open and the look: try again at once.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      continue;
    }
    if (stale) continue;
    if (Date.now() > until) {
      throw new HeraldError('HERALD_ERR_CONFIG', `cannot write ${file}: ${lock} has been held for ${LOCK_WAIT_MS / 1000} s by another start (remove it if no Herald is starting)`);
    }
    // A synchronous wait: ensureSecrets is synchronous, and the holder's work takes milliseconds.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

/**
 * Fills `secret` and `apiToken` when the configuration left them empty: from
 * DATA_DIR/secrets.json, or generated on first start and written there with
 * owner-only permissions (0600, directory 0700). Configured values always win
 * and are never written to disk.
 */
export function ensureSecrets(options: HeraldOptions): SecretsResult {
  const file = secretsFile(options.dataDir);
  const dir = resolve(options.dataDir);
  // Checked whatever the secrets' source: the data dir holds the store and the command audit too.
  const warnings: string[] = [];
  const trusted = trustedDir(dir);
  if (trusted !== undefined) warnings.push(trusted);
  // One warning for one directory: the group's write says chmod 700 already.
  const dirMode = trusted === undefined ? openToOthers(dir) : undefined;
  if (dirMode !== undefined) warnings.push(`the data dir ${dir} is open to other users (mode ${dirMode.toString(8).padStart(4, '0')}); its store, audit trail and secrets should be this user's alone: chmod 700 it`);
  const notice = noticeFile(options.dataDir);
  const announced = (): void => {
    try {
      rmSync(notice, { force: true });
    } catch {
      // Best effort: the notice is printed again at the next start, nothing worse.
    }
  };
  if (options.secret !== '' && options.apiToken !== '') return { options, file, generated: false, generatedKeys: [], noticeKeys: [], warnings, announced };
  // The release of secrets.json's lock, once taken (lockBeside).
  let unlock: (() => void) | undefined;
  try {
    // Read again when another first start made the file while this one generated its keys:
    // the first to make it wins, and every start then runs with the keys the file holds.
    for (let attempt = 1; ; attempt++) {
      // Another user's secrets.json (or a link to one) held their API token and signing secret, and Herald took them.
      const foreign = fileProblem(file, 'the secrets file');
      if (foreign !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "dataDir": ${foreign}`);
      const { stored, text } = readSecretsFile(file);
      const fileMode = text === undefined ? undefined : openToOthers(file);
      const generatedKeys: Array<keyof StoredSecrets> = [];
      const next: StoredSecrets = {
        secret: stored.secret ?? '',
        apiToken: stored.apiToken ?? '',
      };
      if (options.secret === '' && next.secret === '') {
        next.secret = randomBytes(32).toString('base64url');
        generatedKeys.push('secret');
      }
      if (options.apiToken === '' && next.apiToken === '') {
        next.apiToken = randomBytes(24).toString('base64url');
        generatedKeys.push('apiToken');
      }
      const generated = generatedKeys.length > 0;
      if (generated && text !== undefined && unlock === undefined) {
        // A key filled into a file that exists is a rename over it, which no link can make
        // first-wins: starts at once over {"secret":"",…} (a start with HERALD_SECRET set wrote it)
        // each renamed its own secret over the others', and ran with one the file no longer held.
        // Under the lock, the file is read again and only keys still empty are filled.
        unlock = lockBeside(file);
        continue;
      }
      const owed = owedNotice(notice);
      if (generated) {
        makeDirectory(dir, 0o700);
        // Checked again once it is there: another user may have made it since the check above.
        trustedDir(dir);
        // Owed before the keys are there: a start beside this one that reads them owes it too.
        const noticeText = [...new Set([...owed, ...generatedKeys])].map((key) => `${key}\n`).join('');
        let madeIt: boolean;
        try {
          writeWhole(notice, noticeText);
          madeIt = writeWhole(file, `${JSON.stringify(next, null, 2)}\n`, { create: text === undefined });
        } catch (e) {
          // Nothing generated is kept: no notice of it either (the next start generates anew).
          if (owed.length === 0) rmSync(notice, { force: true });
          throw e;
        }
        if (!madeIt) {
          if (attempt < 3) continue;
          throw new HeraldError('HERALD_ERR_CONFIG', `cannot write ${file}: other processes keep making and removing it`);
        }
        chmodSync(file, 0o600);
      }
      if (fileMode !== undefined) warnings.push(`${file} is readable by other users (mode ${fileMode.toString(8).padStart(4, '0')}): chmod 600 it`);
      // A key now configured is not the file's: its notice (an `export` from the file) would mislead.
      const noticeKeys = (['secret', 'apiToken'] as const).filter((key) => options[key] === '' && (generatedKeys.includes(key) || owed.includes(key)));
      return {
        options: Object.freeze({
          ...options,
          secret: options.secret !== '' ? options.secret : next.secret,
          apiToken: options.apiToken !== '' ? options.apiToken : next.apiToken,
        }),
        file,
        generated,
        generatedKeys,
        noticeKeys,
        warnings,
        announced,
      };
    }
  } finally {
    unlock?.();
  }
}
