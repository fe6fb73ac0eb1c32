/**
 * A command's status after Herald restarts: the new process never ran it and
 * keeps commands in memory only, but the audit trail on disk (same DATA_DIR)
 * has its final record, and `GET /api/v1/commands/:id` answers from it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { within } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

const commands = { commandsEnabled: true, commandsAllow: ['ping', 'sleep'], legacyEnabled: false };

describe('command status after a restart, from the audit trail', () => {
  let dataDir: string;
  let pinged: string;
  let slept: string;
  let fresh: TestServer;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-cmd-restart-'));
    const old = await startHerald(commands, { dataDir });
    try {
      const ping = await old.api('POST', '/api/v1/commands', { aid: 3, program: 'ping', args: ['-c', '1', '127.0.0.1'], id: 'task-9', timeout: 20 });
      assert.equal(ping.status, 201, JSON.stringify(ping.body));
      pinged = ping.body.id;
      const done = await old.api('GET', `/api/v1/commands/${pinged}?wait=30`);
      assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
      const sleep = await old.api('POST', '/api/v1/commands', { aid: 4, program: 'sleep', args: ['30'] });
      assert.equal(sleep.body.state, 'running', JSON.stringify(sleep.body));
      slept = sleep.body.id;
    } finally {
      // The shutdown stops the sleep ("server shutting down") and records its end.
      await old.close();
    }
    fresh = await startHerald(commands, { dataDir });
  });

  after(async () => {
    await fresh?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers a command that finished before the restart with its final state, saying the output is not kept', async () => {
    const got = await fresh.api('GET', `/api/v1/commands/${pinged}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    const b = got.body;
    assert.equal(b.id, pinged);
    assert.equal(b.COMMAND_ID, pinged);
    assert.deepEqual([b.state, b.EXIT_CODE, b.SIGNAL, b.TIMED_OUT, b.TRUNCATED], ['succeeded', 0, null, false, false]);
    assert.deepEqual([b.aid, b.program, b.args, b.taskId, b.door, b.timeoutSec], [3, 'ping', ['-c', '1', '127.0.0.1'], 'task-9', 'http', 20]);
    assert.match(b.path, /\/ping$/);
    assert.equal(b.source, 'audit');
    assert.equal(b.output, '');
    assert.ok(b.outputBytes > 0, `outputBytes ${b.outputBytes}`);
    assert.ok(b.endedAt >= b.startedAt && b.startedAt >= b.queuedAt);
    // DURATION_MS is measured on the monotonic clock, the timestamps are the wall clock's (whole ms each): a ms apart at most.
    assert.ok(Math.abs(b.DURATION_MS - (b.endedAt - b.startedAt)) <= 1, `DURATION_MS ${b.DURATION_MS}, endedAt - startedAt ${b.endedAt - b.startedAt}`);
  });

  it('answers a command the old server\'s shutdown stopped: cancelled, "server shutting down"', async () => {
    const got = await fresh.api('GET', `/api/v1/commands/${slept}`);
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.state, got.body.error, got.body.aid, got.body.source], ['cancelled', 'server shutting down', 4, 'audit']);
  });

  it('answers a long poll on it at once (it has ended), and `since` as for any command', async () => {
    const t0 = Date.now();
    const got = await within(fresh.api('GET', `/api/v1/commands/${slept}?since=100&wait=60`), 5_000, 'the long poll to answer');
    assert.ok(Date.now() - t0 < 5_000);
    assert.deepEqual([got.status, got.body.state, got.body.output, got.body.outputLength], [200, 'cancelled', '', 0]);
  });

  it('refuses to cancel it as ended (409), and still 404s an id nobody knows', async () => {
    const cancel = await fresh.api('POST', `/api/v1/commands/${pinged}/cancel`);
    assert.equal(cancel.status, 409, JSON.stringify(cancel.body));
    assert.match(cancel.body.error.message, /has already ended \(succeeded\)/);
    const unknown = await fresh.api('GET', '/api/v1/commands/00000000-0000-4000-8000-000000000000');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'HERALD_ERR_NOT_FOUND');
    const unknownCancel = await fresh.api('POST', '/api/v1/commands/00000000-0000-4000-8000-000000000000/cancel');
    assert.equal(unknownCancel.status, 404);
  });

  it('lists only what this process ran: the audit answer is for a lookup by id', async () => {
    const list = await fresh.api('GET', '/api/v1/commands');
    assert.deepEqual(list.body.commands, []);
  });
});

describe('command status after a restart without an audit file', () => {
  it('404s, as the server has no record of it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-cmd-restart-'));
    const noTrail = { ...commands, commandsAuditFile: '' };
    let fresh: TestServer | undefined;
    try {
      const old = await startHerald(noTrail, { dataDir });
      let id: string;
      try {
        const ping = await old.api('POST', '/api/v1/commands', { aid: 3, program: 'ping', args: ['-c', '1', '127.0.0.1'] });
        id = ping.body.id;
        assert.equal((await old.api('GET', `/api/v1/commands/${id}?wait=30`)).body.state, 'succeeded');
      } finally {
        await old.close();
      }
      fresh = await startHerald(noTrail, { dataDir });
      assert.equal((await fresh.api('GET', `/api/v1/commands/${id}`)).status, 404);
    } finally {
      await fresh?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
