/**
 * `herald start` trusts nothing of its state that another user controls: the data dir, secrets.json,
 * the store file and its directory, the command audit file. Another user's data dir (made
 * beforehand under /tmp) held their secrets.json, and Herald took their API token; a store file or
 * an audit file planted as a link received every notification and every command line. Real files,
 * real owners (chown to `nobody`: the tests need root), `herald` as a real child process.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, cliBundle, exited, LineReader, REPO_ROOT, runCli, spawnCli } from './helpers/cli.js';
import { skipUnlessCI } from './helpers/capability.js';

const SECRET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const API_TOKEN = 'api-token-0123456789';
/** The secrets configured, so that a test about the store or the audit file does not depend on secrets.json. */
const CONFIGURED = { HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN };
const NOBODY = 65534;
const SETPRIV = '/usr/bin/setpriv';
const mode = (path: string) => statSync(path).mode & 0o7777;

const root = process.getuid?.() === 0;
const cannot = skipUnlessCI(root ? false : 'data-dir-trust needs root (the files are given to another user with chown)');

/** `herald start` in `dataDir` on port 0, to its end: these starts are refused. */
function start(dataDir: string, args: readonly string[] = [], env: Record<string, string> = {}) {
  return runCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', ...args], { env });
}

/** `herald start` until it listens; returns its log lines and stops it. `check` runs while it listens. */
async function startOnce(dataDir: string, args: readonly string[] = [], env: Record<string, string> = {}, check: () => void = () => undefined): Promise<string> {
  const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'info', ...args], { env });
  const out = new LineReader(child.stdout);
  const err = new LineReader(child.stderr);
  try {
    const gone = exited(child, 20_000).then(({ code }) => { throw new Error(`herald start exited ${code}: ${err.text()}`); });
    await Promise.race([out.next((l) => l.includes('Herald is listening')), gone]);
    gone.catch(() => undefined);
    check();
    return out.text();
  } finally {
    child.kill('SIGTERM');
    await exited(child).catch(() => undefined);
  }
}

