/**
 * Deployment shape 2 (README, docs/deploy.md): Herald on loopback behind the
 * panel's TLS-terminating nginx, configured with deploy/herald.json. A real
 * nginx (Debian's) runs from deploy/nginx.conf with only its ports, upstream
 * address and certificate paths replaced; the certificate is a self-signed
 * one made with openssl for 127.0.0.1. Through it: the library and nothing
 * else of Herald is public, a wss:// tab gets WELCOME and what the API sends,
 * the Origin policy and the library's credential probe still answer, an idle
 * tab outlives nginx's read timeout thanks to Herald's heartbeats, a real
 * Chromium page on the panel's origin loads /herald/herald.js and shows a toast,
 * and the browser's address reaches the panel only through X-Forwarded-For.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import type { Browser } from 'playwright-core';
import { startHerald, type TestServer } from './helpers/server.js';
import { restartablePort } from './helpers/ports.js';
import { browserSkipReason, launchBrowser, newPage, waitForState } from './helpers/browser.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NGINX = '/usr/sbin/nginx';
const OPENSSL = '/usr/bin/openssl';

/**
 * Whether these tests can run. Under CI=true a missing nginx is an error
 * (.ci/run installs it); elsewhere the tests skip, saying why.
 */
function nginxSkipReason(): string | false {
  const missing = [NGINX, OPENSSL].filter((p) => !existsSync(p));
  if (missing.length === 0) return false;
  const why = `${missing.join(' and ')} missing: apt-get update && apt-get install -y nginx openssl`;
  if (process.env.CI === 'true') throw new Error(why);
  console.log(`# skipping deployment tests: ${why}`);
  return why;
}

