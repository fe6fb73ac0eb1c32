/**
 * An allowed program runs only from where no other user could have put it (policy.ts,
 * program-trust.ts). A name was looked up in every directory of the search path with only an
 * executable check, again on each request while it was missing: a local user who may write a PATH
 * directory (1777, a shared group's) planted a file of that name and the next request ran it as
 * Herald's user, who reads DATA_DIR/secrets.json. The search directories, the file, each link to
 * it and the directories holding them are now held to the data dir's rule (path-trust.ts).
 *
 * And the search path names what it really searches: relative entries (never searched) are listed
 * with the left-out directories at start-up, and a refusal names only absolute directories.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { CommandPolicy, serverSearchPath } from '../src/server/commands/policy.js';
import { directoryVerdict } from '../src/server/commands/program-trust.js';
import { isHeraldError, type ErrorCode } from '../src/server/errors.js';
import { checkDirectory } from '../src/server/path-trust.js';
import { skipUnlessCI } from './helpers/capability.js';
import { cleanEnv, cliBundle, exited, LineReader, REPO_ROOT } from './helpers/cli.js';
import { makeRig } from './commands-fixture.js';

const NOBODY = 65534;
const SETPRIV = '/usr/bin/setpriv';
const root = process.geteuid?.() === 0;
const needsRoot = skipUnlessCI(root ? false : 'the files are given to another user with chown: needs root');

const refusedWith = (code: ErrorCode, text?: RegExp) => (e: unknown) =>
  isHeraldError(e) && e.code === code && (text === undefined || text.test(e.message));

/** A script at `path` that says it ran, executable by all. */
function script(path: string, says = 'PLANTED'): void {
  writeFileSync(path, `#!/bin/sh\necho ${says}\n`);
  chmodSync(path, 0o755);
}

/** A policy whose warnings are kept. */
function policyWith(allow: string[], searchPath: string): { policy: CommandPolicy; warnings: Array<{ fields: Record<string, unknown>; message: string }> } {
  const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const policy = new CommandPolicy({ allow, searchPath, warn: (fields, message) => warnings.push({ fields, message }) });
  return { policy, warnings };
}

