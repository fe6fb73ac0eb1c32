import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, it } from 'node:test';
import { isHeraldError, type ErrorCode } from '../src/server/errors.js';
import { skipUnlessCI } from './helpers/capability.js';
import { gone, makeRig, processAlive, within, type Frame, type Rig } from './commands-fixture.js';

const TEST_PROGRAMS = ['ping', 'echo', 'sh', 'sleep', 'seq', 'env'];
const refusedWith = (code: ErrorCode, text?: RegExp) => (e: unknown) =>
  isHeraldError(e) && e.code === code && (text === undefined || text.test(e.message));
const isFinal = (id: string) => (f: Frame) => f.COMMAND_ID === id && f.TYPE !== 'COMMAND_PROGRESS';
const command = (f: Frame) => f.COMMAND as Record<string, unknown>;

describe('CommandRunner with real child processes', () => {
  let rig: Rig | undefined;
  afterEach(async () => {
    await rig?.close();
    rig = undefined;
  });

  it('runs ping on loopback and tells the admin: live progress, then the default notification', async () => {
    rig = await makeRig();
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'ping', args: ['-c', '1', '-q', '127.0.0.1'], timeoutSec: 5, taskId: 'task-1', door: 'http', requestedBy: 'test' });
    assert.equal(info.state, 'running');
    assert.equal(info.path, '/usr/bin/ping');
    const final = await tab.next(isFinal(info.id));
    assert.equal(final.TYPE, 'MESSAGE');
    assert.equal(final.TITLE, 'ping');
    assert.match(String(final.TEXT), /1 packets transmitted, 1 received/);
    assert.equal(final.ID, 'task-1');
    assert.equal(command(final).STATE, 'succeeded');
    assert.equal(command(final).EXIT_CODE, 0);
    assert.equal(command(final).TIMED_OUT, false);
    assert.equal(command(final).TRUNCATED, false);
    assert.equal(typeof final.SEQ, 'number', 'the final notification is a tracked one');
    const progress = tab.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS');
    assert.equal(progress[0]?.STATE, 'running');
    assert.equal(progress.at(-1)?.STATE, 'succeeded');
    assert.ok(progress.every((f) => f.SEQ === undefined && f.ID === 'task-1' && f.PROGRAM === 'ping'));
    assert.match(progress.map((f) => f.OUTPUT).join(''), /1 packets transmitted/);
    const done = rig.runner.get(info.id);
    assert.equal(done?.state, 'succeeded');
    assert.ok((done?.endedAt ?? 0) >= (done?.startedAt ?? Infinity));
    const audit = rig.logs.find((l) => l.audit === 'command' && l.id === info.id);
    assert.ok(audit, 'an audit line is logged');
    assert.equal(audit.event, 'finished');
    assert.equal(audit.door, 'http');
    assert.equal(audit.requestedBy, 'test');
    assert.equal(audit.aid, 1);
    assert.deepEqual(audit.args, ['-c', '1', '-q', '127.0.0.1']);
    assert.equal(audit.state, 'succeeded');
  });

  it('keeps the final notification for an admin with no tab open, but not the progress', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS });
    const info = await rig.runner.start({ aid: 5, program: 'echo', args: ['hello'], door: 'http' });
    await rig.runner.wait(info.id);
    const stored = await rig.store.readAfter('admin:5', 0, 100, Date.now());
    assert.equal(stored.messages.length, 1);
    const msg = JSON.parse(stored.messages[0]?.json ?? '{}') as Frame;
    assert.equal(msg.TEXT, 'hello\n');
    assert.equal(msg.COMMAND_ID, info.id);
  });

  it('sends SUCCESS on exit status 0 and ERROR otherwise (the old daemon had them reversed)', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS });
    const tab = rig.tab(1);
    const success = { TYPE: 'MESSAGE', TITLE: 'Done', TEXT: 'all good' };
    const error = { TYPE: 'MESSAGE', TITLE: 'Failed', TEXT: 'it failed' };
    const ok = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'exit 0'], success, error, door: 'legacy' });
    const bad = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'echo oops >&2; exit 3'], success, error, taskId: 7, door: 'legacy' });
    const okFinal = await tab.next(isFinal(ok.id));
    const badFinal = await tab.next(isFinal(bad.id));
    assert.equal(okFinal.TITLE, 'Done');
    assert.equal(badFinal.TITLE, 'Failed');
    assert.equal(badFinal.ID, 7);
    assert.equal(command(badFinal).EXIT_CODE, 3);
    assert.equal(command(badFinal).STATE, 'failed');
    // Strings are wrapped into a MESSAGE titled with the program.
    const s = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'exit 1'], error: 'plain text', door: 'http' });
    const sFinal = await tab.next(isFinal(s.id));
    assert.deepEqual([sFinal.TYPE, sFinal.TITLE, sFinal.TEXT], ['MESSAGE', 'sh', 'plain text']);
    assert.equal(sFinal.FORMAT, undefined, 'the caller\'s own ERROR is theirs: it may hold HTML');
    assert.equal(okFinal.FORMAT, undefined);
    // Without ERROR, the default says what happened after the output.
    const d = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'echo oops >&2; exit 3'], door: 'http' });
    const dFinal = await tab.next(isFinal(d.id));
    assert.equal(dFinal.TEXT, 'oops\n[exit status 3]');
    // The default is the output as printed (as the old daemon sent it), marked as plain text, not HTML.
    assert.equal(dFinal.FORMAT, 'text');
  });

  it('kills the whole process group on timeout: the program and its grandchild', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS });
    const tab = rig.tab(1);
    const info = await rig.runner.start({
      aid: 1, program: 'sh', args: ['-c', 'sleep 30 & echo "child=$!"; echo "self=$$"; wait'], timeoutSec: 0.5, door: 'http',
    });
    await tab.next((f) => f.COMMAND_ID === info.id && /self=\d+/.test(String(f.OUTPUT)) || /self=\d+/.test(String(rig?.runner.get(info.id)?.output)));
    const out = rig.runner.get(info.id)?.output ?? '';
    const child = Number(/child=(\d+)/.exec(out)?.[1]);
    const self = Number(/self=(\d+)/.exec(out)?.[1]);
    assert.ok(processAlive(child) && processAlive(self), 'both processes run before the timeout');
    const done = await within(rig.runner.wait(info.id), 5000, 'timed-out command');
    assert.equal(done?.state, 'timed_out');
    assert.equal(done?.TIMED_OUT, true);
    assert.equal(done?.SIGNAL, 'SIGTERM');
    assert.ok((done?.DURATION_MS ?? 0) >= 450);
    assert.ok(await gone(self), `program ${self} is gone`);
    assert.ok(await gone(child), `grandchild ${child} is gone`);
    const final = await tab.next(isFinal(info.id));
    assert.match(String(final.TEXT), /\[timed out after 0\.5 s: stopped\]$/);
    assert.equal(command(final).TIMED_OUT, true);
  });

  it('escalates to SIGKILL when the program and its children ignore SIGTERM', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsKillGraceMs: 300 });
    const info = await rig.runner.start({
      aid: 1, program: 'sh', args: ['-c', `trap '' TERM; sleep 30 & echo "child=$!"; echo "self=$$"; wait; wait`], timeoutSec: 0.3, door: 'http',
    });
    const done = await within(rig.runner.wait(info.id), 5000, 'stubborn command');
    const child = Number(/child=(\d+)/.exec(done?.output ?? '')?.[1]);
    const self = Number(/self=(\d+)/.exec(done?.output ?? '')?.[1]);
    assert.ok(child > 0 && self > 0, `pids in output: ${done?.output}`);
    assert.equal(done?.state, 'timed_out');
    assert.equal(done?.SIGNAL, 'SIGKILL');
    assert.ok(await gone(self));
    assert.ok(await gone(child));
  });

  it('ends a run whose program exited but left a child holding its output, and stops that child', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsKillGraceMs: 300 });
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 30 & echo "child=$!"'], timeoutSec: 20, door: 'http' });
    const done = await within(rig.runner.wait(info.id), 5000, 'run with a straggler');
    const child = Number(/child=(\d+)/.exec(done?.output ?? '')?.[1]);
    assert.equal(done?.state, 'succeeded', 'the program itself exited 0');
    assert.ok((done?.DURATION_MS ?? 0) < 5000);
    assert.ok(await gone(child), 'the left-over child is gone');
  });

  it('does not call a program that ended in time timed out because its left-over child outlived the timeout', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsKillGraceMs: 1000 });
    const tab = rig.tab(1);
    // sh exits at once; its child holds the output past the 0.3 s timeout, until the grace ends it.
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 30 & echo "child=$!"'], timeoutSec: 0.3, door: 'http' });
    const done = await within(rig.runner.wait(info.id), 5000, 'run with a straggler');
    const child = Number(/child=(\d+)/.exec(done?.output ?? '')?.[1]);
    assert.deepEqual([done?.state, done?.TIMED_OUT, done?.EXIT_CODE], ['succeeded', false, 0]);
    assert.equal(command(await tab.next(isFinal(info.id))).STATE, 'succeeded');
    assert.ok(await gone(child), 'the left-over child is gone');
  });

  it('answers a cancel that crosses the program\'s end with its real outcome, and stops what it left at once', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsKillGraceMs: 10_000 });
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 30 & echo "child=$!"; echo "self=$$"'], door: 'http' });
    await tab.next((f) => f.COMMAND_ID === info.id && /self=\d+/.test(String(rig?.runner.get(info.id)?.output)));
    const out = rig.runner.get(info.id)?.output ?? '';
    assert.ok(await gone(Number(/self=(\d+)/.exec(out)?.[1])), 'sh has ended');
    const t0 = Date.now();
    const done = await within(rig.runner.cancel(info.id, { kind: 'admin', id: 1 }), 15_000, 'cancel');
    assert.ok(Date.now() - t0 < 5000, 'the left-over child went at once, not after the 10 s grace');
    assert.deepEqual([done.state, done.EXIT_CODE, done.error], ['succeeded', 0, undefined]);
    const final = await tab.next(isFinal(info.id));
    assert.equal(command(final).STATE, 'succeeded');
    assert.ok(await gone(Number(/child=(\d+)/.exec(out)?.[1])), 'the left-over child is gone');
  });

  it('caps a flood of output and still lets the program run to its end (what is past the cap is read at a pace, not dropped as fast as it comes)', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsOutputCap: 65536 });
    const tab = rig.tab(1);
    // ~21 MB of output: far beyond the cap and any pipe buffer.
    const info = await rig.runner.start({ aid: 1, program: 'seq', args: ['1', '3000000'], timeoutSec: 30, door: 'http' });
    const done = await within(rig.runner.wait(info.id), 20_000, 'flood');
    assert.equal(done?.state, 'succeeded', 'seq ran to the end: its pipe was drained');
    assert.equal(done?.TRUNCATED, true);
    assert.ok(Buffer.byteLength(done?.output ?? '') <= 65536);
    assert.ok((done?.output ?? '').startsWith('1\n2\n3\n'));
    const final = await tab.next(isFinal(info.id));
    assert.match(String(final.TEXT), /\[output cut: too long\]$/);
    const progressed = tab.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS').reduce((n, f) => n + String(f.OUTPUT).length, 0);
    assert.ok(progressed <= 65536, 'progress frames carry no more than the kept output');
  });

  it('with commandsPath empty, looks names up in the server\'s PATH but not in the node_modules/.bin that npm start puts first', async () => {
    // What `npm start` hands the server: every node_modules/.bin from the checkout up, npm's node-gyp-bin, then the PATH it was given.
    const project = mkdtempSync(join(tmpdir(), 'herald-npm-path-'));
    try {
      const bin = join(project, 'node_modules', '.bin');
      mkdirSync(bin, { recursive: true });
      writeFileSync(join(bin, 'echo'), '#!/bin/sh\nprintf "a dependency\'s echo\\n"\n');
      chmodSync(join(bin, 'echo'), 0o755);
      const gyp = join(project, 'npm', 'node_modules', '@npmcli', 'run-script', 'lib', 'node-gyp-bin');
      const PATH = [bin, join(dirname(project), 'node_modules', '.bin'), gyp, '/usr/bin', '/bin'].join(':');
      rig = await makeRig({ commandsAllow: ['echo'], commandsPath: '' }, { env: { PATH } });
      assert.deepEqual(rig.runner.stats().allowed, [{ entry: 'echo', path: '/usr/bin/echo' }]);
      const done = await rig.runner.wait((await rig.runner.start({ aid: 1, program: 'echo', args: ['the system\'s'], door: 'http' })).id);
      assert.equal(done?.output, 'the system\'s\n');
      const said = rig.logs.find((l) => Array.isArray(l.skipped));
      assert.deepEqual(said?.skipped, [bin, join(dirname(project), 'node_modules', '.bin'), gyp], 'start-up says which directories it left out');
      assert.ok(rig.logs.some((l) => l.msg === 'allowed program' && l.program === 'echo' && l.path === '/usr/bin/echo'), 'and what each name resolved to');
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  it('passes shell syntax to the program literally and creates no file', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS });
    writeFileSync(join(rig.cwd, 'existing'), '');
    const hostile = ['; touch x', '$(touch y)', '`touch z`', '*', '> w', '| touch v', '&& touch u'];
    const legacy = await rig.runner.start({ aid: 1, program: '/bin/echo', args: hostile, splitArgs: true, door: 'legacy' });
    const vector = await rig.runner.start({ aid: 1, program: 'echo', args: hostile, door: 'http' });
    const l = await rig.runner.wait(legacy.id);
    const v = await rig.runner.wait(vector.id);
    assert.equal(l?.output, '; touch x $(touch y) `touch z` * > w | touch v && touch u\n');
    assert.deepEqual(l?.args, [';', 'touch', 'x', '$(touch', 'y)', '`touch', 'z`', '*', '>', 'w', '|', 'touch', 'v', '&&', 'touch', 'u']);
    assert.equal(v?.output, `${hostile.join(' ')}\n`);
    assert.deepEqual(v?.args, hostile);
    assert.deepEqual(readdirSync(rig.cwd), ['existing'], 'no file was created and * was not expanded');
  });

  it('refuses forbidden programs and path tricks with a clear error, and audits the refusal', async () => {
    rig = await makeRig();
    for (const program of ['sh', '/bin/sh', '../bin/sh', '/usr/bin/../../bin/sh', 'ping; sh']) {
      await assert.rejects(rig.runner.start({ aid: 1, program, args: [], door: 'http' }), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN'), program);
    }
    const refusal = rig.logs.find((l) => l.audit === 'command' && l.event === 'refused' && l.program === '/bin/sh');
    assert.ok(refusal);
    assert.match(String(refusal.error), /HERALD_ERR_COMMAND_FORBIDDEN/);
    assert.deepEqual(rig.runner.stats(), { enabled: true, running: 0, queued: 0, allowed: [{ entry: 'ping', path: '/usr/bin/ping' }] });
  });

  it('runs a multi-call program under its allowed name, whatever path the request used', async () => {
    // xzcat is a symlink to xz, which decompresses to stdout only when argv[0] says xzcat
    // (as busybox picks an applet by argv[0], and by its first argument when run as busybox).
    rig = await makeRig({ commandsAllow: ['xzcat'] });
    writeFileSync(join(rig.cwd, 'note'), 'hello from xz\n');
    execFileSync('xz', [join(rig.cwd, 'note')]);
    for (const program of ['xzcat', '/usr/bin/xz', '/usr/bin/unxz']) {
      const info = await rig.runner.start({ aid: 1, program, args: ['note.xz'], door: 'http' });
      const done = await rig.runner.wait(info.id);
      assert.equal(done?.path, '/usr/bin/xz');
      assert.deepEqual([done?.state, done?.output], ['succeeded', 'hello from xz\n'], program);
    }
    assert.ok(readdirSync(rig.cwd).includes('note.xz'), 'nothing decompressed in place');
  });

  it('says clearly when an allowed program is not installed', async () => {
    rig = await makeRig({ commandsAllow: ['ping', 'herald-no-such-program'] });
    await assert.rejects(
      rig.runner.start({ aid: 1, program: 'herald-no-such-program', args: [], door: 'http' }),
      refusedWith('HERALD_ERR_COMMAND_NOT_FOUND', /allowed but not installed/),
    );
  });

  it('refuses a program that vanished after start-up, and reports one that cannot be run any more as a failed run, not a crash', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'herald-vanishing-'));
    const script = join(bin, 'vanishing');
    const spoilt = join(bin, 'spoilt');
    for (const file of [script, spoilt]) {
      writeFileSync(file, '#!/bin/sh\necho hi\n');
      chmodSync(file, 0o755);
    }
    rig = await makeRig({ commandsAllow: [script, spoilt] });
    try {
      rmSync(script);
      chmodSync(spoilt, 0o644);
      const tab = rig.tab(1);
      // Gone: refused by its path and by its allowlist name alike.
      for (const program of [script, 'vanishing']) {
        await assert.rejects(rig.runner.start({ aid: 1, program, args: [], door: 'http' }), refusedWith('HERALD_ERR_COMMAND_NOT_FOUND'), program);
      }
      // Still there but no longer executable (as a file replaced between the check and the spawn): the spawn fails.
      const info = await rig.runner.start({ aid: 1, program: 'spoilt', args: [], door: 'http' });
      const done = await rig.runner.wait(info.id);
      assert.equal(done?.state, 'failed');
      assert.match(done?.error ?? '', /EACCES/);
      const final = await tab.next(isFinal(info.id));
      assert.match(String(final.TEXT), /\[could not run: .*EACCES/);
      assert.equal(rig.runner.stats().running, 0, 'the slot is released');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });

  it('gives programs only the configured environment', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsEnv: ['PATH=/usr/bin:/bin', 'LANG=C.UTF-8'] });
    const info = await rig.runner.start({ aid: 1, program: 'env', args: [], door: 'http' });
    const done = await rig.runner.wait(info.id);
    assert.deepEqual((done?.output ?? '').trim().split('\n').sort(), ['LANG=C.UTF-8', 'PATH=/usr/bin:/bin']);
  });

  it('limits concurrency globally and per admin, with a bounded queue', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsConcurrency: 2, commandsPerAdminConcurrency: 1, commandsQueueSize: 1 });
    const sleep = (aid: number) => ({ aid, program: 'sleep', args: ['30'], door: 'http' as const });
    const a1 = await rig.runner.start(sleep(1));
    const a2 = await rig.runner.start(sleep(1));
    assert.equal(a1.state, 'running');
    assert.equal(a2.state, 'queued', 'admin 1 is at their limit');
    // Admin 2 is not held up by admin 1's queued command.
    const b1 = await rig.runner.start(sleep(2));
    assert.equal(b1.state, 'running');
    await assert.rejects(rig.runner.start(sleep(3)), refusedWith('HERALD_ERR_QUEUE_FULL', /2 running and 1 waiting/));
    await assert.rejects(rig.runner.start(sleep(1)), refusedWith('HERALD_ERR_QUEUE_FULL'));
    assert.deepEqual({ running: rig.runner.stats().running, queued: rig.runner.stats().queued }, { running: 2, queued: 1 });
    const cancelled = await within(rig.runner.cancel(a1.id), 5000, 'cancel');
    assert.equal(cancelled.state, 'cancelled');
    assert.equal(rig.runner.get(a2.id)?.state, 'running', 'the queued command starts when a slot frees');
    assert.deepEqual(rig.runner.list().map((c) => c.id), [b1.id, a2.id, a1.id]);
    assert.deepEqual(rig.runner.list(1).map((c) => c.id), [b1.id]);
  });

  it('lets only the owning admin cancel from a browser; the API may cancel any', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS });
    const tab = rig.tab(1);
    const info = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    await assert.rejects(rig.runner.cancel(info.id, { kind: 'admin', id: 2 }), refusedWith('HERALD_ERR_FORBIDDEN', /only the admin who owns/));
    await assert.rejects(rig.runner.cancel(info.id, { kind: 'user', id: 1 }), refusedWith('HERALD_ERR_FORBIDDEN'));
    assert.equal(rig.runner.get(info.id)?.state, 'running');
    const done = await within(rig.runner.cancel(info.id, { kind: 'admin', id: 1 }), 5000, 'cancel');
    assert.equal(done.state, 'cancelled');
    assert.equal(done.SIGNAL, 'SIGTERM');
    const final = await tab.next(isFinal(info.id));
    assert.equal(command(final).STATE, 'cancelled');
    assert.equal(final.TEXT, '[cancelled: by admin 1]');
    await assert.rejects(rig.runner.cancel(info.id), refusedWith('HERALD_ERR_CONFLICT'));
    await assert.rejects(rig.runner.cancel('no-such-id'), refusedWith('HERALD_ERR_NOT_FOUND'));
    // The API (no principal) may cancel any admin's command, queued ones too.
    const other = await rig.runner.start({ aid: 9, program: 'sleep', args: ['30'], door: 'http' });
    assert.equal((await within(rig.runner.cancel(other.id), 5000, 'api cancel')).state, 'cancelled');
  });

  it('cancels a queued command without ever starting it', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsConcurrency: 1, commandsPerAdminConcurrency: 1 });
    const tab = rig.tab(1);
    const first = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    const queued = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    assert.equal((await tab.next((f) => f.COMMAND_ID === queued.id)).STATE, 'queued', 'the admin sees it waiting');
    const done = await rig.runner.cancel(queued.id, { kind: 'admin', id: 1 });
    assert.equal(done.state, 'cancelled');
    assert.equal(done.startedAt, undefined);
    assert.equal(rig.runner.stats().queued, 0);
    await rig.runner.cancel(first.id);
  });

  it('throttles progress frames and loses no output between them', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsProgressMs: 200 });
    const tab = rig.tab(1);
    const script = 'i=0; while [ $i -lt 20 ]; do i=$((i+1)); echo "line $i"; sleep 0.03; done';
    const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', script], door: 'http' });
    const done = await within(rig.runner.wait(info.id), 10_000, 'progress run');
    await tab.next(isFinal(info.id));
    const frames = tab.frames.filter((f) => f.TYPE === 'COMMAND_PROGRESS' && f.COMMAND_ID === info.id);
    const expected = Array.from({ length: 20 }, (_, i) => `line ${i + 1}\n`).join('');
    assert.equal(frames.map((f) => f.OUTPUT).join(''), expected);
    assert.equal(done?.output, expected);
    // ~600 ms of output at one frame per 200 ms: the start frame, a handful, the end frame.
    const budget = Math.ceil((done?.DURATION_MS ?? 0) / 200) + 3;
    assert.ok(frames.length <= budget, `${frames.length} frames for ${done?.DURATION_MS} ms (at most ${budget})`);
    assert.ok(frames.length >= 3, 'a long run shows life');
  });

  it('applies the default and maximum timeout', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsTimeoutSec: 7, commandsMaxTimeoutSec: 60 });
    const a = await rig.runner.start({ aid: 1, program: 'echo', args: [], door: 'http' });
    const b = await rig.runner.start({ aid: 1, program: 'echo', args: [], timeoutSec: 99_999, door: 'http' });
    assert.equal(a.timeoutSec, 7);
    assert.equal(b.timeoutSec, 60);
    await assert.rejects(rig.runner.start({ aid: 1, program: 'echo', args: [], timeoutSec: 0, door: 'http' }), refusedWith('HERALD_ERR_VALIDATION'));
    await assert.rejects(rig.runner.start({ aid: 0, program: 'echo', args: [], door: 'http' }), refusedWith('HERALD_ERR_VALIDATION'));
    await assert.rejects(rig.runner.start({ aid: 1, program: 'echo', args: ['a\0b'], door: 'http' }), refusedWith('HERALD_ERR_VALIDATION'));
    await rig.runner.wait(a.id);
    await rig.runner.wait(b.id);
  });

  it('refuses everything when commands are disabled', async () => {
    rig = await makeRig({ commandsEnabled: false });
    await assert.rejects(rig.runner.start({ aid: 1, program: 'ping', args: [], door: 'http' }), refusedWith('HERALD_ERR_COMMANDS_DISABLED'));
  });

  it('stops running programs and refuses new ones on close', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsConcurrency: 1, commandsPerAdminConcurrency: 1 });
    const running = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    const queued = await rig.runner.start({ aid: 1, program: 'sleep', args: ['30'], door: 'http' });
    await within(rig.runner.close(), 5000, 'close');
    assert.equal(rig.runner.get(running.id)?.state, 'cancelled');
    assert.equal(rig.runner.get(running.id)?.error, 'server shutting down');
    assert.equal(rig.runner.get(queued.id)?.state, 'cancelled');
    await assert.rejects(rig.runner.start({ aid: 1, program: 'echo', args: [], door: 'http' }), refusedWith('HERALD_ERR_SHUTTING_DOWN'));
  });

  it('takes its programs and their children along when the server process exits without closing it', async () => {
    // A second Ctrl-C or a shutdown past its grace ends the CLI with process.exit().
    const fixture = new URL('./commands-fixture.ts', import.meta.url).href;
    const code = `
      import { makeRig } from ${JSON.stringify(fixture)};
      const rig = await makeRig({ commandsAllow: ['sh'] });
      const info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', 'sleep 30 & echo child=$!; echo self=$$; wait'], door: 'http' });
      while (!/self=/.test(rig.runner.get(info.id).output)) await new Promise((r) => setTimeout(r, 5));
      console.log(rig.runner.get(info.id).output);
      console.log('cwd=' + rig.cwd);
      process.exit(1);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    await within(new Promise((resolve) => child.on('close', resolve)), 20_000, 'server process');
    const pids = [...out.matchAll(/(?:child|self)=(\d+)/g)].map((m) => Number(m[1]));
    // The rig's working directory, which the exit left behind.
    const cwd = /^cwd=(.+)$/m.exec(out)?.[1];
    if (cwd?.startsWith(tmpdir())) rmSync(cwd, { recursive: true, force: true });
    assert.equal(pids.length, 2, `pids in output: ${out}`);
    try {
      for (const pid of pids) assert.ok(await gone(pid), `process ${pid} outlived the server`);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
  });

  it('keeps a bounded history', async () => {
    rig = await makeRig({ commandsAllow: TEST_PROGRAMS, commandsHistory: 2 });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const info = await rig.runner.start({ aid: 1, program: 'echo', args: [String(i)], door: 'http' });
      await rig.runner.wait(info.id);
      ids.push(info.id);
    }
    assert.equal(rig.runner.get(ids[0] ?? ''), undefined);
    assert.deepEqual(rig.runner.list().map((c) => c.output), ['2\n', '1\n']);
  });
});

/**
 * Herald runs as an unprivileged user; a command may leave behind, or be, a
 * process running as another user (a script's `sudo tool`, a set-user-ID
 * program), which Herald may not signal (EPERM). Reproduced for real: a
 * set-user-ID copy of perl that makes itself root, under a runner started as
 * `nobody`. Needs root to set it up (CI runs as root: there, not being able to is a failure).
 */
describe('CommandRunner with processes it may not signal', () => {
  // `nobody` must be able to read this checkout and tsx (not so under a private home directory).
  const readableByOthers = (file: string): boolean => {
    try {
      let p = realpathSync(file);
      if ((statSync(p).mode & 0o004) === 0) return false;
      for (p = dirname(p); ; p = dirname(p)) {
        if ((statSync(p).mode & 0o001) === 0) return false;
        if (p === dirname(p)) return true;
      }
    } catch {
      return false;
    }
  };
  const canSetUp = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv') && existsSync('/usr/bin/perl')
    && readableByOthers(fileURLToPath(new URL('./commands-fixture.ts', import.meta.url)))
    && readableByOthers(fileURLToPath(new URL('../node_modules/tsx/package.json', import.meta.url)));

  it('neither crashes nor hangs: each run ends, its slot is freed, and the refusal is logged', { skip: skipUnlessCI(!canSetUp && 'needs root, setpriv, perl and a checkout that nobody may read') }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-suid-'));
    chmodSync(dir, 0o755);
    const suid = join(dir, 'perl');
    copyFileSync('/usr/bin/perl', suid);
    chmodSync(suid, 0o4755);
    const fixture = new URL('./commands-fixture.ts', import.meta.url).href;
    // Becomes root for real (real uid 0, so `nobody` may not signal it), says its pid, sleeps.
    const rootSleep = `${suid} -e '$| = 1; $< = $> = 0; print "root=$$\\n"; sleep 20'`;
    const code = `
      import { makeRig } from ${JSON.stringify(fixture)};
      const rig = await makeRig({ commandsAllow: ['sh', ${JSON.stringify(suid)}], commandsKillGraceMs: 200 });
      const out = {};
      // 1. The program exits; what it left holding its output may not be killed.
      let info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', ${JSON.stringify(`${rootSleep} & sleep 0.2`)}], door: 'http' });
      out.leftBehind = await rig.runner.wait(info.id);
      // 2. A cancel while it runs: the program goes, what it started as root stays.
      info = await rig.runner.start({ aid: 1, program: 'sh', args: ['-c', ${JSON.stringify(`${rootSleep} & sleep 20`)}], door: 'http' });
      while (!/root=\\d+/.test(rig.runner.get(info.id).output)) await new Promise((r) => setTimeout(r, 5));
      out.cancelled = await rig.runner.cancel(info.id);
      // 3. The program itself may not be signalled, and times out.
      info = await rig.runner.start({ aid: 1, program: ${JSON.stringify(suid)}, args: ['-e', '$| = 1; $< = $> = 0; print "root=$$\\n"; sleep 60'], timeoutSec: 0.3, door: 'http' });
      out.timedOut = await rig.runner.wait(info.id);
      out.running = rig.runner.stats().running;
      out.warnings = rig.logs.filter((l) => /cannot be stopped/.test(String(l.msg))).length;
      await rig.close();
      console.log(JSON.stringify(out));
      // Run 3's program sleeps on for a minute, cut loose: it must not keep this process alive.
    `;
    const child = spawn('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', code], {
      env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      // Everything is known once the findings are printed; then the process ends of itself.
      const printed = new Promise<void>((resolve) => child.stdout.on('data', () => stdout.includes('"running"') && resolve()));
      await within(Promise.race([printed, closed]), 30_000, 'runner as nobody');
      const exitCode = await within(closed, 10_000, 'the runner\'s process to exit after close() while a program it cut loose still runs');
      assert.equal(exitCode, 0, `the runner's process failed: ${stderr.slice(-1500)}`);
      const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, Record<string, unknown>> & { running: number; warnings: number };
      assert.equal(out.leftBehind?.state, 'succeeded', 'sh itself exited 0');
      assert.match(String(out.leftBehind?.output), /root=\d+/);
      assert.equal(out.cancelled?.state, 'cancelled');
      assert.equal(out.timedOut?.state, 'timed_out');
      assert.equal(out.timedOut?.EXIT_CODE, null, 'it was cut loose, still running');
      assert.equal(out.running, 0, 'every slot is free again');
      // Runs 1 and 3 for certain; run 2 only where its dead sleep has been reaped (a zombie still takes signals).
      assert.ok(out.warnings >= 2, `a run that could not be stopped says so: ${stdout}`);
    } finally {
      child.kill('SIGKILL');
      // The root processes outlived their runs by design (nobody could not stop them): we can.
      for (const m of `${stdout}${stderr}`.matchAll(/root=(\d+)/g)) {
        try {
          process.kill(Number(m[1]), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
