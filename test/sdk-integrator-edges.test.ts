/**
 * What an integrator met using the installed package against a real Herald
 * (test/helpers/server.ts): mintConnectToken's secret held to the server's
 * rule, error messages that show a string given for a number as a string,
 * and `herald send` to a list naming each recipient's stored message.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BrowserSender, HeraldSdkError, mintConnectToken } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';
import { runCli } from './helpers/cli.js';

/** The rejection of `p`, which must be a HeraldSdkError HERALD_ERR_BAD_ARGUMENT. */
async function badArgument(p: Promise<unknown>): Promise<HeraldSdkError> {
  const e: unknown = await p.then(() => assert.fail('expected a rejection'), (err: unknown) => err);
  assert.ok(e instanceof HeraldSdkError, `expected a HeraldSdkError, got ${String(e)}`);
  assert.equal(e.code, 'HERALD_ERR_BAD_ARGUMENT', e.message);
  return e;
}

describe('the SDK and the CLI at an integrator\'s edges', () => {
  let s: TestServer;
  let sender: BrowserSender;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken });
  });
  after(() => s.close());

  test('mintConnectToken rejects a secret the server would never take with HERALD_ERR_BAD_ARGUMENT, as the constructor refuses it', async () => {
    const admin = { kind: 'admin', id: 7 } as const;
    const short = await badArgument(mintConnectToken('short', admin, 60));
    assert.match(short.message, /^secret must be at least 32 characters \(the server refuses shorter ones\), got 5$/);
    assert.match((await badArgument(mintConnectToken('s'.repeat(31), admin, 60))).message, /got 31$/);
    // Before, a DOMException from the signing library.
    assert.match((await badArgument(mintConnectToken('', admin, 60))).message, /at least 32 characters/);
    assert.match((await badArgument(mintConnectToken(undefined as unknown as string, admin, 60))).message, /^secret must be a string of at least 32 characters, got undefined$/);
    // The same rule as the constructor's option.
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: s.apiToken, secret: 'short' }), { name: 'TypeError', message: /^option "secret" must be at least 32 characters/ });

    // The server's own secret mints a token that opens a tab.
    const { token } = await mintConnectToken(s.secret, admin, 60);
    const tab = await TestTab.open(`${s.wsUrl}/ws/admin`, { query: { token } });
    const welcome = await tab.nextOfType('WELCOME');
    assert.deepEqual([welcome.KIND, welcome.ID], ['admin', 7]);
    tab.close();
  });

  test('a string given for a number is shown as a JSON string in the error, and a long one is cut', async () => {
    const cases: Array<[Promise<unknown>, RegExp]> = [
      [sender.sendMessage({ aid: '1' as unknown as number, message: 'x' }), /^aid must be a positive integer, got "1"$/],
      [sender.connectedTabs({ uid: '2' as unknown as number }), /^uid must be a positive integer, got "2"$/],
      [sender.runInBackground('ping', { aid: '3' as unknown as number }), /^aid must be a positive integer, got "3"$/],
      [sender.createConnectToken({ aid: 4, ttl: '60' as unknown as number }), /got "60"$/],
      // A number stays a number: JSON would show NaN and Infinity as null.
      [sender.createConnectToken({ aid: 4, ttl: Number.NaN }), /got NaN$/],
      [sender.sendMessage({ aid: 1, message: 'x', ttl: -Infinity }), /got -Infinity$/],
      [mintConnectToken(s.secret, { kind: 'admin', id: '7' as unknown as number }, 60), /got kind "admin" and id "7"$/],
    ];
    for (const [call, message] of cases) assert.match((await badArgument(call)).message, message);
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: s.apiToken, aid: '5' as unknown as number }), { message: /^option "aid" must be a positive integer, got "5"$/ });

    const long = await badArgument(sender.sendMessage({ aid: '9'.repeat(100_000) as unknown as number, message: 'x' }));
    assert.ok(long.message.length < 200, `${long.message.length} characters`);
    assert.match(long.message, /got "9{119}…$/);

    // An object in the wrong place is often a config or a session: its secrets are not echoed, only what it is.
    const config = { url: s.url, apiToken: s.apiToken, secret: s.secret };
    assert.throws(() => new BrowserSender({ ...config, timeoutMs: config as unknown as number }), (e: Error) => /got an object$/.test(e.message) && !e.message.includes(s.apiToken));
    const session = await badArgument(sender.sendMessage({ aid: { sessionId: 'SESSION-COOKIE-abc', aid: 7 } as unknown as number, message: 'x' }));
    assert.equal(session.message, 'aid must be a positive integer, got an object');
    assert.match((await badArgument(sender.sendMessage({ aid: [7, 8] as unknown as number, message: 'x' }))).message, /got an array of 2$/);
  });

  test('herald send to a list prints the stored message id of each recipient, saying whose; one recipient prints its id as before', async () => {
    const env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken, HERALD_DATA_DIR: s.dataDir };
    const [list, one] = await Promise.all([
      runCli(['send', '--aids', '601,602', '--text', 'later', '--ttl', '1h'], { env }),
      runCli(['send', '--aid', '603', '--text', 'later', '--ttl', '1h'], { env }),
    ]);
    assert.equal(list.code, 0, list.stderr);
    const ids = /^admins 601,602: delivered to 0 tabs; queued for tabs that connect later \(message (\S+) for admin 601, message (\S+) for admin 602\)\n$/.exec(list.stdout);
    assert.ok(ids, list.stdout);
    assert.notEqual(ids[1], ids[2]);
    // Each id is the stored message of that admin.
    for (const [id, aid] of [[ids[1]!, 601], [ids[2]!, 602]] as const) {
      const status = await s.api('GET', `/api/v1/messages/${encodeURIComponent(id)}`);
      assert.equal(status.status, 200, JSON.stringify(status.body));
      assert.match(JSON.stringify(status.body), new RegExp(`admin:${aid}`));
    }
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^admin 603: delivered to 0 tabs; queued for tabs that connect later \(message \S+\)\n$/);
  });
});