/** deploy/herald.json, with what is the machine's own (ports, paths) left to the test. */
function deployOptions(origin: string): Record<string, unknown> {
  const file = JSON.parse(readFileSync(join(ROOT, 'deploy/herald.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(file.demo, false, 'deploy/herald.json turns the demo off');
  assert.equal(file.host, '127.0.0.1', 'deploy/herald.json keeps the public listener on loopback');
  assert.equal(file.legacyHost, '127.0.0.1', 'deploy/herald.json keeps the legacy listener on loopback');
  const { port: _p, legacyPort: _l, dataDir: _d, commandsCwd: _c, ...rest } = file;
  return { ...rest, publicUrl: `${origin}/herald`, allowedOrigins: [origin] };
}

/** A self-signed certificate for 127.0.0.1 (and localhost), made now. */
function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync(OPENSSL, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl failed: ${r.stderr}`);
  return { cert, key };
}

interface Nginx {
  port: number;
  origin: string;
  stop(): Promise<void>;
}

/**
 * deploy/nginx.conf with the machine's own values swapped in; each swap must
 * find its text, so a change to the example that the test no longer matches
 * fails here instead of testing something else.
 */
function siteConfig(o: { port: number; heraldPort: number; panelPort: number; cert: string; key: string; readTimeout?: string }): string {
  let conf = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8');
  const swap = (from: string | RegExp, to: string) => {
    const next = conf.replace(from, to);
    assert.notEqual(next, conf, `deploy/nginx.conf no longer holds ${String(from)}`);
    conf = next;
  };
  swap('listen 443 ssl http2;', `listen 127.0.0.1:${o.port} ssl http2;`);
  swap(/\n\s*listen \[::\]:443 ssl http2;/, '');
  swap('/etc/ssl/certs/panel.example.net.pem', o.cert);
  swap('/etc/ssl/private/panel.example.net.key', o.key);
  swap('server 127.0.0.1:19443;', `server 127.0.0.1:${o.heraldPort};`);
  swap('proxy_pass http://127.0.0.1:8080;', `proxy_pass http://127.0.0.1:${o.panelPort};`);
  if (o.readTimeout) {
    swap('proxy_read_timeout 75s;', `proxy_read_timeout ${o.readTimeout};`);
    swap('proxy_send_timeout 75s;', `proxy_send_timeout ${o.readTimeout};`);
  }
  return conf;
}

/** Runs nginx in the foreground as a child process, everything of it (pid, logs, temp files) in a temp dir. */
async function startNginx(o: { port: number; heraldPort: number; panelPort: number; cert: string; key: string; readTimeout?: string }): Promise<Nginx> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-nginx-'));
  // Run as root, nginx's workers run as nobody: they must reach their temp dirs in here.
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'site.conf'), siteConfig(o));
  writeFileSync(join(dir, 'nginx.conf'), [
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'worker_processes 1;',
    'events { worker_connections 256; }',
    'http {',
    `  access_log ${dir}/access.log;`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/${t};`),
    `  include ${dir}/site.conf;`,
    '}',
    '',
  ].join('\n'));
  const child: ChildProcess = spawn(NGINX, ['-p', `${dir}/`, '-e', `${dir}/error.log`, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = once(child, 'exit');
  const errorLog = () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
  // nginx says nothing when it is ready: wait until its port accepts a connection (or it exits).
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}: ${stderr}${errorLog()}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(o.port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on ${o.port}: ${stderr}${errorLog()}`);
    await delay(50);
  }
  return {
    port: o.port,
    origin: `https://127.0.0.1:${o.port}`,
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        await exited;
      }
      if (process.env.HERALD_TEST_LOG) console.log(errorLog());
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One HTTPS request to nginx, trusting the test's certificate. */
function httpsCall(ca: string, url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method ?? 'GET', headers: options.headers, ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A wss:// tab through nginx: records frames, answers PINGs as the library does. */
class ProxiedTab {
  readonly frames: any[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ pred: (f: any) => boolean; resolve: (f: any) => void }> = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString());
      this.frames.push(frame);
      if (frame?.TYPE === 'PING') ws.send('{"TYPE":"PONG"}');
      for (const w of [...this.#waiters]) {
        if (w.pred(frame)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  /** Resolves when open; rejects with the HTTP status and body of a refused handshake. */
  static open(url: string, ca: string, origin?: string, extra: { headers?: Record<string, string>; localAddress?: string } = {}): Promise<ProxiedTab> {
    const ws = new WebSocket(url, { ca, ...(origin ? { origin } : {}), ...extra });
    const tab = new ProxiedTab(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(tab));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => {
          ws.terminate();
          reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { status: res.statusCode, body }));
        });
      });
      ws.once('error', reject);
    });
  }

  next(pred: (f: any) => boolean, timeoutMs = 5000): Promise<any> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames)}`)), timeoutMs);
      this.#waiters.push({ pred, resolve: (f) => { clearTimeout(timer); resolve(f); } });
    });
  }
}

/** The panel: serves a page that loads Herald's library from /herald/ and a token endpoint, as README shows. */
async function startPanel(token: () => Promise<string>): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/herald-token') {
      token().then((t) => res.writeHead(200, { 'content-type': 'text/plain' }).end(t), () => res.writeHead(500).end());
      return;
    }
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(`<!doctype html>
<meta charset="utf-8"><title>panel</title>
<script src="/herald/herald.js"></script>
<script>
  Herald.connect({ kind: 'admin', token: () => fetch('/herald-token').then((r) => { if (!r.ok) throw new Error('token: HTTP ' + r.status); return r.text(); }) });
