/**
 * Reading the audit trail while another process holds its file locked (an
 * operator's `sqlite3` shell in `BEGIN EXCLUSIVE`): the routes that read it
 * answer 503 HERALD_ERR_UNAVAILABLE with Retry-After, "ask again", never
 * 404 (the command is not unknown: the SDK's commandStatus made that null)
 * nor 500; once the lock goes they answer from the trail again. A real
 * server, a real second connection to the file.
 */
import assert from 'node:assert/strict';
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { startHerald, type TestServer } from './helpers/server.js';

describe('the audit trail while another process holds its file locked', () => {
  let server: TestServer;
  /** A command that has left the history (commandsHistory 1): only the trail knows it. */
  let first: string;

  before(async () => {
    server = await startHerald({ commandsAllow: ['echo'], commandsHistory: 1 });
    for (const word of ['one', 'two']) {
      const started = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'echo', args: [word] });
      assert.equal(started.status, 201);
      const ended = await server.api('GET', `/api/v1/commands/${started.body.id}?wait=20`);
      assert.equal(ended.body.state, 'succeeded');
      first ??= started.body.id;
    }
  });

  after(async () => {
    await server?.close();
  });

  /** The route's answer with its Retry-After header. */
  async function ask(method: 'GET' | 'POST', path: string): Promise<{ status: number; retryAfter: string | null; body: any }> {
    const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${server.apiToken}` } });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
  }

  it('answers 503 with Retry-After for a look-up, a cancel and the audit list, and from the trail once the lock goes', async () => {
    assert.equal((await server.api('GET', `/api/v1/commands/${first}`)).body.source, 'audit', 'the first command has left the history');
    const shell = new Database(join(server.dataDir, 'commands-audit.sqlite'));
    shell.exec('BEGIN EXCLUSIVE');
    try {
      for (const [method, path] of [
        ['GET', `/api/v1/commands/${first}`],
        ['POST', `/api/v1/commands/${first}/cancel`],
        ['GET', '/api/v1/commands/audit?limit=2'],
      ] as const) {
        const answer = await ask(method, path);
        assert.deepEqual(
          [answer.status, answer.body.error?.code, answer.retryAfter],
          [503, 'HERALD_ERR_UNAVAILABLE', '1'],
          `${method} ${path}: ${JSON.stringify(answer.body)}`,
        );
        assert.match(answer.body.error.message, /locked by another process/);
      }
      // A command nobody ran is not known in memory either: the trail is asked, and cannot say.
      assert.equal((await ask('GET', '/api/v1/commands/no-such-command')).status, 503);
    } finally {
      shell.exec('ROLLBACK');
      shell.close();
    }
    const found = await server.api('GET', `/api/v1/commands/${first}`);
    assert.deepEqual([found.status, found.body.source, found.body.state], [200, 'audit', 'succeeded']);
    assert.equal((await server.api('POST', `/api/v1/commands/${first}/cancel`)).status, 409);
    const audit = await server.api('GET', '/api/v1/commands/audit?limit=2');
    assert.deepEqual([audit.status, audit.body.records.length], [200, 2]);
    assert.equal((await server.api('GET', '/api/v1/commands/no-such-command')).status, 404, 'only a real miss is 404');
  });
});

describe('the audit trail failing to read for another reason', () => {
  it('answers 503 without the database\'s own words: what failed is the log\'s, not an API caller\'s or a tab\'s', async () => {
    const server = await startHerald({ commandsAllow: ['echo'], commandsHistory: 1 });
    try {
      let first: string | undefined;
      for (const word of ['one', 'two']) {
        const started = await server.api('POST', '/api/v1/commands', { aid: 1, program: 'echo', args: [word] });
        assert.equal((await server.api('GET', `/api/v1/commands/${started.body.id}?wait=20`)).body.state, 'succeeded');
        first ??= started.body.id;
      }
      // The file's header overwritten: SQLite's next read fails ("file is not a database"), no lock involved.
      const fd = openSync(join(server.dataDir, 'commands-audit.sqlite'), 'r+');
      try {
        writeSync(fd, Buffer.alloc(100, 0x41), 0, 100, 0);
      } finally {
        closeSync(fd);
      }
      const answer = await server.api('GET', `/api/v1/commands/${first}`);
      assert.equal(answer.status, 503, JSON.stringify(answer.body));
      assert.deepEqual(answer.body.error, { code: 'HERALD_ERR_UNAVAILABLE', message: 'the command audit trail cannot be read now: try again' });
    } finally {
      await server.close();
    }
  });
});
