/**
 * An argument rule holds for the file that runs, however the request names it
 * and however the allowlist lists it; and an allowed symlink that an upgrade
 * points at a new version (the old one removed) runs the new one without a
 * restart. Through a real Herald's HTTP API, running real programs.
 */
import assert from 'node:assert/strict';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommandPolicy } from '../src/server/commands/policy.js';
import { isHeraldError } from '../src/server/errors.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** Starts the command and waits for its end: the final info, or the refusal's status and code. */
async function run(h: TestServer, program: string, args: string[]): Promise<{ status: number; code?: string; message?: string; state?: string; output?: string; path?: string }> {
  const started = await h.api('POST', '/api/v1/commands', { aid: 1, program, args, timeout: 20 });
  if (started.status !== 201) return { status: started.status, code: started.body.error?.code, message: started.body.error?.message };
  const done = await h.api('GET', `/api/v1/commands/${started.body.id}?wait=30`);
  return { status: started.status, state: done.body.state, output: done.body.output, path: done.body.path };
}

describe('an argument rule holds for its file, however it is named', () => {
  let dir: string;
  let h: TestServer | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-rules-'));
    writeFileSync(join(dir, 'public.txt'), 'public\n');
    writeFileSync(join(dir, 'private.txt'), 'PRIVATE\n');
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses `cat`, `/bin/cat` and `/usr/bin/cat` alike when only `/usr/bin/cat` has a rule', async () => {
    h = await startHerald({
      commandsAllow: ['cat', '/usr/bin/cat'], commandsArgRules: ['/usr/bin/cat=public\\.txt'], commandsPath: '/usr/bin:/bin',
      commandsCwd: dir, commandsAuditFile: '', legacyEnabled: false,
    });
    for (const program of ['/usr/bin/cat', 'cat', '/bin/cat']) {
      const refused = await run(h, program, ['private.txt']);
      assert.deepEqual([refused.status, refused.code], [403, 'HERALD_ERR_COMMAND_FORBIDDEN'], `${program}: ${JSON.stringify(refused)}`);
      assert.match(refused.message ?? '', /argument 1 of "(cat|\/usr\/bin\/cat)" \("private\.txt"\) is not allowed by (its rule|the rule of "\/usr\/bin\/cat" \(the same file\)) \/public\\\.txt\//, program);
      const allowed = await run(h, program, ['public.txt']);
      assert.deepEqual([allowed.state, allowed.output], ['succeeded', 'public\n'], program);
    }
    await h.close();
    h = undefined;
  });

  it('holds a rule for every name of a hard-linked file, and every rule of the file at once', () => {
    const bin = join(dir, 'hard');
    mkdirSync(bin);
    writeFileSync(join(bin, 'tool'), '#!/bin/sh\n');
    chmodSync(join(bin, 'tool'), 0o755);
    // Debian's /usr/bin/perl and /usr/bin/perl5.36.0 are one file under two names.
    linkSync(join(bin, 'tool'), join(bin, 'tool-1.0'));
    const policy = new CommandPolicy({ allow: [join(bin, 'tool'), join(bin, 'tool-1.0')], argRules: ['tool=-[ab]', 'tool-1.0=-[bc]'], searchPath: '' });
    for (const program of ['tool', 'tool-1.0', join(bin, 'tool'), join(bin, 'tool-1.0')]) {
      const resolved = policy.resolve(program);
      policy.checkArgs(resolved, ['-b']);
      for (const arg of ['-a', '-c', '-d']) {
        assert.throws(() => policy.checkArgs(resolved, [arg]), (e) => isHeraldError(e) && e.code === 'HERALD_ERR_COMMAND_FORBIDDEN', `${program} ${arg}`);
      }
    }
    // A file no rule names is untouched by the others' rules.
    const free = new CommandPolicy({ allow: ['/usr/bin/cat', '/usr/bin/echo'], argRules: ['cat=x'], searchPath: '' });
    free.checkArgs(free.resolve('echo'), ['anything']);
  });
});

describe('an allowed symlink retargeted by an upgrade', () => {
  let dir: string;
  let h: TestServer | undefined;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-retarget-'));
    for (const v of ['v1', 'v2']) {
      mkdirSync(join(dir, v));
      writeFileSync(join(dir, v, 'tool'), `#!/bin/sh\necho tool ${v}\n`);
      chmodSync(join(dir, v, 'tool'), 0o755);
    }
    symlinkSync(join(dir, 'v1', 'tool'), join(dir, 'tool'));
  });
  after(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the new version, by path and by name, once the old one is removed; "gone" when nothing runnable is left', async () => {
    h = await startHerald({ commandsAllow: [join(dir, 'tool')], commandsAuditFile: '', legacyEnabled: false });
    assert.deepEqual(await run(h, join(dir, 'tool'), []), { status: 201, state: 'succeeded', output: 'tool v1\n', path: join(dir, 'v1', 'tool') });
    // update-alternatives: the new link swapped in at once, then the old version removed.
    symlinkSync(join(dir, 'v2', 'tool'), join(dir, 'tool.new'));
    renameSync(join(dir, 'tool.new'), join(dir, 'tool'));
    rmSync(join(dir, 'v1'), { recursive: true });
    for (const program of [join(dir, 'tool'), 'tool']) {
      assert.deepEqual(await run(h, program, []), { status: 201, state: 'succeeded', output: 'tool v2\n', path: join(dir, 'v2', 'tool') }, program);
    }
    // Removed again, the link now pointing at a file that is not a program: allowed but gone, by path and by name alike.
    writeFileSync(join(dir, 'notes'), 'not a program');
    symlinkSync(join(dir, 'notes'), join(dir, 'tool.new'));
    renameSync(join(dir, 'tool.new'), join(dir, 'tool'));
    rmSync(join(dir, 'v2'), { recursive: true });
    for (const program of [join(dir, 'tool'), 'tool']) {
      const refused = await run(h, program, []);
      assert.deepEqual([refused.status, refused.code], [422, 'HERALD_ERR_COMMAND_NOT_FOUND'], `${program}: ${JSON.stringify(refused)}`);
      assert.match(refused.message ?? '', /is allowed but its file .*v2\/tool is gone/, program);
    }
  });
});
