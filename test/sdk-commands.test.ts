/**
 * The SDK's background-command calls (the seed's run_in_background) and raw
 * legacy requests (json_request) against a real Herald running real
 * programs: ping 127.0.0.1 only.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserSender, HeraldSdkError, type CommandInfo } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

async function finished(sender: BrowserSender, id: string): Promise<CommandInfo> {
  let info: CommandInfo | null = null;
  await until(async () => {
    info = await sender.commandStatus(id);
    return info !== null && info.state !== 'queued' && info.state !== 'running';
  }, 15000, `command ${id} to end`);
  return info!;
}

describe('BrowserSender: background commands and legacy requests', () => {
  let s: TestServer;
  let sender: BrowserSender;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['ping', 'sleep'] });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, aid: 1 });
  });
  after(() => s.close());

  test('runInBackground returns an id at once; the admin is told when it ends; commandStatus has the output', async () => {
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const id = await sender.runInBackground('ping', { args: ['-c', '1', '-q', '127.0.0.1'], timeout: 5, id: 'task-7' });
    assert.equal(typeof id, 'string');
    const done = await tab.next((f) => f?.COMMAND_ID === id && f?.TYPE !== 'COMMAND_PROGRESS', 15000);
    assert.equal(done.ID, 'task-7');
    const info = await finished(sender, id as string);
    assert.equal(info.state, 'succeeded');
    assert.equal(info.EXIT_CODE, 0);
    assert.equal(info.aid, 1);
    assert.match(info.output, /1 packets transmitted, 1 received/);
    assert.ok((await sender.listCommands()).some((c) => c.id === id));
    tab.close();
  });

  test('success and error notifications: SUCCESS on exit 0, ERROR otherwise', async () => {
    const tab = await s.tab('admin', 2);
    await tab.nextOfType('WELCOME');
    const ok = await sender.runInBackground('ping', {
      aid: 2, args: ['-c', '1', '-q', '127.0.0.1'],
      success: { TYPE: 'MESSAGE', TITLE: 'ping ok', TEXT: 'reachable' }, error: { TYPE: 'MESSAGE', TITLE: 'ping failed', TEXT: 'down' },
    });
    assert.equal((await tab.next((f) => f?.COMMAND_ID === ok && f?.TYPE === 'MESSAGE', 15000)).TITLE, 'ping ok');
    const bad = await sender.runInBackground('ping', {
      aid: 2, args: ['-c', '1', '--no-such-option', '127.0.0.1'],
      success: { TYPE: 'MESSAGE', TITLE: 'ping ok', TEXT: 'reachable' }, error: { TYPE: 'MESSAGE', TITLE: 'ping failed', TEXT: 'down' },
    });
    assert.equal((await tab.next((f) => f?.COMMAND_ID === bad && f?.TYPE === 'MESSAGE', 15000)).TITLE, 'ping failed');
    assert.equal((await finished(sender, bad as string)).state, 'failed');
    tab.close();
  });

  test('cancelCommand stops a running command', async () => {
    const id = (await sender.runInBackground('sleep', { args: ['30'] })) as string;
    await until(async () => (await sender.commandStatus(id))?.state === 'running', 5000, 'running');
    const after = await sender.cancelCommand(id);
    assert.ok(after);
    assert.equal((await finished(sender, id)).state, 'cancelled');
  });

  test('refusals come back as typed errors: a forbidden program, an unknown command, no admin', async () => {
    await assert.rejects(sender.runInBackground('cat', { args: ['/dev/null'] }), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_COMMAND_FORBIDDEN' && e.status === 403);
    assert.equal(await sender.commandStatus('no-such-command'), null);
    const noAid = new BrowserSender({ url: s.url, apiToken: s.apiToken });
    await assert.rejects(noAid.runInBackground('ping', { args: ['-c', '1', '127.0.0.1'] }), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_ARGUMENT');
  });

  test('args that are not an array of strings are refused before anything runs: a command line was spread into its characters', async () => {
    const before = (await sender.listCommands()).length;
    for (const args of ['-c 1 127.0.0.1', ['-c', 1], { 0: '-c' }] as unknown[]) {
      await assert.rejects(
        sender.runInBackground('ping', { args: args as string[] }),
        (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_ARGUMENT' && /args must be an array of strings/.test(e.message),
        JSON.stringify(args),
      );
    }
    assert.equal((await sender.listCommands()).length, before, 'nothing was run');
  });

  test('jsonRequest: the seed\'s COMMAND, wrapped in MESSAGE as the Perl client sent it, is accepted with 1', async () => {
    const tab = await s.tab('admin', 3);
    await tab.nextOfType('WELCOME');
    const sended = await sender.jsonRequest({
      MESSAGE: {
        TYPE: 'COMMAND',
        AID: 3,
        PROGRAM: '/usr/bin/ping',
        PROGRAM_ARGS: ['-c 1', '-q', '127.0.0.1'],
        ARGS: { timeout: 5 },
      },
    });
    assert.equal(sended, 1);
    const done = await tab.next((f) => typeof f?.COMMAND_ID === 'string' && f?.TYPE !== 'COMMAND_PROGRESS', 15000);
    assert.match(JSON.stringify(done), /1 packets transmitted/);
    tab.close();
  });
});
