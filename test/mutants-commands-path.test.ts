/**
 * Which file an allowed program name runs (src/server/commands/policy.ts),
 * at two edges the rest of the suite did not hold (mutation review rA):
 *
 * - A relative directory in the search path (`rel:/usr/bin`, or a PATH with
 *   `.` in it) is never searched: it would mean the server's working
 *   directory, so whoever can write there chooses what `true` runs. Checked
 *   in a child whose working directory holds `rel/true`, a script that
 *   says it was run.
 * - An allowed, installed name under a path that does not exist
 *   (`/nonexistent/ping`) is not allowed: only a path that resolves to the
 *   allowed file is. It is refused HERALD_ERR_COMMAND_FORBIDDEN, neither
 *   run as the allowed ping nor called "allowed but gone".
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommandPolicy } from '../src/server/commands/policy.js';
import { isHeraldError, type ErrorCode } from '../src/server/errors.js';
import { runModule } from './helpers/node-child.js';
import { startHerald, type TestServer } from './helpers/server.js';

const refusedWith = (code: ErrorCode, text?: RegExp) => (e: unknown) =>
  isHeraldError(e) && e.code === code && (text === undefined || text.test(e.message));

const module = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);

describe('a relative directory in the search path is never searched', () => {
  let cwd: string;
  before(() => {
    // The child's working directory: rel/true and ./true are planted there, and rel/herald-only-here.
    cwd = mkdtempSync(join(tmpdir(), 'herald-relpath-'));
    mkdirSync(join(cwd, 'rel'));
    for (const file of ['rel/true', 'true', 'rel/herald-only-here']) {
      writeFileSync(join(cwd, file), '#!/bin/sh\necho PLANTED\n');
      chmodSync(join(cwd, file), 0o755);
    }
  });
  after(() => rmSync(cwd, { recursive: true, force: true }));

  it('the policy resolves a name past a relative directory, to the file in the absolute one', async () => {
    const out = await runModule(`
      process.chdir(${JSON.stringify(cwd)});
      const { CommandPolicy } = await import(${module('../src/server/commands/policy.ts')});
      const answers = {};
      for (const searchPath of ['rel:/usr/bin', '.:/usr/bin', 'rel:.:/usr/bin', '/usr/bin:rel']) {
        const policy = new CommandPolicy({ allow: ['true', 'herald-only-here'], searchPath });
        let only;
        try { only = policy.resolve('herald-only-here').path; } catch (e) { only = e.code; }
        answers[searchPath] = { true: policy.resolve('true').path, entries: policy.entries(), only };
      }
      console.log(JSON.stringify(answers));
    `);
    const trueFile = realpathSync('/usr/bin/true');
    const answers = JSON.parse(out) as Record<string, { true: string; entries: unknown; only: string }>;
    for (const [searchPath, answer] of Object.entries(answers)) {
      assert.equal(answer.true, trueFile, `${searchPath}: true is ${trueFile}, not the planted one`);
      assert.deepEqual(answer.entries, [{ entry: 'true', path: trueFile }, { entry: 'herald-only-here', path: null }], searchPath);
      assert.equal(answer.only, 'HERALD_ERR_COMMAND_NOT_FOUND', `${searchPath}: a name found only in a relative directory is not installed`);
    }
  });

  it('a Herald started there with commandsPath rel:/usr/bin runs /usr/bin/true, not rel/true', async () => {
    const out = await runModule(`
      process.chdir(${JSON.stringify(cwd)});
      const { startHerald } = await import(${module('./helpers/server.ts')});
      const s = await startHerald({ commandsAllow: ['true', 'herald-only-here'], commandsPath: 'rel:/usr/bin' });
      try {
        const run = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'true' });
        const done = await s.api('GET', '/api/v1/commands/' + run.body.id + '?since=0&wait=10');
        const only = await s.api('POST', '/api/v1/commands', { aid: 1, program: 'herald-only-here' });
        console.log(JSON.stringify({ run: run.status, path: run.body.path, state: done.body.state, output: done.body.output, only: only.body }));
      } finally {
        await s.close();
      }
    `);
    const r = JSON.parse(out) as { run: number; path: string; state: string; output: string; only: { error: { code: string } } };
    assert.equal(r.run, 201, out);
    assert.equal(r.path, realpathSync('/usr/bin/true'), out);
    assert.equal(r.state, 'succeeded', out);
    assert.equal(r.output, '', `/usr/bin/true says nothing; rel/true says PLANTED: ${out}`);
    assert.equal(r.only.error.code, 'HERALD_ERR_COMMAND_NOT_FOUND', out);
  });
});

describe('an allowed name under a path that does not exist is not the allowed program', () => {
  it('the policy refuses /nonexistent/ping with HERALD_ERR_COMMAND_FORBIDDEN, as any path that does not resolve to it', () => {
    const policy = new CommandPolicy({ allow: ['ping', '/usr/bin/echo'], searchPath: '/usr/bin:/bin' });
    assert.equal(policy.resolve('ping').path, '/usr/bin/ping');
    for (const program of ['/nonexistent/ping', '/usr/bin/nonexistent/ping', '/nonexistent/echo', '/nonexistent/usr/bin/echo']) {
      assert.throws(() => policy.resolve(program), refusedWith('HERALD_ERR_COMMAND_FORBIDDEN', /is not allowed \(allowed: ping, \/usr\/bin\/echo\)/), program);
    }
  });

  describe('over the API', () => {
    let s: TestServer;
    before(async () => {
      s = await startHerald({ commandsAllow: ['ping'] });
    });
    after(() => s.close());

    it('POST /commands with program /nonexistent/ping is 403 HERALD_ERR_COMMAND_FORBIDDEN and runs nothing', async () => {
      const r = await s.api('POST', '/api/v1/commands', { aid: 1, program: '/nonexistent/ping', args: ['-c', '1', '-q', '127.0.0.1'] });
      assert.equal(r.status, 403, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HERALD_ERR_COMMAND_FORBIDDEN');
      assert.match(r.body.error.message, /"\/nonexistent\/ping" is not allowed/);
      const list = await s.api('GET', '/api/v1/commands?limit=5');
      assert.deepEqual(list.body.commands, [], `nothing ran: ${JSON.stringify(list.body)}`);
    });
  });
});