describe('an allowed name is not run from a directory another user may write', () => {
  let dir: string;
  let shared: string;
  let mine: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-path-trust-'));
    shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777); // like /tmp: every local user may add a file here
    mine = join(dir, 'mine');
    mkdirSync(mine, { mode: 0o755 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a name planted in a 1777 search directory after start-up is refused on each request, naming why, with one warning', () => {
    const { policy, warnings } = policyWith(['herald-trust-tool'], `/usr/bin:${shared}`);
    assert.deepEqual(policy.entries(), [{ entry: 'herald-trust-tool', path: null }]);
    script(join(shared, 'herald-trust-tool'));
    for (let i = 0; i < 3; i++) {
      assert.throws(() => policy.resolve('herald-trust-tool'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND',
        new RegExp(`allowed but not installed \\(looked for "herald-trust-tool" in any of /usr/bin:${shared}; not run: ${shared}/herald-trust-tool: search directory ${shared} is writable by other users \\(mode 1777\\)`)));
    }
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.deepEqual(warnings[0]!.fields.path, join(shared, 'herald-trust-tool'));
    assert.match(String(warnings[0]!.fields.reason), /writable by other users/);
    assert.deepEqual(policy.entries(), [{ entry: 'herald-trust-tool', path: null }]);
  });

  it('at start-up, a name in an untrusted directory is passed over for the same name further on', () => {
    script(join(shared, 'herald-trust-both'));
    script(join(mine, 'herald-trust-both'), 'MINE');
    const { policy, warnings } = policyWith(['herald-trust-both'], `${shared}:${mine}`);
    assert.equal(policy.resolve('herald-trust-both').path, join(mine, 'herald-trust-both'));
    assert.equal(warnings.length, 1);
    assert.throws(() => policy.resolve(join(shared, 'herald-trust-both')), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'), 'the planted file by its path is not the allowed one');
  });

  it('a directory its own group may write (one of this process\'s) is searched, with one warning', () => {
    const groupDir = join(dir, 'group');
    mkdirSync(groupDir);
    chmodSync(groupDir, 0o775);
    script(join(groupDir, 'herald-trust-group'));
    const { policy, warnings } = policyWith(['herald-trust-group'], groupDir);
    assert.equal(policy.resolve('herald-trust-group').path, join(groupDir, 'herald-trust-group'));
    policy.resolve('herald-trust-group');
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.match(String(warnings[0]!.fields.reason), /search directory .* is writable by its group \(gid \d+, one of this process's; mode 0775\)/);
  });

  it('a file in a sticky directory is run by absolute entry (others cannot replace it), but a name is not looked up there', () => {
    script(join(shared, 'herald-trust-sticky'));
    const byPath = policyWith([join(shared, 'herald-trust-sticky')], '');
    assert.equal(byPath.policy.resolve('herald-trust-sticky').path, join(shared, 'herald-trust-sticky'));
    assert.deepEqual(byPath.warnings, []);
    const byName = policyWith(['herald-trust-sticky'], shared);
    assert.throws(() => byName.policy.resolve('herald-trust-sticky'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /search directory .* is writable by other users/));
  });

  it('a link in a trusted directory to a file in a directory others may write is not run', () => {
    const open = join(dir, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777); // not sticky: anyone may replace the file
    script(join(open, 'real-tool'));
    symlinkSync(join(open, 'real-tool'), join(mine, 'herald-trust-link'));
    const { policy, warnings } = policyWith(['herald-trust-link'], mine);
    assert.deepEqual(policy.entries(), [{ entry: 'herald-trust-link', path: null }]);
    assert.throws(() => policy.resolve('herald-trust-link'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', new RegExp(`not run: ${mine}/herald-trust-link: directory ${open} is writable by other users \\(mode 0777\\)`)));
    assert.equal(warnings.length, 1);
  });

  it('a pinned file made writable by others after start-up is refused until it is not', () => {
    script(join(mine, 'herald-trust-pinned'));
    const { policy, warnings } = policyWith(['herald-trust-pinned'], mine);
    assert.equal(policy.resolve('herald-trust-pinned').path, join(mine, 'herald-trust-pinned'));
    chmodSync(join(mine, 'herald-trust-pinned'), 0o757);
    for (const asked of ['herald-trust-pinned', join(mine, 'herald-trust-pinned')]) {
      assert.throws(() => policy.resolve(asked), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /allowed but its file is not run: the file .* is writable by other users \(mode 0757\)/), asked);
    }
    assert.equal(warnings.length, 1);
    chmodSync(join(mine, 'herald-trust-pinned'), 0o755);
    assert.equal(policy.resolve('herald-trust-pinned').path, join(mine, 'herald-trust-pinned'));
  });

  it('judges a search directory as checkDirectory judges the data dir', () => {
    for (const mode of [0o700, 0o755, 0o775, 0o777, 0o1777, 0o1775]) {
      const d = join(dir, `mode-${mode.toString(8)}`);
      mkdirSync(d);
      chmodSync(d, mode);
      const ours = directoryVerdict(d, 'search');
      const data = checkDirectory(d, 'the data dir');
      assert.equal(ours.refusal !== undefined, data.refusal !== undefined, `mode ${mode.toString(8)}: refused`);
      assert.equal(ours.warning !== undefined, data.warning !== undefined, `mode ${mode.toString(8)}: warned`);
    }
  });
});

describe('files and directories of another user', { skip: needsRoot }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-path-owner-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('an absolute entry whose file is another user\'s is not pinned', () => {
    const file = join(dir, 'theirs');
    script(file);
    chownSync(file, NOBODY, NOBODY);
    const { policy, warnings } = policyWith([file], '');
    assert.deepEqual(policy.entries(), [{ entry: file, path: null }]);
    assert.throws(() => policy.resolve(file), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', new RegExp(`not run: ${file}: the file ${file} is owned by uid ${NOBODY}, not by root`)));
    assert.equal(warnings.length, 1);
  });

  it('a search directory of another user\'s, or writable by a group not this process\'s, is not searched', () => {
    const theirs = join(dir, 'their-bin');
    mkdirSync(theirs, { mode: 0o755 });
    script(join(theirs, 'herald-owner-tool'));
    chownSync(theirs, NOBODY, NOBODY);
    const groups = join(dir, 'group-bin');
    mkdirSync(groups);
    chmodSync(groups, 0o775);
    chownSync(groups, 0, NOBODY);
    script(join(groups, 'herald-owner-tool'));
    const { policy } = policyWith(['herald-owner-tool'], `${theirs}:${groups}`);
    assert.throws(() => policy.resolve('herald-owner-tool'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND',
      new RegExp(`search directory ${theirs} is owned by uid ${NOBODY}, not by root.*; .*search directory ${groups} is writable by its group \\(gid ${NOBODY}, not one of this process's`)));
  });
});

test('the repro: traceroute planted by another user in a 1777 PATH directory after start-up is refused, and runs nothing', { skip: needsRoot }, async (t) => {
  const shared = mkdtempSync(join(tmpdir(), 'herald-shared-bin-'));
  t.after(() => rmSync(shared, { recursive: true, force: true }));
  chmodSync(shared, 0o1777);
  const rig = await makeRig({ commandsAllow: ['ping', 'herald-planted'], commandsPath: `/usr/local/bin:/usr/bin:/bin:${shared}` });
  t.after(() => rig.close());
  const witness = join(shared, 'ran');
  writeFileSync(join(shared, 'herald-planted'), `#!/bin/sh\ntouch ${witness}\n`, { mode: 0o755 });
  chownSync(join(shared, 'herald-planted'), NOBODY, NOBODY);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(rig.runner.start({ aid: 1, program: 'herald-planted', args: [], door: 'http' }),
      refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /search directory .* is writable by other users \(mode 1777\)/));
  }
  assert.equal(existsSync(witness), false, 'the planted file did not run');
  const warned = rig.logs.filter((l) => l.msg === 'allowed program not run: another user could control the file or where it is');
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.equal(warned[0]!.path, join(shared, 'herald-planted'));
});

describe('relative search path entries are never searched, and said so', () => {
  it('serverSearchPath leaves out every relative entry (an empty one too) and lists it', () => {
    assert.deepEqual(serverSearchPath('bin:./node_modules/.bin:/usr/bin::/bin:rel/x:.'), {
      searchPath: '/usr/bin:/bin',
      skipped: ['bin', './node_modules/.bin', '', 'rel/x', '.'],
    });
    assert.deepEqual(serverSearchPath('/repo/node_modules/.bin:/usr/bin'), { searchPath: '/usr/bin', skipped: ['/repo/node_modules/.bin'] });
    assert.deepEqual(serverSearchPath(''), { searchPath: '', skipped: [] }, 'an unset PATH has no entry to leave out');
  });

  it('start-up with commandsPath empty logs the relative PATH entries left out, and a refusal names only the directories searched', async () => {
    const rig = await makeRig({ commandsAllow: ['ping', 'herald-nowhere'], commandsPath: '' }, { env: { PATH: 'bin:./node_modules/.bin:/usr/bin:/bin' } });
    try {
      const line = rig.logs.find((l) => /server's PATH/.test(String(l.msg)));
      assert.deepEqual(line?.skipped, ['bin', './node_modules/.bin'], JSON.stringify(rig.logs));
      await assert.rejects(rig.runner.start({ aid: 1, program: 'herald-nowhere', args: [], door: 'http' }),
        refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /\(looked for "herald-nowhere" in any of \/usr\/bin:\/bin\)$/));
    } finally {
      await rig.close();
    }
  });

  it('a commandsPath with relative entries warns naming them, and a refusal names only the directories searched', async () => {
    const rig = await makeRig({ commandsAllow: ['herald-nowhere'], commandsPath: 'rel:/usr/bin:.' });
    try {
      const line = rig.logs.find((l) => /^commandsPath:/.test(String(l.msg)));
      assert.deepEqual(line?.skipped, ['rel', '.'], JSON.stringify(rig.logs));
      assert.equal(line?.level, 40);
      await assert.rejects(rig.runner.start({ aid: 1, program: 'herald-nowhere', args: [], door: 'http' }),
        refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /\(looked for "herald-nowhere" in any of \/usr\/bin\)$/));
    } finally {
      await rig.close();
    }
    const none = policyWith(['herald-nowhere'], 'rel');
    assert.throws(() => none.policy.resolve('herald-nowhere'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /in \(no absolute directory in the search path\)\)$/));
  });
});

