import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleLegacyRequest, type LegacyContext } from '../src/server/api/legacy-handler.js';
import { normaliseData } from '../src/server/api/legacy-request.js';
import type { CommandInfo, CommandRequest, CommandService, RefusedCommandRequest } from '../src/server/commands/command-service.js';
import { HeraldError } from '../src/server/errors.js';
import { createCore, type Core } from './helpers/legacy-core.js';
import { capturedLog } from './helpers/captured-log.js';

const SEED_NOTIFICATION = { TYPE: 'MESSAGE', TITLE: 'Test notification', TEXT: 'Just<br/>some<br/>text' };

/** Records what it was asked; refuses programs outside a tiny allowlist (the real runner lands with issue 4). */
class RecordingCommands implements CommandService {
  readonly started: CommandRequest[] = [];
  readonly refusals: Array<{ request: RefusedCommandRequest; error: string }> = [];
  refused(request: RefusedCommandRequest, error: HeraldError): void {
    this.refusals.push({ request, error: `${error.code}: ${error.message}` });
  }
  async start(request: CommandRequest): Promise<CommandInfo> {
    if (request.program !== 'ping' && request.program !== '/usr/bin/ping') throw new HeraldError('HERALD_ERR_COMMAND_FORBIDDEN', 'the program is not allowed');
    this.started.push(request);
    return { id: 'c1', aid: request.aid, program: request.program, args: request.args, state: 'queued', door: request.door, queuedAt: Date.now(), output: '' } as unknown as CommandInfo;
  }
  get(): undefined { return undefined; }
  async cancel(): Promise<CommandInfo> { throw new Error('not used'); }
  list(): CommandInfo[] { return []; }
  async close(): Promise<void> {}
}

