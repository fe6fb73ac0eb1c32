/**
 * What opening a SQLite store refuses or leaves alone: a WAL beside the file
 * that is not its own (a backup restored next to a killed Herald's WAL),
 * another program's database, and a file this user cannot write. Each is
 * refused with the file named, and the file is left as it was.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { bundled } from './helpers/bundle.js';
import { skipUnlessCI } from './helpers/capability.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const root = new URL('..', import.meta.url).pathname;
const SETPRIV = '/usr/bin/setpriv';
/** nobody: root's write access ignores the file's mode, so the read-only cases run as another user. */
const NOBODY = 65534;

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-open-'));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function msg(n: number | string, size = 0): string {
  return JSON.stringify({ TYPE: 'MESSAGE', TITLE: `n${n}`, TEXT: 'x'.repeat(size) });
}

/**
 * Opens `file` with the store writer (test/store-sqlite-writer.ts) in a child
 * process, as `uid` when given, and runs `ops`. Resolves with its stderr once it
 * exited (the open failed), or kills it with SIGKILL once it wrote DONE.
 */
async function writer(file: string, ops: unknown[], uid?: number): Promise<{ done: boolean; stderr: string }> {
  const entry = [process.execPath, bundled('test/store-sqlite-writer.ts')];
  const argv = uid === undefined ? entry : [SETPRIV, `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...entry];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: root, env: { ...process.env, HERALD_TEST_STORE_FILE: file, HERALD_TEST_STORE_OPS: JSON.stringify(ops) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const done = await new Promise<boolean>((resolve) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('DONE ')) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  child.kill('SIGKILL');
  await exited;
  clearTimeout(timer);
  return { done, stderr };
}

describe('SqliteStore open', () => {
  it('a WAL that is not the file\'s (a backup restored beside a killed Herald\'s WAL) fails the start and is never copied into the file', () => withDir(async (dir) => {
    // The intact store: closed cleanly, so it has no WAL of its own.
    const file = join(dir, 'herald.sqlite');
    let store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0 });
    for (let i = 1; i <= 60; i++) await store.append({ stream: `admin:${i % 7}`, json: msg(i, 2000), expiresAt: T0 + HOUR }, T0);
    await store.close();
    // Another store's process killed with a WAL full of sends: its WAL placed beside the intact file.
    const other = join(dir, 'other.sqlite');
    const ops = Array.from({ length: 3 }, (_, i) => ({ op: 'append', stream: `admin:${i}`, json: msg(i), expiresAt: T0 + HOUR, now: T0 }));
    assert.equal((await writer(other, ops)).done, true);
    copyFileSync(`${other}-wal`, `${file}-wal`);
    const before = readFileSync(file);

    assert.throws(() => new SqliteStore({ file, maxPerStream: 100, clock: () => T0 }), { code: 'HERALD_ERR_INTERNAL', message: /cannot open store .*herald\.sqlite: database disk image is malformed/ });
    assert.ok(readFileSync(file).equals(before), 'the file is as it was');
    // Restored as docs/delivery.md says (the -wal and -shm removed), it opens with all it held.
    rmSync(`${file}-wal`);
    rmSync(`${file}-shm`, { force: true });
    store = new SqliteStore({ file, maxPerStream: 100, clock: () => T0 });
    try {
      assert.equal(store.loaded.messages, 60);
    } finally {
      await store.close();
    }
  }));

  it('refuses another program\'s database, naming the file, and leaves it as it was', () => withDir(async (dir) => {
    const file = join(dir, 'app.db');
    const app = new Database(file);
    app.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ann'), ('bob')");
    app.close();
    const before = readFileSync(file);
    assert.throws(() => new SqliteStore({ file, maxPerStream: 10 }), { code: 'HERALD_ERR_INTERNAL', message: /app\.db is not Herald's store \(it holds other tables: users, and no meta table\)/ });
    assert.ok(readFileSync(file).equals(before), 'no table added, still in its journal mode');
    assert.equal(existsSync(`${file}-wal`), false);
    // An empty database is a new store: Herald makes its tables in it.
    const empty = join(dir, 'empty.db');
    new Database(empty).close();
    const store = new SqliteStore({ file: empty, maxPerStream: 10 });
    await store.close();
  }));

  describe('a store file this user cannot write', { skip: skipUnlessCI(!existsSync(SETPRIV) || process.getuid?.() !== 0 ? 'needs root and setpriv to run the store as another user' : false) }, () => {
    /** A data dir owned by nobody, with a store in it made by nobody (and closed). */
    const prepare = async (dir: string): Promise<string> => {
      chownSync(dir, NOBODY, NOBODY);
      const file = join(dir, 'herald.sqlite');
      const store = new SqliteStore({ file, maxPerStream: 10, clock: () => T0 });
      await store.append({ stream: 'admin:1', json: msg(1), expiresAt: T0 + HOUR }, T0);
      await store.close();
      for (const f of [file, `${file}-lock`]) chownSync(f, NOBODY, NOBODY);
      return file;
    };

    it('the file read-only (0444): refused with its mode, and no -wal or -shm left behind to block the next start', () => withDir(async (dir) => {
      const file = await prepare(dir);
      chmodSync(file, 0o444);
      const refused = await writer(file, [], NOBODY);
      assert.equal(refused.done, false, refused.stderr);
      assert.match(refused.stderr, /cannot open store .*herald\.sqlite: .*herald\.sqlite is read-only \(mode 0444, owner uid 65534\)/);
      assert.equal(existsSync(`${file}-wal`), false, 'no -wal left');
      assert.equal(existsSync(`${file}-shm`), false, 'no -shm left');
      // Made writable again, it opens at once.
      chmodSync(file, 0o644);
      const again = await writer(file, [{ op: 'append', stream: 'admin:1', json: msg(2), expiresAt: T0 + HOUR, now: T0 }], NOBODY);
      assert.equal(again.done, true, again.stderr);
    }));

    it('a read-only -wal and -shm left beside a writable file: the message says to remove them', () => withDir(async (dir) => {
      const file = await prepare(dir);
      for (const f of [`${file}-wal`, `${file}-shm`]) {
        writeFileSync(f, '');
        chownSync(f, NOBODY, NOBODY);
        chmodSync(f, 0o444);
      }
      const refused = await writer(file, [], NOBODY);
      assert.equal(refused.done, false, refused.stderr);
      assert.match(refused.stderr, /herald\.sqlite-wal is read-only \(mode 0444, owner uid 65534\): remove it \(Herald stopped\)/);
    }));
  });
});
