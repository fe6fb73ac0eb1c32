/**
 * What a running Herald tells its operator when it cannot do its work:
 * `herald status` and `herald ping` give the verdict of /healthz (its store
 * lost: every stored send refused with 503) with the cause, and exit 3; the
 * status says when the session resolver fails (every tab refused with 503),
 * which /healthz, about the store only, does not; and at level debug the API
 * logs what it refuses (a wrong token, a body that is not JSON), never the
 * token or the body.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseCookies } from '../src/server/auth/session-resolver.js';
import { runCli } from './helpers/cli.js';
import { FaultServer } from './helpers/fault-server.js';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';

/** `herald status` / `ping` exit with this when Herald answers but is not healthy (docs/cli.md). */
const UNHEALTHY = 3;

describe('herald status and ping while the store can store nothing more', () => {
  let s: FaultServer;
  let env: Record<string, string>;
  before(async () => {
    s = await FaultServer.create();
    await s.start();
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.dispose());

  test('healthy: status says so and exits 0; then the store file is deleted, a send is refused, and status, ping and /healthz all say the server is not healthy', async () => {
    const well = await runCli(['status', '--json'], { env });
    assert.equal(well.code, 0, well.stderr);
    const before = JSON.parse(well.stdout) as Record<string, any>;
    assert.equal(before.healthy, true);
    assert.equal(before.problem, undefined);
    assert.equal(before.storeCounts.writesFailing, false);
    const pretty = await runCli(['status'], { env });
    assert.equal(pretty.code, 0, pretty.stderr);
    assert.match(pretty.stdout, /^ {2}health {7}healthy$/m);

    rmSync(join(s.dataDir, 'herald.sqlite'));
    const refused = await s.sendBatch([{ to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'lost' }, ttl: 3600 }]);
    assert.equal(refused.status, 503, JSON.stringify(refused.body));
    const healthz = await fetch(`${s.url}/healthz`);
    assert.equal(healthz.status, 503);
    assert.match(((await healthz.json()) as { error: { message: string } }).error.message, /^the store can store nothing more: see the server log$/);

    const json = await runCli(['status', '--json'], { env });
    assert.equal(json.code, UNHEALTHY, `status --json must exit ${UNHEALTHY}: ${json.stdout}${json.stderr}`);
    const status = JSON.parse(json.stdout) as Record<string, any>;
    assert.equal(status.healthy, false);
    // The same verdict as /healthz, and the cause (behind the API token), which /healthz leaves to the log.
    assert.match(status.problem, /^the store can store nothing more: the store file .*herald\.sqlite .*deleted or replaced/);
    assert.equal(status.storeCounts.writesFailing, true, 'writes fail for good: writesFailing must say so');
    assert.match(json.stderr, /^herald: Herald at .* is not healthy: the store can store nothing more/);

    const text = await runCli(['status'], { env });
    assert.equal(text.code, UNHEALTHY);
    assert.match(text.stdout, /^ {2}health {7}NOT HEALTHY: the store can store nothing more/m);

    const ping = await runCli(['ping'], { env });
    assert.equal(ping.code, UNHEALTHY, `ping must not read as "all is well": ${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /^pong from Herald /);
    assert.match(ping.stderr, /answers but is not healthy: the store can store nothing more/);
  });
});

describe('the status while the session resolver fails', () => {
  let panel: Server;
  /** What the panel answers now: `down` (500) or `up` (admin 7). */
  let state: 'down' | 'up' = 'down';
  let h: AuthHerald;
  const apiToken = 'ops-status-health-api-token-0123';
  let env: Record<string, string>;

  before(async () => {
    panel = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (state === 'up' && parseCookies(req.headers.cookie).get('s') === 'seven') res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"admin","id":7}');
        else if (state === 'up') res.writeHead(401).end();
        else res.writeHead(500).end('database down');
      });
    });
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    h = await startAuthHerald({
      authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`,
      authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 0, apiToken,
    });
    env = { HERALD_URL: h.herald.urls.http, HERALD_API_TOKEN: apiToken };
  });
  after(async () => {
    await h.close();
    panel.closeAllConnections();
    panel.close();
  });

  const handshake = () => h.status('admin', { headers: { cookie: 's=seven' } });
  const status = async () => {
    const r = await runCli(['status', '--json'], { env });
    return { code: r.code, body: JSON.parse(r.stdout) as Record<string, any> };
  };

  test('no failure yet: null; every tab refused 503: the status says since when, how many, and why; /healthz (the store) stays 200', async () => {
    assert.equal((await status()).body.resolverFailures, null);
    const t0 = Date.now();
    assert.equal(await handshake(), 503);
    assert.equal(await handshake(), 503);
    const { code, body } = await status();
    assert.equal(code, 0, 'the store is well: the verdict is the store\'s, as /healthz\'s');
    assert.equal(body.healthy, true);
    assert.equal((await fetch(`${h.herald.urls.http}/healthz`)).status, 200);
    const f = body.resolverFailures;
    assert.equal(f.failing, true);
    assert.equal(f.count, 2);
    assert.equal(f.total, 2);
    assert.equal(f.reason, 'session service unavailable');
    assert.ok(f.since >= t0 && f.since <= f.lastAt && f.lastAt <= Date.now(), JSON.stringify(f));
    // A handshake refused for want of a cookie asked the panel nothing: the outage goes on.
    assert.equal(await h.status('admin'), 401);
    assert.equal((await status()).body.resolverFailures.failing, true, 'a refusal without a look-up does not end the outage');
    const text = await runCli(['status'], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ {2}resolver {5}http; look-ups FAILING since \d{4}-\d\d-\d\dT[\d:.]+Z: 2 failed \(session service unavailable\)/m);
  });

  test('the panel answers again: not failing, the last outage kept; a new outage counts from its own start', async () => {
    state = 'up';
    assert.equal(await handshake(), 101);
    let f = (await status()).body.resolverFailures;
    assert.equal(f.failing, false);
    assert.equal(f.count, 2);
    const firstSince = f.since as number;
    state = 'down';
    assert.equal(await handshake(), 503);
    f = (await status()).body.resolverFailures;
    assert.equal(f.failing, true);
    assert.equal(f.count, 1, 'the run of failures since the panel last answered');
    assert.equal(f.total, 3);
    assert.ok(f.since > firstSince, JSON.stringify(f));
    assert.equal(f.since, f.lastAt, 'one failure: its run starts and ends with it');
  });
});

