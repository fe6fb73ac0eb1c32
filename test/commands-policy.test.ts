import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommandPolicy } from '../src/server/commands/policy.js';
import { isHeraldError, type ErrorCode } from '../src/server/errors.js';

const refusedWith = (code: ErrorCode, text?: RegExp) => (e: unknown) =>
  isHeraldError(e) && e.code === code && (text === undefined || text.test(e.message));

describe('command policy (allowlist resolved at start-up)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-policy-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('allows ping by name and by any path to the same file', () => {
    const policy = new CommandPolicy({ allow: ['ping'], searchPath: '/usr/bin:/bin' });
    const byName = policy.resolve('ping');
    assert.equal(byName.path, '/usr/bin/ping');
    assert.equal(policy.resolve('/usr/bin/ping').path, '/usr/bin/ping');
    assert.equal(policy.resolve('/bin/ping').path, '/usr/bin/ping');
    assert.equal(policy.resolve('/usr/bin/../bin/ping').path, '/usr/bin/ping');
    assert.deepEqual(policy.entries(), [{ entry: 'ping', path: '/usr/bin/ping' }]);
  });

  it('allows an absolute entry by its file name too', () => {
    const policy = new CommandPolicy({ allow: ['/usr/bin/echo'], searchPath: '' });
    assert.equal(policy.resolve('echo').path, '/usr/bin/echo');
    assert.equal(policy.resolve('/bin/echo').path, '/usr/bin/echo');
  });

  it('names a multi-call file by the entry the request asked for (its argv[0]), not the first entry pinning it', () => {
    // xzcat and unxz both pin /usr/bin/xz; each does something else under its own name.
    const policy = new CommandPolicy({ allow: ['xzcat', 'unxz'], searchPath: '/usr/bin:/bin' });
    assert.deepEqual(policy.resolve('/usr/bin/unxz'), { entry: 'unxz', path: '/usr/bin/xz' });
    assert.deepEqual(policy.resolve('/usr/bin/xzcat'), { entry: 'xzcat', path: '/usr/bin/xz' });
    assert.deepEqual(policy.resolve('/usr/bin/xz'), { entry: 'xzcat', path: '/usr/bin/xz' }, 'another name for the file: the first entry');
  });

  it('refuses programs that are not on the list, naming what is', () => {
    const policy = new CommandPolicy({ allow: ['ping'], searchPath: '/usr/bin:/bin' });
    assert.throws(() => policy.resolve('sh'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /"sh" is not allowed \(allowed: ping\)/));
    assert.throws(() => policy.resolve('/bin/sh'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'));
    assert.throws(() => policy.resolve('/usr/bin/nonexistent-program'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'));
  });

  it('refuses path tricks: relative paths, .. out of the list, symlinks out of the list', () => {
    const policy = new CommandPolicy({ allow: ['ping'], searchPath: '/usr/bin:/bin' });
    assert.throws(() => policy.resolve('../bin/sh'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /relative path/));
    assert.throws(() => policy.resolve('./ping'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /relative path.*\(allowed: ping\)/));
    assert.throws(() => policy.resolve('/usr/bin/../../bin/sh'), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /resolves to \/usr\/bin\/dash|not allowed/));
    // A symlink named like the allowed program but pointing elsewhere.
    const fake = join(dir, 'fake');
    mkdirSync(fake);
    symlinkSync('/bin/sh', join(fake, 'ping'));
    assert.throws(() => policy.resolve(join(fake, 'ping')), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /resolves to/));
    // A directory traversal through the temp dir to a real file off the list.
    assert.throws(() => policy.resolve(`${fake}/../../../usr/bin/env`), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'));
    // A symlink that points at the allowed file runs the allowed file, and nothing else.
    symlinkSync('/usr/bin/ping', join(fake, 'myping'));
    assert.equal(policy.resolve(join(fake, 'myping')).path, '/usr/bin/ping');
  });

  it('pins an allowlisted symlink to its target at start-up', () => {
    const bin = join(dir, 'pinned');
    mkdirSync(bin);
    symlinkSync('/usr/bin/echo', join(bin, 'tool'));
    const policy = new CommandPolicy({ allow: [join(bin, 'tool')], searchPath: '' });
    assert.equal(policy.resolve(join(bin, 'tool')).path, '/usr/bin/echo');
    // Re-pointing the link later does not change what the name runs, and the new target is refused.
    rmSync(join(bin, 'tool'));
    symlinkSync('/bin/sh', join(bin, 'tool'));
    assert.equal(policy.resolve('tool').path, '/usr/bin/echo');
    assert.throws(() => policy.resolve(join(bin, 'tool')), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'));
  });

  it('reports an allowed program that is not installed clearly, and finds it once installed', () => {
    const bin = join(dir, 'later');
    mkdirSync(bin);
    const policy = new CommandPolicy({ allow: ['herald-test-tool'], searchPath: bin });
    assert.deepEqual(policy.entries(), [{ entry: 'herald-test-tool', path: null }]);
    assert.throws(() => policy.resolve('herald-test-tool'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /allowed but not installed/));
    assert.throws(() => policy.resolve(join(bin, 'herald-test-tool')), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND'));
    writeFileSync(join(bin, 'herald-test-tool'), '#!/bin/sh\necho hi\n');
    chmodSync(join(bin, 'herald-test-tool'), 0o755);
    assert.equal(policy.resolve('herald-test-tool').path, join(bin, 'herald-test-tool'));
  });

  it('an allowed program removed after start-up is "gone" by its name as by its path, not a run that fails to spawn', () => {
    const bin = join(dir, 'removed');
    mkdirSync(bin);
    writeFileSync(join(bin, 'herald-gone-tool'), '#!/bin/sh\n');
    chmodSync(join(bin, 'herald-gone-tool'), 0o755);
    const policy = new CommandPolicy({ allow: ['herald-gone-tool'], searchPath: bin });
    assert.equal(policy.resolve('herald-gone-tool').path, join(bin, 'herald-gone-tool'));
    rmSync(join(bin, 'herald-gone-tool'));
    for (const requested of ['herald-gone-tool', join(bin, 'herald-gone-tool')]) {
      assert.throws(() => policy.resolve(requested), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /is allowed but its file .*herald-gone-tool is gone/), requested);
    }
  });

  it('an allowed absolute entry that is a directory is "not installed" when asked by its path, not "not allowed (allowed: it)"', () => {
    const adir = join(dir, 'adir');
    mkdirSync(adir);
    const policy = new CommandPolicy({ allow: [adir], searchPath: '' });
    assert.deepEqual(policy.entries(), [{ entry: adir, path: null }]);
    assert.throws(() => policy.resolve(adir), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /allowed but not installed/));
    assert.throws(() => policy.resolve('adir'), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /allowed but not installed/));
  });

  it('skips files that are not executable when searching', () => {
    const a = join(dir, 'noexec-a');
    const b = join(dir, 'noexec-b');
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, 'tool2'), 'not a program');
    chmodSync(join(a, 'tool2'), 0o644);
    writeFileSync(join(b, 'tool2'), '#!/bin/sh\n');
    chmodSync(join(b, 'tool2'), 0o755);
    const policy = new CommandPolicy({ allow: ['tool2'], searchPath: `${a}:${b}` });
    assert.equal(policy.resolve('tool2').path, join(b, 'tool2'));
  });

  it('applies per-program argument rules to every argument', () => {
    const policy = new CommandPolicy({ allow: ['ping', 'echo'], argRules: ['ping=-[cqnW]|[0-9]{1,2}|127\\.0\\.0\\.1'], searchPath: '/usr/bin' });
    const ping = policy.resolve('ping');
    policy.checkArgs(ping, ['-c', '3', '-q', '127.0.0.1']);
    assert.throws(() => policy.checkArgs(ping, ['-c', '3', '192.168.1.1']), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /argument 3 of "ping"/));
    // The rule is anchored even without ^…$.
    assert.throws(() => policy.checkArgs(ping, ['127.0.0.1; ls']), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'));
    policy.checkArgs(policy.resolve('echo'), ['anything', 'at all']);
  });

  it('applies a rule to the program however it is listed and named', () => {
    // Listed twice, by path and by name (either order): each way of asking is held to the rule.
    for (const allow of [['/usr/bin/ping', 'ping'], ['ping', '/usr/bin/ping']]) {
      const policy = new CommandPolicy({ allow, argRules: ['ping=-c|1|127\\.0\\.0\\.1'], searchPath: '/usr/bin' });
      for (const program of ['ping', '/usr/bin/ping', '/bin/ping']) {
        const resolved = policy.resolve(program);
        policy.checkArgs(resolved, ['-c', '1', '127.0.0.1']);
        assert.throws(() => policy.checkArgs(resolved, ['-f', '127.0.0.1']), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /argument 1/), `${allow.join(',')}: ${program}`);
      }
    }
  });

  it('rejects a contradictory configuration at start-up', () => {
    assert.throws(() => new CommandPolicy({ allow: ['bin/ping'], searchPath: '' }), refusedWith('HERALD_ERR_CONFIG', /bare name or an absolute path/));
    assert.throws(() => new CommandPolicy({ allow: ['ping'], argRules: ['sh=.*'], searchPath: '' }), refusedWith('HERALD_ERR_CONFIG', /not in "commandsAllow"/));
    assert.throws(() => new CommandPolicy({ allow: ['ping'], argRules: ['ping=('], searchPath: '' }), refusedWith('HERALD_ERR_CONFIG', /bad regular expression/));
    assert.throws(() => new CommandPolicy({ allow: ['ping'], argRules: ['ping'], searchPath: '' }), refusedWith('HERALD_ERR_CONFIG', /PROGRAM=REGEX/));
  });
});