</script>`);
      return;
    }
    res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

const skip = nginxSkipReason();

describe('behind nginx with deploy/nginx.conf and deploy/herald.json', { skip }, () => {
  let dir: string;
  let ca: string;
  let tls: { cert: string; key: string };
  let herald: TestServer;
  let panel: { server: Server; port: number };
  let nginx: Nginx;
  /** Chromium for the last test, launched while the others run (a launch is seconds of waiting). */
  let browser: Promise<Browser> | undefined;

  before(async () => {
    if (!browserSkipReason()) {
      browser = launchBrowser();
      // Failed launches fail the browser test, which awaits this; not the process.
      browser.catch(() => {});
    }
    dir = mkdtempSync(join(tmpdir(), 'herald-deploy-'));
    tls = makeCertificate(dir);
    ca = readFileSync(tls.cert, 'utf8');
    const port = await restartablePort();
    herald = await startHerald(deployOptions(`https://127.0.0.1:${port}`));
    panel = await startPanel(() => herald.token('admin', 7));
    nginx = await startNginx({ port, heraldPort: Number(new URL(herald.url).port), panelPort: panel.port, ...tls });
  });

  after(async () => {
    await browser?.then((b) => b.close(), () => {});
    await nginx?.stop();
    panel?.server.close();
    await herald?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the library under /herald/, and keeps the API, /healthz and /demo off the public side', async () => {
    for (const file of ['herald.js', 'herald.min.js', 'herald.esm.js', 'herald.min.js.map', 'herald.esm.js.map']) {
      const res = await httpsCall(ca, `${nginx.origin}/herald/${file}`);
      assert.equal(res.status, 200, file);
      assert.match(String(res.headers['content-type']), file.endsWith('.map') ? /json/ : /javascript/, file);
    }
    // With the right API token, still not from outside: the backend calls 127.0.0.1:19443.
    const auth = { authorization: `Bearer ${herald.apiToken}` };
    for (const path of ['/herald/api/v1/status', '/herald/api/v1/openapi.json', '/herald/healthz', '/herald/demo', '/herald/', '/herald/herald.jsx']) {
      const res = await httpsCall(ca, `${nginx.origin}${path}`, { headers: auth });
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.body, /HERALD_|"version"/, `${path} is nginx's own 404, not Herald's`);
    }
    const send = await httpsCall(ca, `${nginx.origin}/herald/api/v1/send`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ to: { aid: 1 }, message: 'x' }) });
    assert.equal(send.status, 404);
  });

  it('passes the query string on to the library, so a ?v= URL is cached for a year through nginx as it is directly', async () => {
    const direct = await fetch(`${herald.url}/herald.js?v=1.2.3`);
    await direct.arrayBuffer();
    assert.match(String(direct.headers.get('cache-control')), /immutable/, 'Herald itself caches a ?v= URL for good');
    for (const file of ['herald.js', 'herald.min.js', 'herald.esm.js']) {
      const versioned = await httpsCall(ca, `${nginx.origin}/herald/${file}?v=1.2.3`);
      assert.equal(versioned.status, 200, file);
      assert.equal(versioned.headers['cache-control'], direct.headers.get('cache-control'), `${file}?v= through nginx`);
      // Without ?v= it is still the short lifetime: the page that names no version sees a new one soon.
      const plain = await httpsCall(ca, `${nginx.origin}/herald/${file}`);
      assert.doesNotMatch(String(plain.headers['cache-control']), /immutable/, file);
    }
  });

  it('a wss:// tab through nginx gets WELCOME, then what the API sends', async () => {
    const token = await herald.token('admin', 3);
    const tab = await ProxiedTab.open(`wss://127.0.0.1:${nginx.port}/herald/ws/admin?token=${token}`, ca, nginx.origin);
    await tab.next((f) => f.TYPE === 'WELCOME');
    const sent = await herald.api('POST', '/api/v1/send', { to: { aid: 3 }, message: { TYPE: 'MESSAGE', TITLE: 'through nginx', TEXT: 'hello' } });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.delivered, 1);
    const msg = await tab.next((f) => f.TYPE === 'MESSAGE');
    assert.equal(msg.TITLE, 'through nginx');
    tab.ws.close();
    await tab.closed;
  });

  it('the Origin policy holds through nginx: a foreign Origin gets 403 before the upgrade, and no Origin is refused too', async () => {
    const token = await herald.token('admin', 4);
    const url = `wss://127.0.0.1:${nginx.port}/herald/ws/admin?token=${token}`;
    for (const origin of ['https://evil.example', `http://127.0.0.1:${nginx.port}`, undefined]) {
      const refused = await ProxiedTab.open(url, ca, origin).then(
        () => assert.fail(`opened with Origin ${origin}`),
        (e: { status?: number; body?: string }) => e,
      );
      assert.equal(refused.status, 403, String(origin));
      assert.equal(JSON.parse(refused.body ?? '{}').error?.code, 'HERALD_ERR_ORIGIN', String(origin));
    }
    assert.equal(herald.herald.hub.tabCount('admin'), 0);
  });

  it("the library's credential probe (a plain POST to the endpoint) gets Herald's own answers through nginx", async () => {
    const good = await herald.token('admin', 5);
    const probe = (origin: string, token: string) =>
      httpsCall(ca, `${nginx.origin}/herald/ws/admin?token=${token}`, { method: 'POST', headers: { origin } });
    const ok = await probe(nginx.origin, good);
    assert.equal(ok.status, 426);
    assert.equal(JSON.parse(ok.body).error.code, 'HERALD_ERR_UPGRADE_REQUIRED');
    assert.equal(ok.headers['access-control-allow-origin'], nginx.origin);
    const bad = await probe(nginx.origin, 'not-a-token');
    assert.equal(bad.status, 401);
    assert.equal(JSON.parse(bad.body).error.code, 'HERALD_ERR_UNAUTHORIZED');
    const foreign = await probe('https://evil.example', good);
    assert.equal(foreign.status, 403);
    assert.equal(JSON.parse(foreign.body).error.code, 'HERALD_ERR_ORIGIN');
  });

  it('a real Chromium page on the panel\'s https origin loads /herald/herald.js, connects through nginx and shows a toast', { skip: browserSkipReason() }, async () => {
    const context = await (await browser!).newContext({ ignoreHTTPSErrors: true });
    try {
      await context.addInitScript('globalThis.__name = (target) => target;');
      const page = await context.newPage();
      const script = page.waitForResponse((r) => r.url().endsWith('/herald/herald.js'));
      await page.goto(`${nginx.origin}/`);
      assert.equal((await script).status(), 200);
      await waitForState(page, 'open');
      const endpoint = await page.evaluate(() => (window as any).Herald.client.endpoint as string);
      assert.equal(endpoint, `wss://127.0.0.1:${nginx.port}/herald/ws/admin`);
      const sent = await herald.api('POST', '/api/v1/send', { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TITLE: 'Payment received', TEXT: 'subscriber 42' } });
      assert.equal(sent.body.delivered, 1);
      const toast = page.locator('.herald-toast[data-type="MESSAGE"]').first();
      await toast.waitFor({ timeout: 10_000 });
      assert.equal(await toast.locator('.herald-title').innerText(), 'Payment received');
    } finally {
      await context.close();
    }
  });
});