describe('API refusals at level debug', () => {
  let h: AuthHerald;
  const apiToken = 'ops-debug-api-token-0123456789ab';
  before(async () => { h = await startAuthHerald({ apiToken, logLevel: 'debug' }); });
  after(() => h.close());

  test('a wrong API token (401) and a body that is not JSON (400) each leave a debug line: status, code, method, route; never the token or the body', async () => {
    const wrongToken = 'wrong-token-that-must-not-be-logged';
    const base = h.herald.urls.http;
    assert.equal((await fetch(`${base}/api/v1/status`, { headers: { authorization: `Bearer ${wrongToken}` } })).status, 401);
    const body = '{"to":{"aid":1},"message":"secret-body-text"';
    const bad = await fetch(`${base}/api/v1/send`, { method: 'POST', headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' }, body });
    assert.equal(bad.status, 400);
    const lines = h.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request refused');
    const pick = (l: Record<string, unknown>) => ({ level: l.level, method: l.method, route: l.route, status: l.status, code: l.code });
    assert.deepEqual(lines.map(pick), [
      { level: 20, method: 'GET', route: '/api/v1/status', status: 401, code: 'HERALD_ERR_UNAUTHORIZED' },
      { level: 20, method: 'POST', route: '/api/v1/send', status: 400, code: 'HERALD_ERR_BAD_REQUEST' },
    ]);
    assert.ok(!h.log().includes(wrongToken), 'the token is never logged');
    assert.ok(!h.log().includes('secret-body-text'), 'nor the body');
  });
});
