/**
 * One admin's share of the command queue: a real Herald, the HTTP API and
 * real child processes (`sleep`). An admin's queued runs start only in that
 * admin's own slots, so an admin who floods the queue with long runs must not
 * keep every other admin out of it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

describe('an admin\'s share of the command queue', () => {
  let server: TestServer;
  const ids: string[] = [];
  const sleep = async (aid: number): Promise<{ status: number; body: any }> => {
    const r = await server.api('POST', '/api/v1/commands', { aid, program: 'sleep', args: ['30'] });
    if (typeof r.body?.id === 'string') ids.push(r.body.id);
    return r;
  };

  before(async () => {
    // The defaults: 4 slots, 2 for one admin, a queue of 32; an admin's share is 32 × 2 / 4 = 16.
    server = await startHerald({ commandsAllow: ['sleep'], commandsKillGraceMs: 500 });
    assert.deepEqual(
      [server.options.commandsConcurrency, server.options.commandsPerAdminConcurrency, server.options.commandsQueueSize],
      [4, 2, 32],
    );
  });
  after(async () => {
    for (const id of ids) await server.api('POST', `/api/v1/commands/${id}/cancel`);
    await server.close();
  });

  it('refuses an admin past their share with 429 while other admins still run and queue', async () => {
    const answers: string[] = [];
    let refusal: { status: number; body: any } | undefined;
    for (let i = 0; i < 40; i++) {
      const r = await sleep(1);
      answers.push(r.status === 201 ? r.body.state : `${r.status} ${r.body.error?.code}`);
      if (r.status !== 201) refusal ??= r;
    }
    assert.deepEqual(
      answers,
      [...Array(2).fill('running'), ...Array(16).fill('queued'), ...Array(22).fill('429 HERALD_ERR_QUEUE_FULL')],
    );
    assert.match(refusal?.body.error.message, /admin 1 already has 16 commands waiting, their share of the queue \(16: commandsQueueSize 32/);

    // The other two slots are free: admins 2 and 3 start at once.
    assert.equal((await sleep(2)).body.state, 'running');
    assert.equal((await sleep(3)).body.state, 'running');
    // Every slot is taken now, and admins 4 and 5 still get into the queue (before the share: 429).
    for (const aid of [4, 5]) {
      const r = await sleep(aid);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(r.body.state, 'queued');
    }
    const status = await server.api('GET', '/api/v1/status');
    assert.equal(status.body.commands.running, 4);
    assert.equal(status.body.commands.queued, 18);
  });

  it('gives the admin a place again once one of their queued runs has gone', async () => {
    const queued = (await server.api('GET', '/api/v1/commands?limit=100')).body.commands
      .find((c: { aid: number; state: string }) => c.aid === 1 && c.state === 'queued');
    const cancelled = await server.api('POST', `/api/v1/commands/${queued.id}/cancel`);
    assert.equal(cancelled.body.state, 'cancelled');
    assert.equal((await sleep(1)).body.state, 'queued');
    assert.equal((await sleep(1)).status, 429);
  });

  it('still bounds the whole queue: past commandsQueueSize everyone is refused, with the total', async () => {
    // 18 of 32 places are taken (16 of admin 1, one each of admins 4 and 5): admin 6 takes 14 of its 16.
    for (let i = 0; i < 14; i++) assert.equal((await sleep(6)).body.state, 'queued');
    const full = await sleep(7);
    assert.equal(full.status, 429);
    assert.equal(full.body.error.code, 'HERALD_ERR_QUEUE_FULL');
    assert.match(full.body.error.message, /too many commands: 4 running and 32 waiting \(commandsQueueSize 32\)/);
  });
});
