/**
 * The Node SDK against a real Herald (test/helpers/server.ts) with real `ws`
 * tabs: the seed's API in TypeScript form, typed errors, local tokens that
 * the server accepts, and `enabled: false` touching no network.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { BrowserSender, HeraldSdkError, type SendResult } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

/** Strips Herald's delivery fields, to compare what the backend sent. */
function bare(frame: Record<string, unknown>) {
  const { SEQ: _s, EPOCH: _e, STREAM: _st, ...rest } = frame;
  return rest;
}

async function rejectsWith(p: Promise<unknown>, code: string, status?: number): Promise<HeraldSdkError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HeraldSdkError, `expected a HeraldSdkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (status !== undefined) assert.equal(e.status, status);
    return e;
  }
  assert.fail(`expected a rejection with ${code}`);
}

/** A TCP server that counts the connections it is offered (and, optionally, never answers them). */
async function countingServer(): Promise<{ server: Server; port: number; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}

describe('BrowserSender against a running Herald', () => {
  let s: TestServer;
  let sender: BrowserSender;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
    sender = new BrowserSender({ url: s.url, apiToken: s.apiToken });
  });
  after(() => s.close());

  test('the seed\'s example, line by line: is admin 1 online? then send the test notification', async () => {
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const testAid = 1;
    const testNotification = { TYPE: 'MESSAGE', TITLE: 'Test notification', TEXT: 'Just<br/>some<br/>text' };
    const testAdminConnected = await sender.hasConnectedAdmin(testAid);
    assert.equal(testAdminConnected, true);
    const result = await sender.sendMessage({ aid: testAid, message: testNotification });
    assert.ok(result);
    assert.equal(result.delivered, 1);
    assert.equal(result.queued, true);
    assert.equal(result.results?.[0]?.kind, 'admin');
    assert.equal(typeof result.results?.[0]?.messageId, 'string');
    const got = await tab.nextOfType('MESSAGE');
    assert.deepEqual(bare(got), testNotification);
    assert.equal(typeof got.SEQ, 'number');
    tab.close();
  });

  test('isConnected and ping: true against the server, false (never a throw) when unreachable or the token is wrong', async () => {
    assert.equal(await sender.isConnected(), true);
    assert.deepEqual(await sender.ping(), { ok: true, version: (await sender.ping())?.version });
    const wrong = new BrowserSender({ url: s.url, apiToken: 'not-the-api-token-at-all' });
    assert.equal(await wrong.isConnected(), false);
    await rejectsWith(wrong.ping(), 'HERALD_ERR_UNAUTHORIZED', 401);
    const closed = await countingServer();
    const port = closed.port;
    await closed.close();
    const nowhere = new BrowserSender({ url: `http://127.0.0.1:${port}`, apiToken: 'whatever-token-123' });
    assert.equal(await nowhere.isConnected(), false);
    const e = await rejectsWith(nowhere.hasConnectedAdmin(1), 'HERALD_ERR_UNREACHABLE', 0);
    assert.match(e.message, /ECONNREFUSED/);
    // A port fetch never connects to (the Fetch standard's bad ports): nothing was sent, so UNREACHABLE, not CONNECTION_LOST.
    const badPort = new BrowserSender({ url: 'http://127.0.0.1:6000', apiToken: 'whatever-token-123', retryForMs: 0 });
    const refused = await rejectsWith(badPort.sendMessage({ aid: 1, message: 'x' }), 'HERALD_ERR_UNREACHABLE', 0);
    assert.match(refused.message, /bad ports/);
  });

  test('presence: connectedAdmins, connectedUsers, hasConnectedUser, connectedTabs', async () => {
    const a = [await s.tab('admin', 21), await s.tab('admin', 21), await s.tab('admin', 21)];
    const u = await s.tab('user', 42);
    await Promise.all([...a, u].map((t) => t.nextOfType('WELCOME')));
    assert.equal(await sender.connectedTabs({ aid: 21 }), 3);
    assert.ok((await sender.connectedAdmins()).includes(21));
    assert.deepEqual(await sender.connectedUsers(), [42]);
    assert.equal(await sender.hasConnectedUser(42), true);
    assert.equal(await sender.hasConnectedUser(43), false);
    assert.equal(await sender.hasConnectedAdmin(22), false);
    // Three tabs get it three times; close one and two remain.
    const r = (await sender.sendMessage({ aid: 21, message: { TYPE: 'MESSAGE', TITLE: 'three', TEXT: 'tabs' } })) as SendResult;
    assert.equal(r.delivered, 3);
    await Promise.all(a.map((t) => t.nextOfType('MESSAGE')));
    a[0]!.close();
    await a[0]!.closed;
    await until(async () => (await sender.connectedTabs({ aid: 21 })) === 2, 5000, 'two tabs left');
    for (const t of [...a, u]) t.close();
  });

  test('message shapes: a plain string stays a string; a string with a title is wrapped; TYPE defaults to MESSAGE; Cyrillic intact', async () => {
    const tab = await s.tab('admin', 31);
    await tab.nextOfType('WELCOME');
    await sender.sendMessage({ aid: 31, message: 'просто текст' });
    assert.equal(await tab.next((f) => typeof f === 'string'), 'просто текст');
    await sender.sendMessage({ aid: 31, message: 'Текст', title: 'Новый тикет от абонента 42' });
    const wrapped = await tab.nextOfType('MESSAGE');
    assert.deepEqual(bare(wrapped), { TYPE: 'MESSAGE', TITLE: 'Новый тикет от абонента 42', TEXT: 'Текст' });
    await sender.sendMessage({ aid: 31, message: { TITLE: 'no type', TEXT: 'x', MODULE: 'Msgs', SENDER: { UID: 42, LOGIN: 'abon' } } });
    const typed = await tab.next((f) => f?.TITLE === 'no type');
    assert.deepEqual(bare(typed), { TYPE: 'MESSAGE', TITLE: 'no type', TEXT: 'x', MODULE: 'Msgs', SENDER: { UID: 42, LOGIN: 'abon' } });
    await sender.sendMessage({ aid: 31, message: { TYPE: 'EVENT', TEXT: 'custom' }, title: 'filled' });
    assert.deepEqual(bare(await tab.nextOfType('EVENT')), { TYPE: 'EVENT', TEXT: 'custom', TITLE: 'filled' });
    tab.close();
  });

  test('lists and broadcasts: aids, uids, all admins', async () => {
    const t1 = await s.tab('admin', 51);
    const t2 = await s.tab('admin', 52);
    await Promise.all([t1, t2].map((t) => t.nextOfType('WELCOME')));
    const list = (await sender.sendMessage({ aids: [51, 52, 53], message: { TYPE: 'MESSAGE', TEXT: 'list' }, ttl: 0 })) as SendResult;
    assert.equal(list.delivered, 2);
    assert.deepEqual(list.results?.map((r) => [r.id, r.delivered]), [[51, 1], [52, 1], [53, 0]]);
    const all = (await sender.sendMessage({ all: 'admins', message: { TYPE: 'MESSAGE', TEXT: 'everyone' } })) as SendResult;
    assert.ok(all.delivered >= 2);
    await t1.next((f) => f?.TEXT === 'everyone');
    await t2.next((f) => f?.TEXT === 'everyone');
    t1.close();
    t2.close();
  });

  test('ttl: 0 to nobody reaches nobody and is not kept; the default keeps it, and messageStatus reports it', async () => {
    const none = (await sender.sendMessage({ aid: 61, message: { TYPE: 'MESSAGE', TEXT: 'gone' }, ttl: 0 })) as SendResult;
    assert.equal(none.delivered, 0);
    assert.equal(none.queued, false);
    const kept = (await sender.sendMessage({ aid: 61, message: { TYPE: 'MESSAGE', TEXT: 'kept' }, ttl: 60 })) as SendResult;
    assert.equal(kept.delivered, 0);
    assert.equal(kept.queued, true);
    const id = kept.results?.[0]?.messageId;
    assert.ok(id);
    const status = await sender.messageStatus(id);
    assert.equal(status?.id, id);
    assert.equal(status?.acknowledged, false);
    assert.equal(status?.expired, false);
    assert.equal(await sender.messageStatus('no-such-message'), null);
  });

  test('idempotencyKey: a retried send is delivered once', async () => {
    const tab = await s.tab('admin', 65);
    await tab.nextOfType('WELCOME');
    const first = (await sender.sendMessage({ aid: 65, message: { TYPE: 'MESSAGE', TEXT: 'once' }, idempotencyKey: 'k-65' })) as SendResult;
    const again = (await sender.sendMessage({ aid: 65, message: { TYPE: 'MESSAGE', TEXT: 'once' }, idempotencyKey: 'k-65' })) as SendResult;
    assert.equal(first.results?.[0]?.duplicate, false);
    assert.equal(again.results?.[0]?.duplicate, true);
    assert.equal(again.delivered, 0);
    tab.close();
  });

  test('disconnect closes every tab of the person with the close frame and the reason', async () => {
    const tab = await s.tab('admin', 71);
    await tab.nextOfType('WELCOME');
    assert.equal(await sender.disconnect({ aid: 71, reason: 'logged out' }), 1);
    const notice = await tab.nextOfType('close');
    assert.equal(notice.REASON, 'logged out');
    const closed = await tab.closed;
    assert.equal(closed.reason, 'logged out');
  });

  test('createConnectToken: minted locally with the secret, or by the server without it; both admit a tab', async () => {
    const local = new BrowserSender({ url: s.url, apiToken: s.apiToken, secret: s.secret });
    const lt = await local.createConnectToken({ aid: 81, ttl: 120 });
    assert.ok(lt);
    assert.ok(Math.abs(lt.expiresAt - (Date.now() + 120_000)) < 2000);
    const tab = await TestTab.open(`${s.wsUrl}/ws/admin`, { query: { token: lt.token } });
    const welcome = await tab.nextOfType('WELCOME');
    assert.deepEqual([welcome.KIND, welcome.ID], ['admin', 81]);
    tab.close();

    const remote = await sender.createConnectToken({ uid: 82 });
    assert.ok(remote);
    assert.ok(remote.expiresAt > Date.now());
    const userTab = await TestTab.open(`${s.wsUrl}/ws/user`, { query: { token: remote.token } });
    assert.deepEqual([(await userTab.nextOfType('WELCOME')).KIND, userTab.frames[0].ID], ['user', 82]);
    userTab.close();
    // A user's token does not open the admin endpoint.
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: remote.token } })).status, 401);
    // A token signed with another secret is refused.
    const other = new BrowserSender({ url: s.url, apiToken: s.apiToken, secret: 'x'.repeat(40) });
    const forged = await other.createConnectToken({ aid: 81 });
    assert.ok(forged);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: forged.token } })).status, 401);
  });

  test('typed errors: bad arguments fail before the network; the server\'s validation code comes through', async () => {
    await rejectsWith(sender.sendMessage({ aid: 1, uid: 2, message: 'x' } as never), 'HERALD_ERR_BAD_ARGUMENT', 0);
    await rejectsWith(sender.sendMessage({ message: 'x' } as never), 'HERALD_ERR_BAD_ARGUMENT');
    await rejectsWith(sender.sendMessage({ aid: 0, message: 'x' }), 'HERALD_ERR_BAD_ARGUMENT');
    await rejectsWith(sender.sendMessage({ aid: 1, message: 'x', ttl: -1 }), 'HERALD_ERR_BAD_ARGUMENT');
    await rejectsWith(sender.hasConnectedAdmin(1.5), 'HERALD_ERR_BAD_ARGUMENT');
    const e = await rejectsWith(sender.sendMessage({ aid: 1, message: { TYPE: 'X'.repeat(100) } }), 'HERALD_ERR_VALIDATION', 400);
    assert.match(e.message, /TYPE|message/);
    // The server's 31-day bound on a token, checked before the network too.
    await rejectsWith(sender.createConnectToken({ aid: 1, ttl: 400 * 86400 }), 'HERALD_ERR_BAD_ARGUMENT', 0);
    // And its 1 s floor, the same whether the token is signed locally or by the server.
    const local = new BrowserSender({ url: s.url, apiToken: s.apiToken, secret: s.secret });
    for (const minter of [sender, local]) await rejectsWith(minter.createConnectToken({ aid: 1, ttl: 0.5 }), 'HERALD_ERR_BAD_ARGUMENT', 0);
    assert.ok(await local.createConnectToken({ aid: 1, ttl: 1 }));
  });

  test('constructor: a TypeError names the bad option', () => {
    assert.throws(() => new BrowserSender({ apiToken: 'x' }), /option "url"/);
    assert.throws(() => new BrowserSender({ url: 'ftp://x', apiToken: 'x' }), /option "url"/);
    // A bare IPv6 address reads as a host with several ports: the error names the fix.
    assert.throws(() => new BrowserSender({ url: 'http://::1:19443', apiToken: 'x' }), /option "url" is not a URL: http:\/\/::1:19443 \(an IPv6 address goes in brackets: http:\/\/\[::1\]:19443\)$/);
    assert.throws(() => new BrowserSender({ url: 'http://[::1:19443', apiToken: 'x' }), /^TypeError: option "url" is not a URL: http:\/\/\[::1:19443$/);
    assert.throws(() => new BrowserSender({ url: s.url }), /option "apiToken"/);
    // fetch refused a non-ASCII header on every call, and the error read as a lost connection.
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: 'пароль-пароль-пароль' }), /option "apiToken" must be printable ASCII/);
    // A URL that does not parse is quoted without its user information.
    assert.throws(() => new BrowserSender({ url: 'http://bob:Passw0rd@127.0.0.1:99999', apiToken: 'x' }), (e: Error) => /not a URL: http:\/\/\(user info\)@127\.0\.0\.1:99999$/.test(e.message) && !e.message.includes('Passw0rd'));
    // A password holding `@` or `/` is not shown in part either.
    for (const url of ['http://bob:p@ssw0rd@127.0.0.1:99999', 'http://bob:pa/ss@127.0.0.1:99999']) {
      assert.throws(() => new BrowserSender({ url, apiToken: 'x' }), (e: Error) => e.message.endsWith('(user info)@127.0.0.1:99999') && !/ssw0rd|pa\/ss|bob|p@ss/.test(e.message), url);
    }
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: 'x', timeoutMs: 0 }), /option "timeoutMs"/);
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: 'x', secret: 'short' }), /option "secret"/);
    assert.doesNotThrow(() => new BrowserSender({ enabled: false }));
    // A switch read from a configuration file or the environment: "false" and "off" were taken for on.
    for (const v of ['false', 'off', 'true', '', 'no', 2, null]) {
      assert.throws(() => new BrowserSender({ url: s.url, apiToken: 'x', enabled: v as never }), /^TypeError: option "enabled" must be true or false \(or 1 or 0\), got /, String(v));
    }
    for (const v of [0, '0'] as const) assert.equal(new BrowserSender({ enabled: v }).enabled, false);
    for (const v of [1, '1', true, undefined] as const) assert.equal(new BrowserSender({ url: s.url, apiToken: 'x', enabled: v }).enabled, true);
  });
});

