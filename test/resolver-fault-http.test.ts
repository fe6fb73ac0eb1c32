/**
 * The http resolver against a panel that misbehaves in every way a real one
 * can: 500, no answer, a connection closed mid-answer, garbage, a slow
 * trickle, a redirect to another server, an answer far too large. A real
 * panel (node:http on 127.0.0.1) acts out the fault its session cookie
 * names; a real Herald asks it; real `ws` tabs connect. Every fault is 503
 * (retry later), never 401, and never closes an open tab on re-check; a
 * definite 401 does.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { parseCookies } from '../src/server/auth/session-resolver.js';
import { startAuthHerald, within, type AuthHerald } from './helpers/auth-herald.js';

const TIMEOUT_MS = 600;
const ADMIN_7 = JSON.stringify({ kind: 'admin', id: 7 });

/** Writes `body` a few bytes at a time, one piece every `everyMs`. */
function trickle(res: ServerResponse, body: string, everyMs: number): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  let at = 0;
  const timer = setInterval(() => {
    if (res.destroyed) return clearInterval(timer);
    res.write(body.slice(at, at + 4));
    at += 4;
    if (at >= body.length) {
      clearInterval(timer);
      res.end();
    }
  }, everyMs);
}

/** What the panel does for each session: the cookie `s` names it. `flip` answers what `flipTo` says now. */
let flipTo = 'ok';
let redirectedHits = 0;
let panelHits = 0;
let redirectTarget = '';

function act(fault: string, res: ServerResponse): void {
  switch (fault) {
    case 'ok': res.writeHead(200, { 'content-type': 'application/json' }).end(ADMIN_7); return;
    case 'gone': res.writeHead(401).end(); return;
    case 'e500': res.writeHead(500).end('internal error'); return;
    case 'hang': return; // never answers
    case 'cut':
      // Promises 200 bytes, sends 10, hangs up.
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200' });
      res.write(ADMIN_7.slice(0, 10));
      setTimeout(() => res.socket?.destroy(), 20);
      return;
    case 'garbage': res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"admin","id":7'); return;
    case 'html': res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>'); return;
    case 'slow-ok': trickle(res, ADMIN_7, 15); return; // about 90 ms in all: within the timeout
    case 'slow-past': trickle(res, ADMIN_7, 100); return; // about 600+ ms: past it
    case 'redirect': res.writeHead(302, { location: redirectTarget }).end(); return;
    case 'huge': res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id: 7, pad: 'x'.repeat(1 << 20) })); return;
    case 'endless': {
      // A chunked answer that never ends: Herald must stop reading, not buffer it.
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = 'x'.repeat(64 * 1024);
      const pump = (): void => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      res.write('{"pad":"');
      pump();
      return;
    }
    case 'flip': act(flipTo, res); return;
    default: res.writeHead(401).end();
  }
}

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

describe('http resolver faults', () => {
  let panel: Server;
  let elsewhere: Server;
  let h: AuthHerald;

  before(async () => {
    // The server a redirect points at would admit anyone: it must never be asked.
    elsewhere = createServer((_req, res) => {
      redirectedHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(ADMIN_7);
    });
    redirectTarget = `http://127.0.0.1:${await listen(elsewhere)}/session`;
    panel = createServer((req, res) => {
      panelHits++;
      req.resume();
      req.on('end', () => act(parseCookies(req.headers.cookie).get('s') ?? '', res));
    });
    const port = await listen(panel);
    h = await startAuthHerald({
      authResolver: 'http', httpResolverUrl: `http://127.0.0.1:${port}/herald/session`, httpResolverTimeoutMs: TIMEOUT_MS,
      authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 60_000,
    });
  });
  after(async () => {
    await h.close();
    for (const s of [panel, elsewhere]) {
      s.closeAllConnections();
      s.close();
    }
  });

  const status = (fault: string) => h.status('admin', { headers: { cookie: `s=${fault}` } });

  test('a 200 {kind,id} admits and a 401 refuses (the baseline)', async () => {
    assert.equal(await status('ok'), 101);
    assert.equal(await status('gone'), 401);
  });

  for (const fault of ['e500', 'cut', 'garbage', 'html', 'huge', 'endless']) {
    test(`a panel answering "${fault}": 503 (retry later), well within the timeout`, async () => {
      const t0 = Date.now();
      assert.equal(await status(fault), 503);
      assert.ok(Date.now() - t0 < TIMEOUT_MS + 1000, `answered after ${Date.now() - t0} ms`);
    });
  }

  test('a panel that never answers, or trickles its answer past the timeout: 503 at about the timeout', async () => {
    for (const fault of ['hang', 'slow-past']) {
      const t0 = Date.now();
      assert.equal(await status(fault), 503, fault);
      const took = Date.now() - t0;
      assert.ok(took >= TIMEOUT_MS - 50 && took < TIMEOUT_MS + 1000, `${fault}: answered after ${took} ms`);
    }
  });

  test('a slow answer within the timeout admits', async () => {
    assert.equal(await status('slow-ok'), 101);
  });

  test('a redirect is not followed (to another server or anywhere): 503, and the other server is never asked', async () => {
    assert.equal(await status('redirect'), 503);
    assert.equal(redirectedHits, 0);
  });

  test('re-checks while the panel fails in each way leave the tab open; a 401 afterwards closes it with 4401', async () => {
    flipTo = 'ok';
    const tab = await h.open('admin', { headers: { cookie: 's=flip' } });
    assert.equal((await tab.nextOfType('WELCOME')).ID, 7);
    for (const fault of ['e500', 'hang', 'cut', 'garbage', 'redirect', 'huge']) {
      flipTo = fault;
      const round = await h.herald.watcher!.checkNow();
      assert.equal(round.closedTabs, 0, fault);
      assert.ok(round.unavailable >= 1, fault);
      assert.equal(tab.ws.readyState, tab.ws.OPEN, fault);
    }
    flipTo = 'gone';
    assert.equal((await h.herald.watcher!.checkNow()).closedTabs, 1);
    assert.deepEqual(await within(tab.closed, 2000, 'the ended tab to close'), { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
  });

  test('Herald is still well after all that: a good session is admitted, the panel asked afresh', async () => {
    // No clock here: a resolver wedged behind the hung or endless answers
    // (its sockets held, its reads never ended) would answer 503 at the
    // timeout, not 101; and the panel must really have been asked.
    const asked = panelHits;
    assert.equal(await status('ok'), 101);
    assert.equal(panelHits, asked + 1);
    assert.equal(h.herald.resolver.name, 'http');
  });
});