// The two tests at once: each has its own Herald and nginx, and each mostly waits on the clock.
describe("Herald's heartbeats and nginx's proxy_read_timeout", { skip, concurrency: true }, () => {
  let dir: string;
  let ca: string;
  let tls: { cert: string; key: string };
  const started: Array<{ stop(): Promise<void> }> = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-deploy-hb-'));
    tls = makeCertificate(dir);
    ca = readFileSync(tls.cert, 'utf8');
  });

  after(async () => {
    for (const s of started.reverse()) await s.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Herald with this heartbeat behind an nginx whose read timeout is 1 s; an idle tab through it. */
  async function idleTab(heartbeatMs: number): Promise<ProxiedTab> {
    const port = await restartablePort();
    const herald = await startHerald({ ...deployOptions(`https://127.0.0.1:${port}`), heartbeatMs });
    started.push({ stop: () => herald.close() });
    const nginx = await startNginx({ port, heraldPort: Number(new URL(herald.url).port), panelPort: 9, ...tls, readTimeout: '1s' });
    started.push(nginx);
    const token = await herald.token('admin', 1);
    const tab = await ProxiedTab.open(`wss://127.0.0.1:${port}/herald/ws/admin?token=${token}`, ca, nginx.origin);
    await tab.next((f) => f.TYPE === 'WELCOME');
    started.push({ stop: async () => tab.ws.terminate() });
    return tab;
  }

  it('a heartbeat shorter than the timeout keeps an idle tab open past it', async () => {
    const tab = await idleTab(300);
    const outcome = await Promise.race([tab.closed.then((c) => `closed ${c.code}`), delay(2500).then(() => 'open')]);
    assert.equal(outcome, 'open');
    assert.ok(tab.frames.filter((f) => f.TYPE === 'PING').length >= 5, 'PINGs came through nginx');
  });

  it('without it, nginx closes the idle tab at its timeout (so the one above is the heartbeat\'s doing)', async () => {
    const tab = await idleTab(60_000);
    const t0 = Date.now();
    const outcome = await Promise.race([tab.closed.then((c) => `closed ${c.code}`), delay(8000).then(() => 'open')]);
    assert.equal(outcome, 'closed 1006', 'nginx drops the connection without a close frame');
    assert.ok(Date.now() - t0 >= 750, 'not before the timeout');
  });
});