describe('legacy request handler', () => {
  let core: Core;
  let ctx: LegacyContext;
  const ask = (request: unknown, over: Partial<LegacyContext> = {}) => handleLegacyRequest(request, { ...ctx, ...over });

  before(async () => {
    core = await createCore();
    ctx = { notifier: core.notifier, commands: undefined, token: '', requireToken: false, peer: 'test' };
  });
  after(() => core.close());

  // The client is told only "internal error"; nothing was logged, so the operator never learnt
  // of a failure of Herald's own on either legacy door.
  it('logs a failure of its own, and answers only "internal error"', async () => {
    const { logger, lines } = capturedLog();
    const broken = new RecordingCommands();
    broken.start = async () => { throw new TypeError('cannot read properties of undefined'); };
    const answer = await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping' }, { commands: broken, logger, peer: '127.0.0.1:4000' });
    assert.deepEqual(answer, { TYPE: 'ERROR', ERROR: 'internal error', CODE: 'HERALD_ERR_INTERNAL' });
    const failed = lines().filter((l) => l.msg === 'legacy request failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.peer, '127.0.0.1:4000');
    assert.equal(failed[0]!.type, 'COMMAND');
    assert.match(failed[0]!.err.message, /cannot read properties/);
    // A refusal of the request's own (a HeraldError) is the client's business: not logged here.
    await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'rm' }, { commands: new RecordingCommands(), logger });
    assert.equal(lines().filter((l) => l.msg === 'legacy request failed').length, 1);
  });

  it('answers PING with exactly {"TYPE":"PONG"}', async () => {
    assert.deepEqual(await ask({ TYPE: 'PING' }), { TYPE: 'PONG' });
  });

  it('sends to every tab of an admin: RESULT has one 1 per tab', async () => {
    const tabs = core.open('admin', 11, 3);
    const answer = await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 11, DATA: { TYPE: 'MESSAGE', TITLE: 'Hi', TEXT: 'there', MODULE: 'Msgs', SENDER: { UID: 5, LOGIN: 'x' } } });
    assert.deepEqual(answer, { TYPE: 'RESULT', RESULT: [1, 1, 1] });
    for (const t of tabs) {
      assert.equal(t.frames.length, 1);
      assert.deepEqual({ ...(t.received[0] as object), SEQ: undefined, EPOCH: undefined }, { TYPE: 'MESSAGE', TITLE: 'Hi', TEXT: 'there', MODULE: 'Msgs', SENDER: { UID: 5, LOGIN: 'x' }, SEQ: undefined, EPOCH: undefined });
    }
    core.hub.remove(tabs[0]!);
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: '11', DATA: { TEXT: 'again' } }), { TYPE: 'RESULT', RESULT: [1, 1] }, 'numeric string ID; closing a tab leaves two');
  });

  it('answers 0 for an admin with no tabs, and keeps the notification for later', async () => {
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 12, DATA: { TITLE: 'later' } }), 0);
    const read = await core.store.readAfter('admin:12', 0, 10, Date.now());
    assert.equal(read.messages.length, 1);
    assert.deepEqual(JSON.parse(read.messages[0]!.json), { TITLE: 'later', TYPE: 'MESSAGE' });
  });

  it('delivers a PING probe in DATA live only (is_admin_connected), never queued', async () => {
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 13, DATA: { TYPE: 'PING' } }), 0);
    assert.equal((await core.store.readAfter('admin:13', 0, 10, Date.now())).messages.length, 0);
    const [tab] = core.open('admin', 13);
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 13, DATA: { TYPE: 'PING' } }), { TYPE: 'RESULT', RESULT: [1] });
    assert.deepEqual(tab!.received, [{ TYPE: 'PING' }]);
  });

  it('adds TYPE MESSAGE to DATA without one, and delivers a string DATA as that string', async () => {
    const [tab] = core.open('admin', 14);
    await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 14, DATA: { TITLE: 't', TEXT: 'x' } });
    await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 14, DATA: 'just a string' });
    const [first, second] = tab!.received as [Record<string, unknown>, unknown];
    assert.equal(first.TYPE, 'MESSAGE');
    assert.equal(second, 'just a string');
  });

  it("delivers the seed's example: the inner notification, not one whose TEXT is an object", async () => {
    const [tab] = core.open('admin', 1);
    const answer = await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1, TOKEN: 'anything', DATA: { TYPE: 'MESSAGE', TITLE: null, TEXT: SEED_NOTIFICATION } });
    assert.deepEqual(answer, { TYPE: 'RESULT', RESULT: [1] });
    const got = tab!.received[0] as Record<string, unknown>;
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT }, SEED_NOTIFICATION);
    assert.equal(typeof got.SEQ, 'number');
  });

  it('unwraps DATA the other old client writes: the notification JSON-encoded into a string', async () => {
    const [tab] = core.open('admin', 15);
    await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 15, DATA: JSON.stringify(SEED_NOTIFICATION) });
    const got = tab!.received[0] as Record<string, unknown>;
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT }, SEED_NOTIFICATION);
  });

  it('unwraps any TYPE in TEXT, and a MESSAGE\'s hash TEXT without one; keeps fields only the wrapper has, and leaves ordinary TEXT alone', () => {
    assert.deepEqual(normaliseData({ TYPE: 'MESSAGE', TITLE: 'Outer', TEXT: { TYPE: 'EVENT', MODULE: 'X' } }), { TYPE: 'EVENT', MODULE: 'X', TITLE: 'Outer' });
    // send_message({AID, MESSAGE => {...}}): the hash is the notification, never a TEXT that is an object.
    assert.deepEqual(normaliseData({ TITLE: 'a', TEXT: { no: 'type' } }), { TITLE: 'a', no: 'type', TYPE: 'MESSAGE' });
    assert.deepEqual(normaliseData({ TYPE: 'MESSAGE', TEXT: '{not json' }), { TYPE: 'MESSAGE', TEXT: '{not json' });
    assert.equal(normaliseData(42), undefined);
  });

  it('a string DATA holding a JSON object without TYPE is that object: send_message JSON-encodes its MESSAGE hash, TYPE or not', async () => {
    assert.deepEqual(normaliseData('{"TITLE":"no type","TEXT":"x"}'), { TITLE: 'no type', TEXT: 'x', TYPE: 'MESSAGE' });
    assert.equal(normaliseData('{not json'), '{not json');
    assert.equal(normaliseData('[1,2]'), '[1,2]', 'only an object');
    const [tab] = core.open('admin', 25);
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 25, DATA: '{"TITLE":"no type","TEXT":"x"}' }), { TYPE: 'RESULT', RESULT: [1] });
    const got = tab!.received[0] as Record<string, unknown>;
    assert.deepEqual({ TYPE: got.TYPE, TITLE: got.TITLE, TEXT: got.TEXT }, { TYPE: 'MESSAGE', TITLE: 'no type', TEXT: 'x' });
  });

  it('unwraps JSON in a string up to 64 levels deep; deeper, the string is delivered as it is, never parsed', () => {
    const holding = (levels: number) => `{"TYPE":"EVENT","A":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    assert.deepEqual(normaliseData(holding(64)), JSON.parse(holding(64)));
    assert.equal(normaliseData(holding(65)), holding(65));
    // 1 MB of it: JSON.parse alone took 400 ms.
    assert.equal(normaliseData(holding(500_000)), holding(500_000));
    assert.deepEqual(normaliseData({ TYPE: 'MESSAGE', TITLE: 'Outer', TEXT: holding(65) }), { TYPE: 'MESSAGE', TITLE: 'Outer', TEXT: holding(65) });
  });

  it('keeps Cyrillic intact', async () => {
    const [tab] = core.open('user', 16);
    await ask({ TYPE: 'MESSAGE', TO: 'USER', ID: 16, DATA: { TITLE: 'Платіж отримано', TEXT: 'Спасибо, ёж' } });
    const got = tab!.received[0] as Record<string, unknown>;
    assert.equal(got.TITLE, 'Платіж отримано');
    assert.equal(got.TEXT, 'Спасибо, ёж');
  });

  it('sends to users with TO USER, and with CLIENT as Abills::Sender::Browser writes it', async () => {
    const [tab] = core.open('user', 17);
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'USER', ID: 17, DATA: { TEXT: 'a' } }), { TYPE: 'RESULT', RESULT: [1] });
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'CLIENT', ID: 17, DATA: { TEXT: 'b' } }), { TYPE: 'RESULT', RESULT: [1] });
    assert.equal(tab!.frames.length, 2);
  });

  it('ID "*" reaches every admin (1), and answers 0 when nobody of that kind is online', async () => {
    const fresh = await createCore();
    try {
      const c = { ...ctx, notifier: fresh.notifier };
      assert.equal(await handleLegacyRequest({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: '*', DATA: { TEXT: 'nobody' } }, c), 0);
      const a = fresh.open('admin', 1, 2);
      const b = fresh.open('admin', 7);
      const u = fresh.open('user', 3);
      assert.equal(await handleLegacyRequest({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: '*', DATA: { TEXT: 'all' } }, c), 1);
      for (const t of [...a, ...b]) assert.equal((t.received[0] as Record<string, unknown>).TEXT, 'all');
      assert.equal(u[0]!.frames.length, 0, 'users do not get an admin broadcast');
    } finally {
      await fresh.close();
    }
  });

  it('REQUEST_LIST answers a flat list of the ids online', async () => {
    const fresh = await createCore();
    try {
      fresh.open('admin', 7, 2);
      fresh.open('admin', 1);
      fresh.open('user', 42);
      const c = { ...ctx, notifier: fresh.notifier };
      assert.deepEqual(await handleLegacyRequest({ TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' }, c), { TYPE: 'RESULT', LIST: [1, 7] });
      assert.deepEqual(await handleLegacyRequest({ TYPE: 'REQUEST_LIST', LIST_TYPE: 'USERS' }, c), { TYPE: 'RESULT', LIST: [42] });
      const bad = await handleLegacyRequest({ TYPE: 'REQUEST_LIST' }, c);
      assert.match((bad as { ERROR: string }).ERROR, /LIST_TYPE/);
    } finally {
      await fresh.close();
    }
  });

  it('answers the old daemon\'s errors word for word', async () => {
    const incorrect = { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' };
    assert.deepEqual(await ask({}), incorrect);
    assert.deepEqual(await ask({ FOO: 1 }), incorrect);
    assert.deepEqual(await ask([{ TYPE: 'PING' }]), incorrect);
    assert.deepEqual(await ask('PING'), incorrect);
    assert.deepEqual(await ask(null), incorrect);
    assert.deepEqual(await ask({ TYPE: 'NOPE' }), { TYPE: 'ERROR', ERROR: 'UNKNOWN MESSAGE TYPE' });
  });

  it('says which field a MESSAGE or COMMAND lacks', async () => {
    const err = async (r: unknown) => ((await ask(r)) as { TYPE: string; ERROR: string });
    const noId = await err({ TYPE: 'MESSAGE', TO: 'ADMIN', DATA: { TEXT: 'x' } });
    assert.equal(noId.TYPE, 'ERROR');
    assert.match(noId.ERROR, /without ID/);
    assert.match((await err({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1 })).ERROR, /without DATA/);
    assert.match((await err({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 'abc', DATA: 'x' })).ERROR, /bad ID/);
    assert.match((await err({ TYPE: 'MESSAGE', TO: 'GROUP', ID: 1, DATA: 'x' })).ERROR, /TO/);
    assert.match((await err({ TYPE: 'COMMAND', PROGRAM: 'ping' })).ERROR, /without AID/);
    assert.match((await err({ TYPE: 'COMMAND', AID: 1 })).ERROR, /without PROGRAM/);
  });

  it('answers COMMAND with a clear error while commands are not enabled', async () => {
    const answer = await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: '/usr/bin/ping', PROGRAM_ARGS: ['-c 3', '-q', '127.0.0.1'], ARGS: { timeout: 5 } });
    assert.deepEqual(answer, { TYPE: 'ERROR', ERROR: 'commands are not enabled on this server', CODE: 'HERALD_ERR_COMMANDS_DISABLED' });
  });

  it('hands COMMAND to the command service as the seed wrote it, and names a forbidden program', async () => {
    const commands = new RecordingCommands();
    const answer = await ask(
      { TYPE: 'COMMAND', AID: '1', PROGRAM: '/usr/bin/ping', PROGRAM_ARGS: ['-c 3', '-q', '127.0.0.1'], ARGS: { timeout: 5 }, SUCCESS: { TITLE: 'ok' }, ERROR: 'failed', ID: 'task-9' },
      { commands, peer: '127.0.0.1:5555' },
    );
    assert.equal(answer, 1);
    assert.deepEqual(commands.started, [{
      aid: 1, program: '/usr/bin/ping', args: ['-c 3', '-q', '127.0.0.1'], splitArgs: true, door: 'legacy', requestedBy: '127.0.0.1:5555',
      timeoutSec: 5, success: { TITLE: 'ok', TYPE: 'MESSAGE' }, error: 'failed', taskId: 'task-9',
    }]);
    const refused = (await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: '/bin/rm', PROGRAM_ARGS: ['-rf', '/'] }, { commands })) as Record<string, unknown>;
    assert.equal(refused.TYPE, 'ERROR');
    assert.equal(refused.CODE, 'HERALD_ERR_COMMAND_FORBIDDEN');
    assert.match(refused.ERROR as string, /\/bin\/rm/);
  });

  it('takes any string as SUCCESS or ERROR, "bad" included, and refuses what is neither a string nor an object', async () => {
    const commands = new RecordingCommands();
    // "bad" was the parser's own marker for a refused value, so this COMMAND was refused.
    assert.equal(await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping', SUCCESS: 'bad', ERROR: 'bad' }, { commands }), 1);
    assert.deepEqual(commands.started.map((r) => [r.success, r.error]), [['bad', 'bad']]);
    assert.deepEqual(await ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping', ERROR: 5 }, { commands }), {
      TYPE: 'ERROR', ERROR: 'COMMAND with bad SUCCESS or ERROR: expected a string or a notification object', CODE: 'HERALD_ERR_BAD_REQUEST',
    });
  });

  it('hands a COMMAND it refuses for its shape to the command service\'s audit, as it came, once the sender may ask', async () => {
    const commands = new RecordingCommands();
    const noAid = { TYPE: 'COMMAND', PROGRAM: 'rm', PROGRAM_ARGS: '-rf /', ID: 'task-1' };
    const answer = await ask(noAid, { commands, peer: '127.0.0.1:5556' });
    assert.deepEqual(answer, { TYPE: 'ERROR', ERROR: 'COMMAND without AID: say which admin is told the result', CODE: 'HERALD_ERR_BAD_REQUEST' }, 'the answer is as before');
    assert.equal(await ask({ TYPE: 'COMMAND', AID: '4', PROGRAM: 'ping', ARGS: { timeout: -1 }, SILENT: 1 }, { commands, peer: '127.0.0.1:5556' }), undefined);
    assert.deepEqual(commands.refusals, [
      {
        request: { aid: undefined, program: 'rm', args: ['-rf /'], taskId: 'task-1', door: 'legacy', requestedBy: '127.0.0.1:5556' },
        error: 'HERALD_ERR_BAD_REQUEST: COMMAND without AID: say which admin is told the result',
      },
      {
        request: { aid: 4, program: 'ping', args: undefined, taskId: undefined, door: 'legacy', requestedBy: '127.0.0.1:5556' },
        error: 'HERALD_ERR_BAD_REQUEST: COMMAND with a bad ARGS.timeout: expected seconds, a number > 0',
      },
    ]);
    // Off loopback a request without the right TOKEN is nobody's attempt: refused for that, and not audited.
    const offLoopback = { commands, token: 's3cret-token-value', requireToken: true };
    await ask(noAid, offLoopback);
    await ask({ ...noAid, TOKEN: 'wrong' }, offLoopback);
    assert.equal(commands.refusals.length, 2);
    await ask({ ...noAid, TOKEN: 's3cret-token-value' }, offLoopback);
    assert.equal(commands.refusals.length, 3);
    assert.equal(commands.refusals[2]?.request.program, 'rm');
    await ask({ TYPE: 'MESSAGE', ID: 1 }, { commands });
    assert.equal(commands.refusals.length, 3, 'only COMMAND is an attempt to run a program');
  });

  it('PROXY to Internal echoes MESSAGE.ECHO, or answers 1', async () => {
    assert.deepEqual(await ask({ TYPE: 'PROXY', PROXY_TO: 'Internal', MESSAGE: { ECHO: { a: [1, 'б'] } } }), { a: [1, 'б'] });
    assert.equal(await ask({ TYPE: 'PROXY', PROXY_TO: 'Internal', MESSAGE: {} }), 1);
    assert.equal(await ask({ TYPE: 'PROXY', PROXY_TO: 'Internal' }), 1);
    assert.equal(((await ask({ TYPE: 'PROXY', PROXY_TO: 'Telegram', MESSAGE: {} })) as { TYPE: string }).TYPE, 'ERROR');
    // The unknown plugin's name is quoted cut at a character: cut as JSON text, it ended in half an emoji, on which Perl's JSON parser dies.
    const emoji = (await ask({ TYPE: 'PROXY', PROXY_TO: `zz${'😀'.repeat(30)}`, MESSAGE: {} })) as { ERROR: string };
    assert.doesNotMatch(emoji.ERROR, /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/, emoji.ERROR);
    assert.ok(emoji.ERROR.includes(`"zz${'😀'.repeat(19)}…"`), emoji.ERROR);
  });

  it('SILENT:1 gets no answer at all, yet is carried out', async () => {
    const [tab] = core.open('admin', 18);
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 18, DATA: { TEXT: 's' }, SILENT: 1 }), undefined);
    assert.equal(await ask({ TYPE: 'NOPE', SILENT: 1 }), undefined, 'not even an error');
    assert.equal(await ask({ TYPE: 'PING', SILENT: 0 }) !== undefined, true, 'SILENT 0 is false, as in Perl');
    // Abills::Backend::API's NON_SAFE requests come wrapped: {"MESSAGE":{...},"SILENT":1}.
    assert.equal(await ask({ MESSAGE: { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 18, DATA: { TEXT: 'wrapped' } }, SILENT: 1 }), undefined);
    assert.deepEqual(tab!.received.map((f) => (f as Record<string, unknown>).TEXT), ['s', 'wrapped']);
  });

  it("send_message's NON_SAFE (SILENT inside the DATA it JSON-encodes) gets no answer, and the tabs never see SILENT", async () => {
    const [tab] = core.open('admin', 26);
    // What Abills::Sender::Browser writes for send_message({AID => 26, MESSAGE => {...}, NON_SAFE => 1}): it never reads an answer.
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 26, DATA: JSON.stringify({ TYPE: 'MESSAGE', TITLE: 't', TEXT: 'non-safe', SILENT: 1 }) }), undefined);
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 26, DATA: { TITLE: 't', TEXT: 'object', SILENT: '1' } }), undefined);
    assert.equal(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 'x', DATA: { TEXT: 'bad id', SILENT: 1 } }), undefined, 'not even an error');
    // Perl-false SILENT answers, as at the top.
    assert.deepEqual(await ask({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 26, DATA: { TEXT: 'answered', SILENT: 0 } }), { TYPE: 'RESULT', RESULT: [1] });
    // Abills::Backend::API documents json_request's MESSAGE as a JSON string: its NON_SAFE envelope may carry one.
    assert.equal(await ask({ MESSAGE: JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 26, DATA: { TEXT: 'string envelope' } }), SILENT: 1 }), undefined);
    const got = tab!.received as Array<Record<string, unknown>>;
    assert.deepEqual(got.map((f) => f.TEXT), ['non-safe', 'object', 'answered', 'string envelope']);
    assert.deepEqual(got.map((f) => 'SILENT' in f), [false, false, true, false], 'a Perl-true SILENT is the flag, not part of the notification');
  });

  describe('TOKEN', () => {
    const message = { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 19, DATA: { TEXT: 't' } };
    const refusedText = /TOKEN/;

    it('on loopback with no token configured, a TOKEN is accepted and ignored', async () => {
      assert.equal(await ask({ ...message, TOKEN: 'whatever' }), 0);
      assert.deepEqual(await ask({ TYPE: 'PING', TOKEN: 'x' }), { TYPE: 'PONG' });
    });

    it('on loopback with a token configured, MESSAGE must carry it; the others need not', async () => {
      const c = { token: 's3cret-token-value', requireToken: false };
      assert.match(((await ask(message, c)) as { ERROR: string }).ERROR, refusedText);
      assert.match(((await ask({ ...message, TOKEN: 'wrong' }, c)) as { ERROR: string }).ERROR, refusedText);
      assert.equal(await ask({ ...message, TOKEN: 's3cret-token-value' }, c), 0);
      assert.deepEqual(await ask({ TYPE: 'PING' }, c), { TYPE: 'PONG' });
      assert.deepEqual(await ask({ TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' }, c) !== undefined, true);
      assert.match(((await ask({ TYPE: 'PING', TOKEN: 'wrong' }, c)) as { ERROR: string }).ERROR, refusedText, 'a wrong token is refused wherever it appears');
    });

    it('off loopback, every request must carry it', async () => {
      const c = { token: 's3cret-token-value', requireToken: true };
      const refused = (await ask({ TYPE: 'PING' }, c)) as Record<string, unknown>;
      assert.equal(refused.TYPE, 'ERROR');
      assert.equal(refused.CODE, 'HERALD_ERR_UNAUTHORIZED');
      assert.deepEqual(await ask({ TYPE: 'PING', TOKEN: 's3cret-token-value' }, c), { TYPE: 'PONG' });
      assert.equal(((await ask({ TYPE: 'REQUEST_LIST', LIST_TYPE: 'ADMINS' }, c)) as { TYPE: string }).TYPE, 'ERROR');
      assert.equal(await ask({ ...message, TOKEN: 's3cret-token-value' }, c), 0);
    });
  });
});