describe('BrowserSender without a working server', () => {
  test('a server that accepts and never answers: HERALD_ERR_TIMEOUT after timeoutMs', async () => {
    const silent = await countingServer();
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${silent.port}`, apiToken: 'whatever-token-123', timeoutMs: 200 });
      const started = Date.now();
      await rejectsWith(sender.connectedAdmins(), 'HERALD_ERR_TIMEOUT', 0);
      const took = Date.now() - started;
      assert.ok(took >= 150 && took < 3000, `took ${took} ms`);
      assert.equal(await sender.isConnected(), false);
    } finally {
      await silent.close();
    }
  });

  test('a proxy\'s HTML error page is HERALD_ERR_BAD_RESPONSE with its status, not a JSON parse crash', async () => {
    const proxy = createHttpServer((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html><body>Bad Gateway</body></html>');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/herald`, apiToken: 'whatever-token-123' });
      const e = await rejectsWith(sender.sendMessage({ aid: 1, message: 'x' }), 'HERALD_ERR_BAD_RESPONSE', 502);
      assert.match(e.message, /\/herald\/api\/v1\/send: HTTP 502/);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  test('enabled: false (WEBSOCKET_ENABLED off): every method is a no-op and no connection is attempted', async () => {
    const counter = await countingServer();
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${counter.port}`, apiToken: 'whatever-token-123', enabled: false, secret: 'y'.repeat(40), aid: 1 });
      assert.equal(sender.enabled, false);
      assert.equal(await sender.isConnected(), false);
      assert.equal(await sender.ping(), null);
      assert.equal(await sender.status(), null);
      assert.equal(await sender.hasConnectedAdmin(1), false);
      assert.equal(await sender.hasConnectedUser(1), false);
      assert.equal(await sender.connectedTabs({ aid: 1 }), 0);
      assert.deepEqual(await sender.connectedAdmins(), []);
      assert.deepEqual(await sender.connectedUsers(), []);
      assert.equal(await sender.sendMessage({ aid: 1, message: { TYPE: 'MESSAGE', TEXT: 'x' } }), false);
      assert.equal(await sender.jsonRequest({ TYPE: 'PING' }), false);
      assert.equal(await sender.disconnect({ aid: 1 }), false);
      assert.equal(await sender.messageStatus('x'), null);
      assert.equal(await sender.runInBackground('ping', { args: ['-c', '1', '127.0.0.1'] }), false);
      assert.equal(await sender.commandStatus('x'), null);
      assert.deepEqual(await sender.listCommands(), []);
      assert.equal(await sender.cancelCommand('x'), false);
      assert.equal(await sender.createConnectToken({ aid: 1 }), false);
      // Give a stray connection attempt the time it would need to land, then check nothing came.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(counter.connections(), 0);
      // The counter does count: a sender that is enabled reaches it.
      const enabled = new BrowserSender({ url: `http://127.0.0.1:${counter.port}`, apiToken: 'whatever-token-123', timeoutMs: 100 });
      assert.equal(await enabled.isConnected(), false);
      await until(() => counter.connections() > 0, 2000, 'a connection to the counter');
    } finally {
      await counter.close();
    }
  });
});