describe('herald start trusts nothing of its state that another user controls', { skip: cannot }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-trust-'));
  let n = 0;
  /** A new data dir of this user's (0700), not yet there when `made` is false. */
  const dataDir = (made = true): string => {
    const d = join(dir, `data-${++n}`);
    if (made) mkdirSync(d, { mode: 0o700 });
    return d;
  };
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a data dir another user made beforehand, with their secrets.json: refused (exit 2) naming the dir and its owner, their token never taken', async () => {
    const d = dataDir();
    writeFileSync(join(d, 'secrets.json'), JSON.stringify({ secret: `ATTACKER${SECRET}`, apiToken: 'ATTACKERAPITOKEN0123' }), { mode: 0o600 });
    writeFileSync(join(d, 'herald.sqlite'), '', { mode: 0o600 });
    for (const p of [d, join(d, 'secrets.json'), join(d, 'herald.sqlite')]) chownSync(p, NOBODY, NOBODY);
    const r = await start(d);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `herald: invalid configuration: option "dataDir": the data dir ${d} is owned by uid ${NOBODY}, not by this user (uid 0); as root, Herald trusts root's files alone: that user could read or replace what Herald keeps there; remove it to have Herald make it again, or chown it to this user (set on the command line)\n`);
    assert.equal(existsSync(join(d, 'herald.sqlite-wal')), false, 'the store was not opened');
  });

  test('a secrets.json another user owns, in a data dir of Herald\'s: refused naming it', async () => {
    const d = dataDir();
    const file = join(d, 'secrets.json');
    writeFileSync(file, JSON.stringify({ secret: SECRET, apiToken: API_TOKEN }), { mode: 0o600 });
    chownSync(file, NOBODY, NOBODY);
    const r = await start(d);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^herald: invalid configuration: option "dataDir": the secrets file ${file} is owned by uid ${NOBODY}, not by this user`));
  });

  test('a secrets.json that is a symbolic link (even to a file of Herald\'s): refused naming the link', async () => {
    const d = dataDir();
    const real = join(dir, `secrets-${n}.json`);
    writeFileSync(real, JSON.stringify({ secret: SECRET, apiToken: API_TOKEN }), { mode: 0o600 });
    symlinkSync(real, join(d, 'secrets.json'));
    const r = await start(d);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`option "dataDir": the secrets file ${join(d, 'secrets.json')} is a symbolic link: Herald follows no link to its state`));
  });

  // A link of Herald's own user (or root's) is the operator's doing, as systemd's DynamicUser=
  // makes /var/lib/NAME a link to private/NAME: the directory it leads to is judged. Another
  // user's link is refused, whatever it leads to.
  test('a data dir that is a link: followed when it is this user\'s, refused when another user\'s', async () => {
    const real = dataDir();
    const link = join(dir, `link-${n}`);
    symlinkSync(real, link);
    await startOnce(link, [], CONFIGURED);

    const theirs = join(dir, `their-link-${n}`);
    symlinkSync(dataDir(), theirs);
    lchownSync(theirs, NOBODY, NOBODY);
    const r = await start(theirs, [], CONFIGURED);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`the data dir ${theirs} is a symbolic link: .*name the real path`));

    const toTheirs = join(dir, `link-to-theirs-${n}`);
    const foreignDir = dataDir();
    chownSync(foreignDir, NOBODY, NOBODY);
    symlinkSync(foreignDir, toTheirs);
    const r2 = await start(toTheirs, [], CONFIGURED);
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, new RegExp(`the data dir ${toTheirs} is owned by uid ${NOBODY}`));
  });

  test('a data dir others may write (0777, or 1777 as /tmp): refused before anything is written in it', async () => {
    for (const bits of [0o777, 0o1777]) {
      const d = dataDir();
      chmodSync(d, bits);
      const r = await start(d);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`the data dir ${d} is writable by other users \\(mode ${bits.toString(8).padStart(4, '0')}\\): any of them could plant a file or a link Herald would open; use a directory only this user may write \\(chmod 700 it, if it is Herald's alone, or name one in it for Herald to make, 0700\\)`));
      assert.equal(existsSync(join(d, 'secrets.json')), false, 'no secrets generated there');
    }
  });

  test('a data dir its group may write: refused for a group that is not Herald\'s, one warning for Herald\'s own', async () => {
    const other = dataDir();
    chownSync(other, 0, NOBODY);
    chmodSync(other, 0o770);
    const r = await start(other);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`the data dir ${other} is writable by its group \\(gid ${NOBODY}; mode 0770\\): the group's members could plant`));

    const own = dataDir();
    chownSync(own, 0, process.getegid!());
    chmodSync(own, 0o770);
    const logs = await startOnce(own);
    const warnings = logs.split('\n').filter((l) => l.includes(own) && l.includes('"level":40'));
    assert.equal(warnings.length, 1, logs);
    assert.match(warnings[0]!, /"level":40.*one of this process's; mode 0770\): anyone else in that group could plant a file Herald would open; chmod 700 it/);
  });

  test('a store file planted as a link (to another user\'s file): refused, and nothing written where it points', async () => {
    const d = dataDir();
    const loot = join(dir, `loot-${n}.sqlite`);
    writeFileSync(loot, '', { mode: 0o666 });
    chownSync(loot, NOBODY, NOBODY);
    chmodSync(loot, 0o666);
    symlinkSync(loot, join(d, 'herald.sqlite'));
    const r = await start(d, [], CONFIGURED);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^herald: invalid configuration: option "sqliteFile": the store file ${join(d, 'herald.sqlite')} is a symbolic link`));
    assert.equal(statSync(loot).size, 0, 'the target is left empty');
    assert.equal(existsSync(`${loot}-wal`), false);
  });

  test('a -wal another user left beside the store file: refused naming it', async () => {
    const d = dataDir();
    writeFileSync(join(d, 'herald.sqlite-wal'), '', { mode: 0o600 });
    chownSync(join(d, 'herald.sqlite-wal'), NOBODY, NOBODY);
    const r = await start(d, [], CONFIGURED);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`option "sqliteFile": the store's file ${join(d, 'herald.sqlite-wal')} is owned by uid ${NOBODY}`));
  });

  test('a command audit file planted as a dangling link: refused naming commandsAuditFile, and nothing made where it points', async () => {
    const d = dataDir();
    const loot = join(dir, `audit-loot-${n}.sqlite`);
    symlinkSync(loot, join(d, 'commands-audit.sqlite'));
    const r = await start(d, ['--store', 'memory'], CONFIGURED);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^herald: invalid configuration: cannot open the command audit file ${join(d, 'commands-audit.sqlite')} \\(commandsAuditFile\\): the file .* is a symbolic link`));
    assert.equal(existsSync(loot), false, 'no file made through the link');
  });

  test('a command audit file another user owns: refused', async () => {
    const d = dataDir();
    const file = join(d, 'commands-audit.sqlite');
    writeFileSync(file, '', { mode: 0o600 });
    chownSync(file, NOBODY, NOBODY);
    const r = await start(d, ['--store', 'memory'], CONFIGURED);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`\\(commandsAuditFile\\): the file ${file} is owned by uid ${NOBODY}`));
  });

  test('an absolute sqliteFile another user made (0666), in a directory of Herald\'s: refused naming sqliteFile', async () => {
    const d = dataDir();
    const elsewhere = mkdtempSync(join(dir, 'store-'));
    const file = join(elsewhere, 'store.sqlite');
    writeFileSync(file, '', { mode: 0o666 });
    chownSync(file, NOBODY, NOBODY);
    chmodSync(file, 0o666);
    const r = await start(d, [], { ...CONFIGURED, HERALD_SQLITE_FILE: file });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`option "sqliteFile": the store file ${file} is owned by uid ${NOBODY}, .* \\(set in environment HERALD_SQLITE_FILE\\)\\n$`));
    assert.equal(existsSync(`${file}-wal`), false);
  });

  test('an absolute sqliteFile in a directory others may write (as /tmp): refused naming the directory', async () => {
    const d = dataDir();
    const shared = mkdtempSync(join(dir, 'shared-'));
    chmodSync(shared, 0o1777);
    const r = await start(d, [], { ...CONFIGURED, HERALD_SQLITE_FILE: join(shared, 'store.sqlite') });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`option "sqliteFile": the store's directory ${shared} is writable by other users \\(mode 1777\\): .*use a directory only this user may write`));
    assert.equal(existsSync(join(shared, 'store.sqlite')), false, 'nothing made there');
  });

  test('a store file of Herald\'s that others may read (0644): the -wal and -shm SQLite makes from its mode come out 0600', async () => {
    const d = dataDir();
    const file = join(d, 'herald.sqlite');
    writeFileSync(file, '');
    chmodSync(file, 0o644);
    await startOnce(d, [], CONFIGURED, () => {
      for (const name of ['herald.sqlite-wal', 'herald.sqlite-shm']) assert.equal(mode(join(d, name)), 0o600, name);
      // SQLite's read lock on the -shm (byte 128) says the store is in use. The first version of
      // this opened and closed the -shm, which drops every POSIX lock of the process on it: the
      // next `sqlite3 -readonly` rebuilt the -shm under Herald's mapping, and Herald died of SIGBUS.
      const ino = statSync(join(d, 'herald.sqlite-shm')).ino;
      assert.match(readFileSync('/proc/locks', 'utf8'), new RegExp(`POSIX +ADVISORY +READ +\\d+ +[0-9a-f]+:[0-9a-f]+:${ino} 128 128`), 'SQLite\'s lock on the -shm is still held');
    });
    assert.equal(mode(file), 0o644, 'the operator\'s file keeps its mode');
  });

  // Herald as the unit runs it: a user of its own, its state directory its own. Root's files are
  // trusted (root can replace any of this user's anyway): secrets.json provisioned root:group 0640.
  const noSetpriv = cannot ? false : skipUnlessCI(!existsSync(SETPRIV) ? `the unprivileged start needs ${SETPRIV} (util-linux)` : false);
  test('run as another user (nobody), Herald takes a secrets.json of root\'s and refuses one of a third user\'s', { skip: noSetpriv }, async (t) => {
    // Beside the test's own directory, which is root's alone (0700): nobody must reach this one.
    const parent = mkdtempSync(join(tmpdir(), 'herald-trust-state-'));
    t.after(() => rmSync(parent, { recursive: true, force: true }));
    chmodSync(parent, 0o755);
    const d = join(parent, 'herald');
    mkdirSync(d, { mode: 0o700 });
    chownSync(d, NOBODY, NOBODY);
    const file = join(d, 'secrets.json');
    writeFileSync(file, JSON.stringify({ secret: SECRET, apiToken: API_TOKEN }), { mode: 0o640 });
    chownSync(file, 0, NOBODY);
    const args = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, cliBundle(), 'start', '--data-dir', d, '--port', '0', '--no-legacy', '--log-level', 'info'];
    const child = spawn(SETPRIV, args, { cwd: REPO_ROOT, env: cleanEnv(), stdio: 'pipe' });
    const out = new LineReader(child.stdout);
    const err = new LineReader(child.stderr);
    try {
      const gone = exited(child, 20_000).then(({ code }) => { throw new Error(`herald start exited ${code}: ${err.text()}`); });
      const line = await Promise.race([out.next((l) => l.includes('Herald is listening')), gone]);
      gone.catch(() => undefined);
      const http = (JSON.parse(line) as { http: string }).http;
      const ping = await fetch(`${http}/api/v1/ping`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
      assert.equal(ping.status, 200, 'the API token of root\'s secrets.json is taken');
    } finally {
      child.kill('SIGTERM');
      await exited(child).catch(() => undefined);
    }
    assert.equal(readFileSync(file, 'utf8').includes(API_TOKEN), true);

    // A file of a third user's (daemon): refused, whoever Herald runs as.
    chownSync(file, 1, 1);
    const third = spawn(SETPRIV, args, { cwd: REPO_ROOT, env: cleanEnv(), stdio: 'pipe' });
    const stderr = new LineReader(third.stderr);
    const { code } = await exited(third, 20_000);
    assert.equal(code, 2, stderr.text());
    assert.match(stderr.text(), new RegExp(`the secrets file ${file} is owned by uid 1, not by this user \\(uid ${NOBODY}\\): `));
  });

  // A Kubernetes volume with securityContext.fsGroup: root:<fsGroup> 2775, the pod's user in
  // that group as a supplementary one only. Refused as another group's, it stopped pods that
  // had started before (with a warning).
  test('run as nobody with a supplementary group that may write the data dir (an fsGroup volume): started, with one warning', { skip: noSetpriv }, async (t) => {
    const parent = mkdtempSync(join(tmpdir(), 'herald-trust-fsgroup-'));
    t.after(() => rmSync(parent, { recursive: true, force: true }));
    chmodSync(parent, 0o755);
    const FS_GROUP = 2000;
    const d = join(parent, 'volume');
    mkdirSync(d);
    chownSync(d, 0, FS_GROUP);
    chmodSync(d, 0o2775);
    const args = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--groups', String(FS_GROUP), process.execPath, cliBundle(), 'start', '--data-dir', d, '--port', '0', '--no-legacy', '--log-level', 'info'];
    const child = spawn(SETPRIV, args, { cwd: REPO_ROOT, env: { ...cleanEnv(), HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN }, stdio: 'pipe' });
    const out = new LineReader(child.stdout);
    const err = new LineReader(child.stderr);
    try {
      const gone = exited(child, 20_000).then(({ code }) => { throw new Error(`herald start exited ${code}: ${err.text()}`); });
      await Promise.race([out.next((l) => l.includes('Herald is listening')), gone]);
      gone.catch(() => undefined);
      const warnings = out.text().split('\n').filter((l) => l.includes(d) && l.includes('"level":40') && l.includes('writable by its group'));
      assert.equal(warnings.length, 1, out.text());
      assert.match(warnings[0]!, new RegExp(`gid ${FS_GROUP}, one of this process's; mode 2775`));
    } finally {
      child.kill('SIGTERM');
      await exited(child).catch(() => undefined);
    }
  });
});
