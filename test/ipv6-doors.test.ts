/**
 * Herald's doors with `host: '::1'` and `legacyHost: '::1'`, reached by real
 * clients at [::1]: a `ws` tab from the page http://[::1]:PORT, the SDK at
 * http://[::1]:PORT, the legacy TCP door without a token (loopback), and the
 * log lines that name a peer: `::1:40992` read as one address, so the legacy
 * door now writes `[::1]:40992` (RFC 3986 §3.2.2).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { BrowserSender } from '../src/sdk/index.js';
import { createHerald } from '../src/server/herald.js';
import { loadOptions } from '../src/server/options.js';
import { noIPv6 } from './helpers/ipv6.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { restartablePort } from './helpers/ports.js';
import { TestTab, until } from './helpers/ws-client.js';

describe('every door on ::1', { skip: noIPv6 }, () => {
  let server: TestServer;
  let port: string;
  let adminPort: number;
  before(async () => {
    adminPort = await restartablePort();
    server = await startHerald({ host: '::1', legacyHost: '::1', adminPort, heartbeatMs: 60000 });
    port = new URL(server.url).port;
  });
  after(() => server?.close());

  test('the URLs it reports put ::1 in brackets', () => {
    assert.equal(server.url, `http://[::1]:${port}`);
    assert.equal(server.wsUrl, `ws://[::1]:${port}`);
    assert.equal(server.herald.urls.legacy?.host, '::1');
  });

  test('a tab at ws://[::1]/ws/admin from the page http://[::1]:PORT gets what the SDK at http://[::1] sends', async () => {
    const tab = await server.tab('admin', 3, { origin: `http://[::1]:${port}` });
    await tab.nextOfType('WELCOME');
    const sender = new BrowserSender({ url: `http://[::1]:${port}`, apiToken: server.apiToken });
    assert.equal(await sender.hasConnectedAdmin(3), true);
    const result = await sender.sendMessage({ aid: 3, message: { TYPE: 'MESSAGE', TITLE: 'over ::1', TEXT: 'x' } });
    assert.ok(result);
    assert.equal(result.delivered, 1);
    assert.equal((await tab.nextOfType('MESSAGE')).TITLE, 'over ::1');
    tab.close();
  });

  test("the old daemon's admin port on ::1 takes a tab at ws://[::1]:PORT", async () => {
    assert.equal(server.herald.urls.adminPort, adminPort);
    const token = await server.token('admin', 6);
    const tab = await TestTab.open(`ws://[::1]:${adminPort}/`, { origin: `http://[::1]:${port}`, query: { token } });
    assert.equal((await tab.nextOfType('WELCOME')).ID, 6);
    tab.close();
  });

  test('the legacy door on ::1 takes MESSAGE without a token (loopback) and reaches the tab', async () => {
    const tab = await server.tab('admin', 4);
    await tab.nextOfType('WELCOME');
    const c = await RawLegacyClient.connect(server.herald.urls.legacy!.port, '::1');
    try {
      const r = await c.request('{"DATA":{"TEXT":"x","TITLE":"legacy over ::1","TYPE":"MESSAGE"},"ID":"4","TO":"ADMIN","TYPE":"MESSAGE"}');
      assert.deepEqual(r.answer, { TYPE: 'RESULT', RESULT: [1] });
      assert.equal((await tab.nextOfType('MESSAGE')).TITLE, 'legacy over ::1');
    } finally {
      c.destroy();
      tab.close();
    }
  });
});

describe('log lines name an IPv6 peer in brackets', { skip: noIPv6 }, () => {
  test('the legacy door logs [::1]:PORT, not ::1:PORT', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { lines.push(c.toString()); cb(); } }));
    const base = await startHerald({ legacyEnabled: false });
    const { dataDir, secret, apiToken } = base;
    await base.herald.close();
    const options = loadOptions({ env: {}, overrides: { host: '::1', port: 0, legacyHost: '::1', legacyPort: 0, dataDir, logLevel: 'info', secret, apiToken } });
    const herald = await createHerald(options, { logger });
    try {
      const { legacy } = await herald.listen();
      const c = await RawLegacyClient.connect(legacy!.port, '::1');
      const local = c.socket.localPort;
      // A web page's cross-protocol request: refused, and logged with the peer.
      c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      await c.closed;
      const refusal = () => lines.find((l) => l.includes('began like an HTTP request'));
      await until(() => refusal() !== undefined, 5000, 'the refusal in the log');
      assert.equal(JSON.parse(refusal()!).peer, `[::1]:${local}`);
    } finally {
      await herald.close();
      await base.close();
    }
  });
});

describe('the command audit names an IPv6 caller in brackets', { skip: noIPv6 }, () => {
  test('requestedBy of a refused COMMAND: [::1]:PORT over TCP, http:[::1] over POST /api/v1/legacy, api ::1 over the commands API', async () => {
    const s = await startHerald({ host: '::1', legacyHost: '::1', commandsAllow: ['echo'] });
    try {
      const c = await RawLegacyClient.connect(s.herald.urls.legacy!.port, '::1');
      const local = c.socket.localPort;
      try {
        const r = await c.request('{"TYPE":"COMMAND","PROGRAM":"rm","PROGRAM_ARGS":["-rf /"]}');
        assert.equal((r.answer as { CODE: string }).CODE, 'HERALD_ERR_BAD_REQUEST');
      } finally {
        c.destroy();
      }
      const overHttp = await s.api('POST', '/api/v1/legacy', { TYPE: 'COMMAND', AID: 9, PROGRAM: 'rm', ARGS: { timeout: 'soon' } });
      assert.equal(overHttp.body.CODE, 'HERALD_ERR_BAD_REQUEST');
      const viaApi = await s.api('POST', '/api/v1/commands', { aid: 9, program: 'rm', timeout: -1 });
      assert.equal(viaApi.status, 400);
      const { records } = (await s.api('GET', '/api/v1/commands/audit')).body as { records: Array<{ requestedBy?: string }> };
      assert.deepEqual(records.map((r) => r.requestedBy), ['api ::1', 'http:[::1]', `[::1]:${local}`]);
    } finally {
      await s.close();
    }
  });
});

describe('the http resolver at http://[::1]', { skip: noIPv6 }, () => {
  let panel: Server;
  before(async () => {
    // The panel's session endpoint, on ::1: session id in the cookie -> who.
    panel = createServer((req, res) => {
      req.resume();
      const admitted = req.headers.cookie === 'panel_session=admin-9';
      res.writeHead(admitted ? 200 : 401, { 'content-type': 'application/json' }).end(admitted ? JSON.stringify({ kind: 'admin', id: 9 }) : '');
    });
    panel.listen(0, '::1');
    await once(panel, 'listening');
  });
  after(() => {
    panel.closeAllConnections();
    panel.close();
  });

  test('admits a tab by the panel session it vouches for, and refuses an unknown one', async () => {
    const panelPort = (panel.address() as AddressInfo).port;
    const s = await startHerald({ host: '::1', legacyEnabled: false, authResolver: 'http', httpResolverUrl: `http://[::1]:${panelPort}/herald/session`, authCacheMs: 0, authNegativeCacheMs: 0 });
    try {
      const tab = await TestTab.open(`${s.wsUrl}/ws/admin`, { headers: { cookie: 'panel_session=admin-9' } });
      assert.equal((await tab.nextOfType('WELCOME')).ID, 9);
      tab.close();
      assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { headers: { cookie: 'panel_session=nobody' } })).status, 401);
    } finally {
      await s.close();
    }
  });
});