// Herald as deploy/ runs it: a user of its own, with the system's PATH. Root's directories and
// programs are trusted, so ping-like programs from /usr/bin still run.
const noSetpriv = needsRoot ? false : skipUnlessCI(!existsSync(SETPRIV) ? `running Herald as nobody needs ${SETPRIV} (util-linux)` : false);
test('run as nobody with PATH /usr/local/bin:/usr/bin:/bin, an allowed name from root\'s /usr/bin runs', { skip: needsRoot || noSetpriv }, async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'herald-path-nobody-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  chmodSync(parent, 0o755);
  const data = join(parent, 'data');
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, NOBODY, NOBODY);
  const token = 'api-token-0123456789';
  const args = ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, cliBundle(), 'start', '--data-dir', data, '--port', '0', '--no-legacy', '--log-level', 'info'];
  const env = { ...cleanEnv(), PATH: '/usr/local/bin:/usr/bin:/bin', HERALD_SECRET: 'abcdefghijklmnopqrstuvwxyz0123456789', HERALD_API_TOKEN: token, HERALD_COMMANDS_ALLOW: 'printf', HERALD_COMMANDS_CWD: parent };
  const child = spawn(SETPRIV, args, { cwd: REPO_ROOT, env, stdio: 'pipe' });
  const out = new LineReader(child.stdout);
  const err = new LineReader(child.stderr);
  try {
    const gone = exited(child, 20_000).then(({ code }) => { throw new Error(`herald start exited ${code}: ${err.text()}`); });
    const line = await Promise.race([out.next((l) => l.includes('Herald is listening')), gone]);
    gone.catch(() => undefined);
    const http = (JSON.parse(line) as { http: string }).http;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const run = await fetch(`${http}/api/v1/commands`, { method: 'POST', headers, body: JSON.stringify({ aid: 1, program: 'printf', args: ['as %s', 'nobody'] }) });
    const info = await run.json() as { id: string; path: string };
    assert.equal(run.status, 201, JSON.stringify(info));
    const done = await (await fetch(`${http}/api/v1/commands/${info.id}?since=0&wait=10`, { headers })).json() as { state: string; output: string };
    assert.deepEqual({ state: done.state, output: done.output }, { state: 'succeeded', output: 'as nobody' });
    assert.doesNotMatch(out.text(), /allowed program not run/, 'no warning about root\'s directories');
  } finally {
    child.kill('SIGTERM');
    await exited(child).catch(() => undefined);
  }
});
