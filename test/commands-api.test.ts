/**
 * Background commands end to end: a real Herald, the HTTP API, real admin
 * tabs over WebSocket, real child processes (loopback ping only).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CommandInfo, CommandService } from '../src/server/commands/command-service.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('background commands over the HTTP API and the browser protocol', () => {
  let server: TestServer;
  before(async () => {
    server = await startHerald({
      commandsAllow: ['ping', 'echo', 'sleep', 'sh'], commandsProgressMs: 50, commandsKillGraceMs: 500,
      commandsConcurrency: 3, commandsPerAdminConcurrency: 3, commandsQueueSize: 1,
    });
  });
  after(async () => {
    await server.close();
  });

  it('runs ping for an admin: 201 at once, live progress and the final notification in the tab', async () => {
    const tab = await server.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const res = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'ping', args: ['-c', '1', '-q', '127.0.0.1'], timeout: 5, id: 'task-42' });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const id = res.body.id as string;
    assert.equal(res.body.state, 'running');
    assert.equal(res.body.door, 'http');
    assert.equal(res.body.path, '/usr/bin/ping');
    const running = await tab.next((f) => f.TYPE === 'COMMAND_PROGRESS' && f.COMMAND_ID === id);
    assert.equal(running.STATE, 'running');
    assert.equal(running.ID, 'task-42');
    const final = await tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === id);
    assert.equal(final.TITLE, 'ping');
    assert.equal(final.ID, 'task-42');
    assert.match(final.TEXT, /1 packets transmitted, 1 received/);
    assert.equal(final.COMMAND.STATE, 'succeeded');
    assert.equal(final.COMMAND.EXIT_CODE, 0);
    assert.equal(typeof final.SEQ, 'number');

    const got = await server.api('GET', `/api/v1/commands/${id}?wait=5`);
    assert.equal(got.status, 200);
    assert.equal(got.body.state, 'succeeded');
    assert.equal(got.body.EXIT_CODE, 0);
    assert.equal(got.body.taskId, 'task-42');
    const list = await server.api('GET', '/api/v1/commands?limit=5');
    assert.ok(list.body.commands.some((c: { id: string }) => c.id === id));
    const status = await server.api('GET', '/api/v1/status');
    assert.equal(status.body.commands.enabled, true);
    tab.close();
  });

  it('streams output by polling with ?since and long-polls with ?wait', async () => {
    const res = await server.api('POST', '/api/v1/commands', { aid: 3, program: 'sh', args: ['-c', 'echo one; sleep 0.2; echo two'], door: 'cli' });
    assert.equal(res.status, 201);
    const id = res.body.id as string;
    const first = await server.api('GET', `/api/v1/commands/${id}?since=0&wait=10`);
    assert.equal(first.body.state, 'succeeded');
    assert.equal(first.body.door, 'cli');
    assert.equal(first.body.output, 'one\ntwo\n');
    assert.equal(first.body.outputLength, 8);
    const rest = await server.api('GET', `/api/v1/commands/${id}?since=4`);
    assert.equal(rest.body.output, 'two\n');
  });

  it('never starts ?since inside an emoji: a client counting characters (Perl, Python) gets the whole one', async () => {
    const res = await server.api('POST', '/api/v1/commands', { aid: 3, program: 'sh', args: ['-c', 'printf "x\\360\\237\\230\\200y"'], door: 'cli' });
    assert.equal(res.status, 201);
    const id = res.body.id as string;
    const all = await server.api('GET', `/api/v1/commands/${id}?since=0&wait=10`);
    assert.equal(all.body.output, 'x😀y');
    assert.equal(all.body.outputLength, 4, 'UTF-16 units, as documented');
    // 2 falls between the emoji's two halves: half of one is a lone surrogate, which UTF-8 (and Perl's JSON) cannot carry.
    const raw = await fetch(`${server.url}/api/v1/commands/${id}?since=2`, { headers: { authorization: `Bearer ${server.apiToken}` } });
    const text = await raw.text();
    assert.doesNotMatch(text, /\\ud[c-f]/i, text);
    assert.equal(JSON.parse(text).output, '😀y');
  });

  it('answers refusals with stable codes and statuses', async () => {
    const forbidden = await server.api('POST', '/api/v1/commands', { aid: 1, program: '/bin/bash', args: ['-c', 'id'] });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.body.error.code, 'HERALD_ERR_COMMAND_FORBIDDEN');
    const trick = await server.api('POST', '/api/v1/commands', { aid: 1, program: '/usr/bin/../../bin/bash', args: [] });
    assert.equal(trick.status, 403);
    const bad = await server.api('POST', '/api/v1/commands', { aid: 0, program: 'ping' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'HERALD_ERR_VALIDATION');
    const extra = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'ping', args: [{ sh: 1 }], timeout: -1 });
    assert.equal(extra.status, 400);
    const unauth = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'ping' }, { authorization: 'Bearer wrong' });
    assert.equal(unauth.status, 401);
    const badId = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'ping', id: { nested: true } });
    assert.equal(badId.status, 400);
    // A misspelt field is refused, naming it: a "tll" must not run the program with the default timeout.
    const typo = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'echo', tll: 5 });
    assert.equal(typo.status, 400);
    assert.deepEqual(typo.body.error, { code: 'HERALD_ERR_VALIDATION', message: 'body has an unknown field "tll"' });
    // A final notification nested past the bound is refused at the start, not lost at the end.
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const tooDeep = await server.api('POST', '/api/v1/commands', `{"aid":1,"program":"ping","args":["-c","1","127.0.0.1"],"success":{"TYPE":"X","A":${deep}}}`);
    assert.equal(tooDeep.status, 400);
    assert.deepEqual(tooDeep.body.error, { code: 'HERALD_ERR_BAD_REQUEST', message: 'the body is nested deeper than 64 levels (arrays and objects)' });
    const missing = await server.api('GET', '/api/v1/commands/no-such-command');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'HERALD_ERR_NOT_FOUND');
  });

  it('delivers a SUCCESS notification with the panel\'s own fields whole', async () => {
    const tab = await server.tab('admin', 4);
    await tab.nextOfType('WELCOME');
    const success = { TYPE: 'BACKUP_DONE', TITLE: 'done', PANEL: { url: '/backups/1', tags: ['a', 'b'] }, lower_case: 7 };
    const res = await server.api('POST', '/api/v1/commands', { aid: 4, program: 'echo', args: ['ok'], success, error: { TYPE: 'BACKUP_FAILED', OWN: 1 } });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    const final = await tab.next((f) => f.TYPE === 'BACKUP_DONE' && f.COMMAND_ID === res.body.id);
    assert.equal(final.TITLE, 'done');
    assert.deepEqual(final.PANEL, success.PANEL);
    assert.equal(final.lower_case, 7);
    tab.close();
  });

  it('cancels through the API; a second cancel conflicts', async () => {
    const res = await server.api('POST', '/api/v1/commands', { aid: 4, program: 'sleep', args: ['30'] });
    const id = res.body.id as string;
    const cancelled = await server.api('POST', `/api/v1/commands/${id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.state, 'cancelled');
    const again = await server.api('POST', `/api/v1/commands/${id}/cancel`);
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'HERALD_ERR_CONFLICT');
  });

  it('refuses with 429 when the queue is full', async () => {
    const ids: string[] = [];
    // 3 slots and a queue of 1: the fifth request is refused.
    for (let i = 0; i < 4; i++) {
      const r = await server.api('POST', '/api/v1/commands', { aid: 5, program: 'sleep', args: ['30'] });
      assert.equal(r.status, 201);
      ids.push(r.body.id);
    }
    const full = await server.api('POST', '/api/v1/commands', { aid: 5, program: 'sleep', args: ['30'] });
    assert.equal(full.status, 429);
    assert.equal(full.body.error.code, 'HERALD_ERR_QUEUE_FULL');
    for (const id of ids.reverse()) await server.api('POST', `/api/v1/commands/${id}/cancel`);
  });

  it('lets the owning admin cancel from a browser tab, and refuses another admin', async () => {
    const owner = await server.tab('admin', 7);
    const stranger = await server.tab('admin', 8);
    const user = await server.tab('user', 7);
    await Promise.all([owner.nextOfType('WELCOME'), stranger.nextOfType('WELCOME'), user.nextOfType('WELCOME')]);
    const res = await server.api('POST', '/api/v1/commands', { aid: 7, program: 'sleep', args: ['30'] });
    const id = res.body.id as string;

    stranger.send({ TYPE: 'COMMAND_CANCEL', COMMAND_ID: id });
    const refused = await stranger.nextOfType('ERROR');
    assert.equal(refused.ERROR, 'FORBIDDEN');
    user.send({ TYPE: 'COMMAND_CANCEL', COMMAND_ID: id });
    assert.equal((await user.nextOfType('ERROR')).ERROR, 'FORBIDDEN');
    assert.equal((await server.api('GET', `/api/v1/commands/${id}`)).body.state, 'running');

    owner.send({ TYPE: 'COMMAND_CANCEL', COMMAND_ID: id });
    const final = await owner.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === id);
    assert.equal(final.COMMAND.STATE, 'cancelled');
    assert.equal((await server.api('GET', `/api/v1/commands/${id}`)).body.state, 'cancelled');
    assert.equal(stranger.frames.some((f) => f.COMMAND_ID === id), false, 'another admin sees nothing of it');
    for (const t of [owner, stranger, user]) t.close();
  });

  it('keeps the outcome for an admin who was away and replays it on connect', async () => {
    const res = await server.api('POST', '/api/v1/commands', { aid: 11, program: 'echo', args: ['done while you were away'], id: 5 });
    await server.api('GET', `/api/v1/commands/${res.body.id}?wait=5`);
    const tab = await server.tab('admin', 11);
    const replayed = await tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === res.body.id);
    assert.equal(replayed.TEXT, 'done while you were away\n');
    assert.equal(replayed.ID, 5);
    assert.equal(tab.frames.some((f) => f.TYPE === 'COMMAND_PROGRESS'), false, 'progress is live only');
    tab.close();
  });
});

describe('background commands when the server shuts down', () => {
  it('stops running commands at once, even while a long poll waits for one to end', async () => {
    const server = await startHerald({ commandsAllow: ['sleep'], shutdownGraceMs: 4000 });
    try {
      const res = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'sleep', args: ['30'] });
      const id = res.body.id as string;
      // Know when the long poll (what `herald run --wait` does) is waiting inside the server.
      const commands = server.herald.commands as CommandService & { wait: (id: string) => Promise<CommandInfo | undefined> };
      const wait = commands.wait.bind(commands);
      let polling!: () => void;
      const inPoll = new Promise<void>((resolve) => (polling = resolve));
      commands.wait = (waited) => {
        polling();
        return wait(waited);
      };
      let answeredAt = 0;
      const poll = server.api('GET', `/api/v1/commands/${id}?wait=60`).then((r) => {
        answeredAt = Date.now();
        return r;
      });
      await inPoll;
      const t0 = Date.now();
      await server.herald.close();
      const answered = await poll;
      assert.equal(answered.body.state, 'cancelled', 'the poll hears how it ended');
      assert.equal(answered.body.error, 'server shutting down');
      const endedMs = (answered.body.endedAt as number) - t0;
      assert.ok(endedMs < 2000, `the command ended ${endedMs} ms into the shutdown: it waited for the HTTP grace period`);
      assert.ok(answeredAt - t0 < 2000, `the poll was answered ${answeredAt - t0} ms into the shutdown`);
    } finally {
      // The poll's keep-alive connection outlives the HTTP grace period; do not wait for it here.
      server.herald.app.server.closeAllConnections();
      await server.close();
    }
  });
});
