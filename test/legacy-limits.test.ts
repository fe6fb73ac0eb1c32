/**
 * The limits of a notification hold at every door: a TYPE of 1–64
 * characters and a plain string of at most 65,536 (docs/http-api.md). The
 * HTTP API's schemas refused past them while the legacy door (TCP and
 * POST /api/v1/legacy), which no schema checks, delivered them; the Notifier
 * now checks them for every door. An empty TYPE on the legacy door stays
 * what it was, a MESSAGE, as a DATA without a TYPE is (docs/legacy.md).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

const TYPE_64 = 'T'.repeat(64);
const TYPE_65 = 'T'.repeat(65);
/** 64 characters, 128 UTF-16 units: within the limit, as the API's validator counts. */
const EMOJI_64 = '😀'.repeat(64);
const EMOJI_65 = '😀'.repeat(65);

describe('notification limits: the legacy door refuses what the HTTP API refuses', () => {
  let server: TestServer;
  let c: RawLegacyClient;
  let tab: TestTab;

  before(async () => {
    server = await startHerald({ store: 'memory' });
    c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
    tab = await server.tab('admin', 5);
    await tab.nextOfType('WELCOME');
  });
  after(async () => {
    c.destroy();
    await server.close();
  });

  /** Sends over legacy TCP; returns the answer. */
  async function tcp(request: unknown): Promise<any> {
    return (await c.request(JSON.stringify(request))).answer;
  }

  /** Sends a marker and checks it is the tab's next notification: nothing refused before it reached the tab. */
  async function nothingBut(marker: string): Promise<void> {
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: { TYPE: 'MARK', TEXT: marker } }), { TYPE: 'RESULT', RESULT: [1] });
    const got = await tab.next((f) => typeof f === 'string' || (f?.TYPE !== 'PING' && f?.TYPE !== 'PACE'));
    assert.deepEqual({ TYPE: got?.TYPE, TEXT: got?.TEXT }, { TYPE: 'MARK', TEXT: marker }, 'the refused notification never reached the tab');
  }

  it('a TYPE of 65 characters: ERROR HERALD_ERR_VALIDATION over TCP and POST /api/v1/legacy, 400 on /send; nothing reaches the tab', async () => {
    const tcpAnswer = await tcp({ TYPE: 'MESSAGE', ID: 5, DATA: { TYPE: TYPE_65, TEXT: 'x' } });
    assert.equal(tcpAnswer?.TYPE, 'ERROR');
    assert.equal(tcpAnswer?.CODE, 'HERALD_ERR_VALIDATION');
    assert.match(tcpAnswer.ERROR, /TYPE may be at most 64 characters; this one has 65/);
    const viaHttp = await server.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', ID: 5, DATA: { TYPE: TYPE_65 } });
    assert.equal(viaHttp.status, 200);
    assert.equal(viaHttp.body.TYPE, 'ERROR');
    assert.equal(viaHttp.body.CODE, 'HERALD_ERR_VALIDATION');
    // A broadcast too, and a TYPE in a JSON string DATA (the legacy parser unwraps it).
    assert.equal((await tcp({ TYPE: 'MESSAGE', ID: '*', DATA: { TYPE: TYPE_65 } }))?.CODE, 'HERALD_ERR_VALIDATION');
    assert.equal((await tcp({ TYPE: 'MESSAGE', ID: 5, DATA: JSON.stringify({ TYPE: TYPE_65 }) }))?.CODE, 'HERALD_ERR_VALIDATION');
    const api = await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: TYPE_65 } });
    assert.equal(api.status, 400);
    await nothingBut('after 65');
  });

  it('a TYPE of 64 characters is delivered, over TCP as over /send', async () => {
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: { TYPE: TYPE_64, TEXT: 'tcp' } }), { TYPE: 'RESULT', RESULT: [1] });
    assert.equal((await tab.nextOfType(TYPE_64)).TEXT, 'tcp');
    const api = await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: TYPE_64, TEXT: 'api' }, ttl: 0 });
    assert.equal(api.status, 200);
    assert.equal((await tab.nextOfType(TYPE_64)).TEXT, 'api');
  });

  it('characters are counted as the API counts them: 64 emoji pass at both doors, 65 are refused at both', async () => {
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: { TYPE: EMOJI_64 } }), { TYPE: 'RESULT', RESULT: [1] });
    await tab.nextOfType(EMOJI_64);
    assert.equal((await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: EMOJI_64 }, ttl: 0 })).status, 200);
    await tab.nextOfType(EMOJI_64);
    assert.equal((await tcp({ TYPE: 'MESSAGE', ID: 5, DATA: { TYPE: EMOJI_65 } }))?.CODE, 'HERALD_ERR_VALIDATION');
    assert.equal((await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: EMOJI_65 } })).status, 400);
    await nothingBut('after emoji');
  });

  it('a string message of 70,000 characters: ERROR over TCP and POST /api/v1/legacy, 400 on /send; 65,536 is delivered', async () => {
    const long = 'b'.repeat(70000);
    const tcpAnswer = await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: long });
    assert.equal(tcpAnswer?.TYPE, 'ERROR');
    assert.equal(tcpAnswer?.CODE, 'HERALD_ERR_VALIDATION');
    assert.match(tcpAnswer.ERROR, /at most 65536 characters; this one has 70000/);
    const viaHttp = await server.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', ID: 5, DATA: long });
    assert.equal(viaHttp.body?.CODE, 'HERALD_ERR_VALIDATION');
    assert.equal((await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: long, ttl: 0 })).status, 400);
    await nothingBut('after long string');
    const most = 'c'.repeat(65536);
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, DATA: most }), { TYPE: 'RESULT', RESULT: [1] });
    assert.equal(await tab.next((f) => typeof f === 'string'), most);
  });

  it('an empty TYPE on the legacy door is a MESSAGE, as a missing one is; the API refuses it', async () => {
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: { TYPE: '', TITLE: 'empty' } }), { TYPE: 'RESULT', RESULT: [1] });
    const got = await tab.next((f) => f?.TITLE === 'empty');
    assert.equal(got.TYPE, 'MESSAGE');
    assert.equal((await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: '' } })).status, 400);
  });

  it('a TYPE that is not a string (5, true, a list, an object) is refused over TCP and POST /api/v1/legacy, as /send refuses it, not made a MESSAGE; a null TYPE is a missing one', async () => {
    for (const type of [5, true, ['Payment'], { x: 1 }]) {
      const what = JSON.stringify(type);
      for (const data of [{ TYPE: type, TEXT: 't' }, JSON.stringify({ TYPE: type, TEXT: 't' }), { TYPE: 'MESSAGE', TEXT: { TYPE: type, TITLE: 'inner' } }]) {
        const tcpAnswer = await tcp({ TYPE: 'MESSAGE', ID: 5, DATA: data });
        assert.equal(tcpAnswer?.TYPE, 'ERROR', `TYPE ${what} in ${JSON.stringify(data)}`);
        assert.equal(tcpAnswer?.CODE, 'HERALD_ERR_VALIDATION');
        assert.match(tcpAnswer.ERROR, /TYPE must be a string/);
      }
      const viaHttp = await server.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', ID: 5, DATA: { TYPE: type, TEXT: 't' } });
      assert.equal(viaHttp.body?.CODE, 'HERALD_ERR_VALIDATION', `TYPE ${what} on POST /api/v1/legacy`);
      assert.equal((await server.api('POST', '/api/v1/send', { to: { aid: 5 }, message: { TYPE: type, TEXT: 't' } })).status, 400);
      // A SILENT one is refused without an answer: the PING's is the next.
      await c.write(JSON.stringify({ TYPE: 'MESSAGE', ID: 5, DATA: { TYPE: type, SILENT: 1 } }));
      assert.deepEqual(await tcp({ TYPE: 'PING' }), { TYPE: 'PONG' });
      await nothingBut(`after TYPE ${what}`);
    }
    assert.deepEqual(await tcp({ TYPE: 'MESSAGE', ID: 5, TTL: 0, DATA: { TYPE: null, TITLE: 'null type' } }), { TYPE: 'RESULT', RESULT: [1] });
    assert.equal((await tab.next((f) => f?.TITLE === 'null type')).TYPE, 'MESSAGE');
  });

  it('a legacy COMMAND whose SUCCESS or ERROR has a TYPE that is not a string is refused before it runs, as POST /api/v1/commands refuses it', async () => {
    for (const field of ['SUCCESS', 'ERROR'] as const) {
      const answer = await tcp({ TYPE: 'COMMAND', AID: 5, PROGRAM: 'ping', PROGRAM_ARGS: ['-c', '1', '127.0.0.1'], [field]: { TYPE: 5, TEXT: 'x' } });
      assert.equal(answer?.TYPE, 'ERROR');
      assert.equal(answer?.CODE, 'HERALD_ERR_VALIDATION');
      assert.match(answer.ERROR, new RegExp(`COMMAND with bad ${field}: a notification's TYPE must be a string, not 5`));
      const api = await server.api('POST', '/api/v1/commands', { aid: 5, program: 'ping', args: ['-c', '1', '127.0.0.1'], [field.toLowerCase()]: { TYPE: 5 } });
      assert.equal(api.status, 400);
    }
    assert.deepEqual((await server.api('GET', '/api/v1/commands')).body, { commands: [] }, 'none ran');
  });

  it('a legacy COMMAND whose SUCCESS has a TYPE of 65 characters is refused before it runs, as POST /api/v1/commands refuses it', async () => {
    const answer = await tcp({ TYPE: 'COMMAND', AID: 5, PROGRAM: 'ping', PROGRAM_ARGS: ['-c', '1', '127.0.0.1'], SUCCESS: { TYPE: TYPE_65 } });
    assert.equal(answer?.TYPE, 'ERROR');
    assert.equal(answer?.CODE, 'HERALD_ERR_VALIDATION');
    assert.match(answer.ERROR, /TYPE may be at most 64 characters/);
    const api = await server.api('POST', '/api/v1/commands', { aid: 5, program: 'ping', args: ['-c', '1', '127.0.0.1'], success: { TYPE: TYPE_65 } });
    assert.equal(api.status, 400);
    assert.deepEqual((await server.api('GET', '/api/v1/commands')).body, { commands: [] }, 'neither ran');
  });

  it('the Notifier itself refuses an empty TYPE, a TYPE past 64 and a string past 65,536, whoever calls it, before anything is sent', async () => {
    const n = server.herald.notifier;
    const to = { kind: 'admin' as const, id: 5 };
    await assert.rejects(n.send(to, { TYPE: '' }), { code: 'HERALD_ERR_VALIDATION' });
    await assert.rejects(n.send(to, { TYPE: TYPE_65 }), { code: 'HERALD_ERR_VALIDATION' });
    await assert.rejects(n.sendMany([to, { kind: 'admin', id: 6 }], 'd'.repeat(65537)), { code: 'HERALD_ERR_VALIDATION' });
    await assert.rejects(n.broadcast('admin', { TYPE: TYPE_65 }), { code: 'HERALD_ERR_VALIDATION' });
    // A batch is all or nothing: the good item before the bad one is not sent either.
    await assert.rejects(n.sendBatch([
      { to, payload: { TYPE: 'MARK', TEXT: 'batch' }, options: { ttlMs: 0 } },
      { to, payload: { TYPE: TYPE_65 } },
    ]), { code: 'HERALD_ERR_VALIDATION' });
    await nothingBut('after notifier');
  });
});
