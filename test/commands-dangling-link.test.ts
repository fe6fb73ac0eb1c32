/**
 * An allowed absolute entry that is a symlink to nothing (policy.ts,
 * resolve and #installed). The entry is pinned to its file; a link pointed at
 * a file not there yet, while the pinned one stays, still runs the pinned file
 * by name (docs/commands.md, "wherever its symlink points now"), and by its
 * path there is nothing to run. The refusal named the pinned file "gone"
 * while the same entry ran it by name, and never said the link dangled nor
 * where it pointed: what an admin who retargeted it needs to see. Through a
 * real Herald's HTTP API, running real programs from a temp dir.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

/** Starts the command and waits for its end: the final info, or the refusal's status, code and message. */
async function run(h: TestServer, program: string): Promise<{ status: number; code?: string; message?: string; state?: string; output?: string; path?: string }> {
  const started = await h.api('POST', '/api/v1/commands', { aid: 1, program, args: [], timeout: 20 });
  if (started.status !== 201) return { status: started.status, code: started.body.error?.code, message: started.body.error?.message };
  const done = await h.api('GET', `/api/v1/commands/${started.body.id}?wait=30`);
  return { status: started.status, state: done.body.state, output: done.body.output, path: done.body.path };
}

const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('an allowed symlink that dangles', () => {
  let dir: string;
  let link: string;
  let h: TestServer | undefined;
  /** Points the allowed link at `to` in one step (as update-alternatives does). */
  const retarget = (to: string) => {
    symlinkSync(to, `${link}.new`);
    renameSync(`${link}.new`, link);
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-dangling-'));
    for (const v of ['v1', 'v2']) {
      mkdirSync(join(dir, v));
      writeFileSync(join(dir, v, 'tool'), `#!/bin/sh\necho tool ${v}\n`);
      chmodSync(join(dir, v, 'tool'), 0o755);
    }
    link = join(dir, 'tool');
    symlinkSync(join(dir, 'v1', 'tool'), link);
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pointed at a missing file while its pinned one stays: by path "dangling", naming the link and its target, not the pinned file "gone"', async () => {
    h = await startHerald({ commandsAllow: [link], commandsAuditFile: '', legacyEnabled: false });
    const v1 = join(dir, 'v1', 'tool');
    assert.deepEqual(await run(h, link), { status: 201, state: 'succeeded', output: 'tool v1\n', path: v1 });

    // The new version is not unpacked yet: the link points at nothing, the pinned v1 is still there.
    const v3 = join(dir, 'v3', 'tool');
    retarget(v3);
    assert.deepEqual(await run(h, 'tool'), { status: 201, state: 'succeeded', output: 'tool v1\n', path: v1 }, 'by name the entry runs its pinned file');
    const byPath = await run(h, link);
    assert.deepEqual([byPath.status, byPath.code], [422, 'HERALD_ERR_COMMAND_NOT_FOUND'], JSON.stringify(byPath));
    assert.doesNotMatch(byPath.message ?? '', /is gone/, 'the pinned file is there: it runs by name');
    assert.match(byPath.message ?? '', new RegExp(`the link ${escaped(link)} is dangling: its target ${escaped(v3)} is missing`));
    assert.match(byPath.message ?? '', new RegExp(`asked by its name "tool", it still runs its pinned file ${escaped(v1)}`));

    // The old version removed too: gone, by path and by name alike, and the link's target said.
    rmSync(join(dir, 'v1'), { recursive: true });
    for (const program of [link, 'tool']) {
      const refused = await run(h, program);
      assert.deepEqual([refused.status, refused.code], [422, 'HERALD_ERR_COMMAND_NOT_FOUND'], `${program}: ${JSON.stringify(refused)}`);
      assert.match(refused.message ?? '', new RegExp(`its file ${escaped(v1)} is gone, and the link ${escaped(link)} is dangling: its target ${escaped(v3)} is missing`), program);
    }

    // Pointed at a version that is there: it runs, by path and by name (looked up again, no restart).
    const v2 = join(dir, 'v2', 'tool');
    retarget(v2);
    for (const program of [link, 'tool']) {
      assert.deepEqual(await run(h, program), { status: 201, state: 'succeeded', output: 'tool v2\n', path: v2 }, program);
    }
    // And that one removed under the link: its file is gone, and the link to it dangles.
    rmSync(join(dir, 'v2'), { recursive: true });
    for (const program of [link, 'tool']) {
      const refused = await run(h, program);
      assert.deepEqual([refused.status, refused.code], [422, 'HERALD_ERR_COMMAND_NOT_FOUND'], `${program}: ${JSON.stringify(refused)}`);
      assert.match(refused.message ?? '', new RegExp(`its file ${escaped(v2)} is gone: the link ${escaped(link)} to it is dangling`), program);
    }
    await h.close();
    h = undefined;
  });

  it('dangling at start-up: "not installed", naming the link and its missing target', async () => {
    const target = join(dir, 'v9', 'tool');
    retarget(target);
    h = await startHerald({ commandsAllow: [link], commandsAuditFile: '', legacyEnabled: false });
    for (const program of [link, 'tool']) {
      const refused = await run(h, program);
      assert.deepEqual([refused.status, refused.code], [422, 'HERALD_ERR_COMMAND_NOT_FOUND'], `${program}: ${JSON.stringify(refused)}`);
      assert.match(refused.message ?? '', new RegExp(`is allowed but not installed \\(the link ${escaped(link)} is dangling: its target ${escaped(target)} is missing\\)`), program);
    }
    // Its target installed: found on the next request.
    mkdirSync(join(dir, 'v9'));
    writeFileSync(target, '#!/bin/sh\necho tool v9\n');
    chmodSync(target, 0o755);
    assert.deepEqual(await run(h, link), { status: 201, state: 'succeeded', output: 'tool v9\n', path: target });
    await h.close();
    h = undefined;
  });
});

describe('a dangling link under a symlinked directory', () => {
  it('names the target as the kernel follows it (`..` from the real directory), not as the path reads', async () => {
    const { CommandPolicy } = await import('../src/server/commands/policy.js');
    const { realpathSync, unlinkSync } = await import('node:fs');
    const d = realpathSync(mkdtempSync(join(tmpdir(), 'herald-dangling-dir-')));
    try {
      mkdirSync(join(d, 'real', 'bin'), { recursive: true });
      mkdirSync(join(d, 'real', 'lib'));
      symlinkSync(join(d, 'real', 'bin'), join(d, 'bin'));
      writeFileSync(join(d, 'real', 'lib', 'tool'), '#!/bin/sh\necho hi\n');
      chmodSync(join(d, 'real', 'lib', 'tool'), 0o755);
      // bin/tool → ../lib/tool: the kernel reads it in real/bin, so it is real/lib/tool, not d/lib/tool.
      symlinkSync('../lib/tool', join(d, 'real', 'bin', 'tool'));
      const entry = join(d, 'bin', 'tool');
      const policy = new CommandPolicy({ allow: [entry], searchPath: '' });
      assert.equal(policy.resolve(entry).path, join(d, 'real', 'lib', 'tool'));
      unlinkSync(join(d, 'real', 'lib', 'tool'));
      for (const asked of ['tool', entry]) {
        assert.throws(() => policy.resolve(asked), (err: Error) => {
          assert.equal(err.message, `program "${asked}" is allowed but its file ${join(d, 'real', 'lib', 'tool')} is gone: the link ${entry} to it is dangling`);
          return true;
        });
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
