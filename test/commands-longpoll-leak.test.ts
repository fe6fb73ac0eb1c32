/**
 * A long poll (`GET /api/v1/commands/:id?wait=S`) on a command that runs on
 * leaves nothing behind on it once the poll has answered: a timed-out poll,
 * or one whose client went away. Each used to keep ~480 B on the run until
 * it ended (a reaction on the run's end that clearing the timer did not
 * take back), and a command may run for days. Real Herald, a real `sleep`,
 * the HTTP API over real sockets.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { CommandRunner } from '../src/server/commands/runner.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** Resolves once `check()` holds; fails after `ms`, saying what it waited for and what it last saw. */
async function until(check: () => boolean, what: string, seen: () => unknown, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms (now ${JSON.stringify(seen())})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('long polls on a running command leave nothing behind', () => {
  let server: TestServer;
  let runner: CommandRunner;
  before(async () => {
    server = await startHerald({ commandsAllow: ['sleep'], commandsKillGraceMs: 200, commandsConcurrency: 4, commandsPerAdminConcurrency: 4 });
    runner = server.herald.commands as CommandRunner;
  });
  after(() => server.close());

  async function sleeper(): Promise<string> {
    const res = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['60'], timeout: 120 });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    return res.body.id as string;
  }

  it('many timed-out polls: none is left waiting, and a poll still hears the end', async () => {
    const id = await sleeper();
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => server.api('GET', `/api/v1/commands/${id}?wait=0.001`)));
      for (const a of answers) assert.equal(a.body.state, 'running', JSON.stringify(a.body));
    }
    assert.equal(runner.waiters(id), 0, '200 polls that timed out left waiters on the run');

    const poll = server.api('GET', `/api/v1/commands/${id}?wait=30`);
    await until(() => runner.waiters(id) === 1, 'the long poll waits', () => runner.waiters(id));
    const cancelled = await server.api('POST', `/api/v1/commands/${id}/cancel`);
    assert.equal(cancelled.body.state, 'cancelled', JSON.stringify(cancelled.body));
    const answered = await poll;
    assert.equal(answered.status, 200);
    assert.equal(answered.body.state, 'cancelled', 'the poll is answered with how the command ended');
    assert.equal(runner.waiters(id), 0);
  });

  it('a client that goes away mid-poll leaves no waiter', async () => {
    const id = await sleeper();
    const url = new URL(`${server.url}/api/v1/commands/${id}?wait=60`);
    const req = http.get(url, { headers: { authorization: `Bearer ${server.apiToken}` } });
    const ended = new Promise<void>((resolve) => req.on('error', () => resolve()).on('close', () => resolve()));
    await until(() => runner.waiters(id) === 1, 'the long poll waits', () => runner.waiters(id));
    req.destroy();
    await ended;
    await until(() => runner.waiters(id) === 0, 'the poll of a client gone stops waiting', () => runner.waiters(id));
    assert.equal(runner.get(id)?.state, 'running', 'the command itself runs on');
    await server.api('POST', `/api/v1/commands/${id}/cancel`);
  });
});