describe('client addresses behind nginx', { skip }, () => {
  let dir: string;
  let ca: string;
  let herald: TestServer;
  let nginx: Nginx;
  let panel: Server;
  /** The headers of every look-up the panel was asked. */
  const lookUps: Array<Record<string, string | string[] | undefined>> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'herald-deploy-addr-'));
    const tls = makeCertificate(dir);
    ca = readFileSync(tls.cert, 'utf8');
    // The panel's session endpoint for the http resolver: sid=good is admin 9.
    panel = createServer((req, res) => {
      lookUps.push(req.headers);
      req.resume();
      req.on('end', () => {
        if (String(req.headers.cookie ?? '').includes('sid=good')) res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"admin","id":9}');
        else res.writeHead(401).end();
      });
    });
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    const panelPort = (panel.address() as { port: number }).port;
    const port = await restartablePort();
    herald = await startHerald({
      ...deployOptions(`https://127.0.0.1:${port}`),
      authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${panelPort}/session`, httpResolverHeaders: ['X-Forwarded-For'],
      authCacheMs: 0, authNegativeCacheMs: 0,
    });
    nginx = await startNginx({ port, heraldPort: Number(new URL(herald.url).port), panelPort, ...tls });
  });

  after(async () => {
    await nginx?.stop();
    await herald?.close();
    panel?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('Herald sees nginx\'s address, so the http resolver forwards the browser\'s from X-Forwarded-For when told to', async () => {
    // The browser at 127.0.0.2, nginx and Herald on 127.0.0.1.
    const tab = await ProxiedTab.open(`wss://127.0.0.1:${nginx.port}/herald/ws/admin`, ca, nginx.origin, { headers: { cookie: 'sid=good' }, localAddress: '127.0.0.2' });
    await tab.next((f) => f.TYPE === 'WELCOME');
    const asked = lookUps.at(-1)!;
    assert.equal(asked['x-forwarded-for'], '127.0.0.2');
    assert.equal(asked.cookie, 'sid=good');
    tab.ws.close();
    await tab.closed;
  });

  it('a forged X-Forwarded-For from the browser does not reach the panel: it is told the real address alone', async () => {
    // nginx is the edge: what a client says in X-Forwarded-For is not an address anyone saw.
    const headers = { cookie: 'sid=good', 'x-forwarded-for': '203.0.113.66' };
    const tab = await ProxiedTab.open(`wss://127.0.0.1:${nginx.port}/herald/ws/admin`, ca, nginx.origin, { headers, localAddress: '127.0.0.2' });
    await tab.next((f) => f.TYPE === 'WELCOME');
    assert.equal(lookUps.at(-1)!['x-forwarded-for'], '127.0.0.2', 'the look-up Herald made for the handshake');
    tab.ws.close();
    await tab.closed;
    // The panel's own pages, proxied by the same server block, are told the same.
    const page = await new Promise<Record<string, string | string[] | undefined>>((resolve, reject) => {
      const req = httpsRequest(`${nginx.origin}/`, { ca, headers, localAddress: '127.0.0.2' }, (res) => {
        res.resume();
        res.on('end', () => resolve(lookUps.at(-1)!));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(page['x-forwarded-for'], '127.0.0.2', "the panel's page request");
  });

  it('forwarding it makes it part of the credential: a handshake with no cookie is asked about at the panel instead of refused at once', async () => {
    const before = lookUps.length;
    const refused = await ProxiedTab.open(`wss://127.0.0.1:${nginx.port}/herald/ws/admin`, ca, nginx.origin, { localAddress: '127.0.0.2' }).then(
      () => assert.fail('opened without a session'),
      (e: { status?: number }) => e,
    );
    assert.equal(refused.status, 401);
    assert.equal(lookUps.length, before + 1);
    assert.equal(lookUps.at(-1)!.cookie, undefined);
  });
});
