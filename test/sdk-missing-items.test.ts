/**
 * BrowserSender's lookups against a real Herald: `messageStatus()` and
 * `commandStatus()` answer null for the route's own "no such message/command"
 * (404 with `details.resource`), and throw for a 404 of a route that does not
 * exist (a wrong path prefix in `url`), which read as "no such message" hid
 * the mistake. An id longer than the router takes is null too. And the types
 * of what `status()` and `commandStatus()` return hold the fields the server
 * sends (checked by tsc here, and against the real answers).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BrowserSender, HeraldSdkError, type CommandInfo, type ServerStatus } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';

const notFound = (e: unknown): boolean => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_NOT_FOUND' && e.status === 404;

describe('messageStatus and commandStatus: null for no such item, an error for no such route', () => {
  let s: TestServer;
  let sender: BrowserSender;
  let messageId: string;
  let commandId: string;

  before(async () => {
    s = await startHerald({ commandsAllow: ['echo'] });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, retryForMs: 0 });
    const sent = await sender.sendMessage({ aid: 3, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: 60 });
    assert.ok(sent);
    messageId = sent.results![0]!.messageId!;
    commandId = (await sender.runInBackground('echo', { aid: 3, args: ['hi'] })) as string;
  });
  after(() => s?.close());

  test('the server says which item is missing: details.resource; a route that does not exist has no details', async () => {
    const message = await s.api('GET', '/api/v1/messages/nope');
    assert.equal(message.status, 404);
    assert.deepEqual(message.body.error.details, { resource: 'message' });
    const command = await s.api('GET', '/api/v1/commands/nope');
    assert.deepEqual([command.status, command.body.error.details], [404, { resource: 'command' }]);
    const cancel = await s.api('POST', '/api/v1/commands/nope/cancel');
    assert.deepEqual([cancel.status, cancel.body.error.details], [404, { resource: 'command' }]);
    const route = await s.api('GET', '/herald/api/v1/messages/nope');
    assert.equal(route.status, 404);
    assert.equal(route.body.error.code, 'HERALD_ERR_NOT_FOUND');
    assert.equal(route.body.error.details, undefined);
  });

  test('with the right url: the item, or null for an unknown id', async () => {
    assert.equal((await sender.messageStatus(messageId))?.id, messageId);
    assert.equal((await sender.commandStatus(commandId))?.id, commandId);
    assert.equal(await sender.messageStatus('no-such-message'), null);
    assert.equal(await sender.commandStatus('no-such-command'), null);
  });

  test('with a wrong path prefix in url, they throw HERALD_ERR_NOT_FOUND, as every other call does', async () => {
    const wrong = new BrowserSender({ url: `${s.url}/herald`, apiToken: s.apiToken, retryForMs: 0 });
    await assert.rejects(wrong.ping(), notFound);
    await assert.rejects(wrong.messageStatus(messageId), notFound);
    await assert.rejects(wrong.commandStatus(commandId), notFound);
    await assert.rejects(wrong.messageStatus('no-such-message'), notFound);
  });

  test('an id longer than the router takes (100 characters) is null, as docs/sdk.md says; the server refuses it with 400', async () => {
    for (const length of [100, 101, 300]) {
      const id = 'x'.repeat(length);
      assert.equal(await sender.messageStatus(id), null, `messageStatus of ${length}`);
      assert.equal(await sender.commandStatus(id), null, `commandStatus of ${length}`);
    }
    assert.equal((await s.api('GET', `/api/v1/messages/${'x'.repeat(100)}`)).status, 404);
    assert.equal((await s.api('GET', `/api/v1/messages/${'x'.repeat(101)}`)).status, 400);
    // The document says what the router takes.
    const doc = (await s.api('GET', '/api/v1/openapi.json')).body;
    const param = doc.paths['/api/v1/messages/{id}'].get.parameters.find((p: { name: string }) => p.name === 'id');
    assert.equal(param.schema.maxLength, 100);
  });
});

describe('the SDK\'s types hold what the server sends', () => {
  let dataDir: string;
  let s: TestServer | undefined;

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-sdk-types-'));
  });
  after(async () => {
    await s?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('status(): healthy, and the SQLite store\'s writeFailures and writesFailing', async () => {
    s = await startHerald({ store: 'sqlite', commandsAllow: ['echo'] }, { dataDir });
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, retryForMs: 0 });
    const status = (await sender.status()) as ServerStatus;
    const healthy: boolean = status.healthy;
    const failures: number | undefined = status.storeCounts.writeFailures;
    const failing: boolean | undefined = status.storeCounts.writesFailing;
    assert.deepEqual([healthy, failures, failing], [true, 0, false]);
    assert.equal(typeof status.storeCounts.keys, 'number');
    assert.deepEqual(status.online, { admin: 0, user: 0 });
  });

  test('commandStatus() after a restart: source "audit" and outputBytes', async () => {
    let sender = new BrowserSender({ url: s!.url, apiToken: s!.apiToken, retryForMs: 0 });
    const id = (await sender.runInBackground('echo', { aid: 2, args: ['hello'] })) as string;
    assert.equal((await sender.commandStatus(id, { wait: 20 }))?.state, 'succeeded');
    await s!.close();
    s = await startHerald({ store: 'sqlite', commandsAllow: ['echo'] }, { dataDir });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, retryForMs: 0 });
    const info = (await sender.commandStatus(id)) as CommandInfo;
    const source: 'audit' | undefined = info.source;
    const bytes: number | undefined = info.outputBytes;
    assert.deepEqual([source, bytes, info.output], ['audit', 'hello\n'.length, '']);
  });
});
