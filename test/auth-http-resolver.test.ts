/**
 * The http resolver end to end: a real panel (node:http on 127.0.0.1) that
 * knows sessions by its own cookie or an ADMINSID header, a real Herald
 * asking it, real `ws` tabs. Includes a panel that answers too slowly.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { parseCookies } from '../src/server/auth/session-resolver.js';
import { startAuthHerald, within, type AuthHerald } from './helpers/auth-herald.js';

interface PanelRequest {
  cookie: string | undefined;
  adminsid: string | undefined;
  body: unknown;
}

/** The panel's session table: session id → who. */
const sessions = new Map<string, { kind: 'admin' | 'user'; id: number }>([
  ['panel-admin-3', { kind: 'admin', id: 3 }],
  ['panel-admin-5', { kind: 'admin', id: 5 }],
  ['panel-user-8', { kind: 'user', id: 8 }],
  ['panel-broken', { kind: 'admin', id: 0 }],
  ['panel-warm-up', { kind: 'admin', id: 9 }],
]);

let mode: 'normal' | 'slow' | 'error' | 'huge' = 'normal';
const requests: PanelRequest[] = [];

async function readBody(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += (chunk as Buffer).toString();
  return JSON.parse(text);
}

function startPanel(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    requests.push({ cookie: req.headers.cookie, adminsid: req.headers.adminsid as string | undefined, body });
    if (mode === 'slow') return; // never answers: Herald's timeout must decide
    if (mode === 'error') {
      res.writeHead(500).end('database is down');
      return;
    }
    if (mode === 'huge') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id: 3, pad: 'x'.repeat(20_000) }));
      return;
    }
    const sid = (req.headers.adminsid as string | undefined) ?? parseCookies(req.headers.cookie).get('panel_session');
    const who = sid === undefined ? undefined : sessions.get(sid);
    if (!who) {
      res.writeHead(401).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(who));
  });
  server.listen(0, '127.0.0.1');
  return once(server, 'listening').then(() => server);
}

describe('http resolver end to end', () => {
  let panel: Server;
  let h: AuthHerald;
  // Not much shorter: the first look-up of a fresh server (a new connection to the panel, code not yet compiled) took over 300 ms on a loaded machine, and the tab got 503.
  const TIMEOUT_MS = 1000;
  const RECHECK_MS = 200;

  before(async () => {
    panel = await startPanel();
    const port = (panel.address() as AddressInfo).port;
    h = await startAuthHerald({
      authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${port}/herald/session`, httpResolverHeaders: ['ADMINSID'],
      httpResolverTimeoutMs: TIMEOUT_MS, authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: RECHECK_MS,
    });
    // Look-ups before the tests, whatever they answer, until one has reached the panel: the first of
    // a fresh process also loads node's fetch and compiles its path, and under the whole suite's load
    // that took over the 1000 ms once (the first test's tab got 503). A look-up Herald gives up on
    // before its request is out never reaches the panel (a CI run waited 10 s for one that had not),
    // and one it gives up on later still reaches it afterwards: hence a session of its own, and
    // waiting for it at the panel. What is tested is how Herald treats the panel's answers.
    const warmUp = 'panel_session=panel-warm-up';
    const reached = (): boolean => requests.some((r) => r.cookie === warmUp);
    const outcomes: number[] = [];
    for (const deadline = Date.now() + 30_000; !reached();) {
      assert.ok(Date.now() < deadline, `a warm-up look-up reached the panel (statuses: ${outcomes.join(', ')})`);
      outcomes.push(await h.status('admin', { headers: { cookie: warmUp } }));
      for (const wait = Date.now() + 1000; !reached() && Date.now() < wait;) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  });
  after(async () => {
    await h.close();
    panel.closeAllConnections();
    panel.close();
  });

  test('a 200 {kind,id} admits; the panel gets the cookies, the chosen header and the endpoint kind', async () => {
    requests.length = 0;
    const tab = await h.open('admin', { headers: { cookie: 'lang=en; panel_session=panel-admin-3' } });
    assert.deepEqual(await tab.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['admin', 3]);
    // Found by content, not position: the periodic re-check may ask in between.
    const first = requests.find((r) => r.cookie?.includes('panel-admin-3'));
    assert.equal(first?.cookie, 'lang=en; panel_session=panel-admin-3');
    assert.deepEqual(first?.body, { kind: 'admin' });
    const byHeader = await h.open('admin', { headers: { ADMINSID: 'panel-admin-5' } });
    assert.equal((await byHeader.nextOfType('WELCOME')).ID, 5);
    assert.ok(requests.some((r) => r.adminsid === 'panel-admin-5' && r.cookie === undefined), 'ADMINSID forwarded');
    const user = await h.open('user', { headers: { cookie: 'panel_session=panel-user-8' } });
    assert.deepEqual(await user.nextOfType('WELCOME').then((w) => [w.KIND, w.ID]), ['user', 8]);
    for (const t of [tab, byHeader, user]) t.close();
  });

  test('401 from the panel, no credentials, or a session of the other kind: 401 before the upgrade', async () => {
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=unknown' } }), 401);
    assert.equal(await h.status('admin'), 401);
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-user-8' } }), 401);
  });

  test('a 500, or an answer that is not {kind,id}: 503', async () => {
    mode = 'error';
    try {
      assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-admin-3' } }), 503);
    } finally {
      mode = 'normal';
    }
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-broken' } }), 503);
    // Past 16 KiB the answer is not read on; the log says so, where it said "request failed" as for a network error.
    mode = 'huge';
    try {
      assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-admin-3' } }), 503);
      assert.match(h.log(), /session look-up failed: the answer is longer than 16384 bytes/);
    } finally {
      mode = 'normal';
    }
  });

  test('a panel slower than the timeout: 503 after about the timeout, and the tabs it admitted earlier stay', async () => {
    const open = await h.open('admin', { headers: { cookie: 'panel_session=panel-admin-3' } });
    await open.nextOfType('WELCOME');
    mode = 'slow';
    try {
      const t0 = Date.now();
      assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-admin-5' } }), 503);
      const elapsed = Date.now() - t0;
      assert.ok(elapsed >= TIMEOUT_MS - 20 && elapsed < TIMEOUT_MS + 1500, `answered after ${elapsed} ms`);
      const round = await h.herald.watcher!.checkNow();
      assert.ok(round.unavailable >= 1);
      assert.equal(open.ws.readyState, open.ws.OPEN);
    } finally {
      mode = 'normal';
    }
    // Recovered: admits again.
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=panel-admin-5' } }), 101);
    open.close();
  });

  test('a session the panel forgets closes its tab with 4401 "session ended" within the re-check interval', async () => {
    sessions.set('panel-admin-6', { kind: 'admin', id: 6 });
    const tab = await h.open('admin', { headers: { cookie: 'panel_session=panel-admin-6' } });
    await tab.nextOfType('WELCOME');
    sessions.delete('panel-admin-6');
    const closed = await within(tab.closed, RECHECK_MS * 2 + 1000, 'the tab to close');
    assert.deepEqual(closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
  });

  test('no session id reaches the log', () => {
    const log = h.log();
    assert.match(log, /session look-up failed/);
    for (const sid of sessions.keys()) assert.ok(!log.includes(sid), 'the log contains a session id');
    assert.ok(!log.includes('panel-admin-6'));
  });
});

describe('http resolver: a URL fetch cannot use', () => {
  const PASSWORD = 'S3cretPassw0rd';

  test('a user name or password in httpResolverUrl, or a URL that does not parse, stops the start with a configuration error that does not quote it', async () => {
    // fetch refuses both for every request: each handshake was answered 503, for ever.
    for (const url of [`http://herald:${PASSWORD}@127.0.0.1:1/session`, `https://${PASSWORD}@127.0.0.1/session`, `http://127.0.0.1:99999/${PASSWORD}`, `http://[zz${PASSWORD}/`]) {
      await assert.rejects(startAuthHerald({ authResolver: 'http', httpResolverUrl: url }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'HERALD_ERR_CONFIG', `${url}: ${e.message}`);
        assert.match(e.message, /option "httpResolverUrl"/);
        assert.ok(!e.message.includes(PASSWORD), `${url}: the error quotes the URL`);
        return true;
      }, url);
    }
  });

  test('a panel that refuses the connection: 503, and the log says why (ECONNREFUSED)', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    const h = await startAuthHerald({ authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${port}/session`, authCacheMs: 0, authNegativeCacheMs: 0 });
    try {
      assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=x' } }), 503);
      assert.match(h.log(), /session look-up failed: request failed \(ECONNREFUSED\)/);
    } finally {
      await h.close();
    }
  });
});
