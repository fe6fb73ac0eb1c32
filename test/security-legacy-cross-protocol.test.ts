/**
 * A web page must not be able to drive the legacy TCP port. That port speaks
 * raw JSON with no framing and, on loopback, takes MESSAGE (without a
 * configured legacyToken) and COMMAND requests from whoever connects. A page
 * in a browser on the same machine can connect to it too: `fetch()` to
 * http://127.0.0.1:19444/ with `mode: 'no-cors'` sends an HTTP request whose
 * body is the page's JSON, and the framer used to skip the request line and
 * headers as "garbage" and carry the body out: a broadcast to every admin, a
 * command run, from any web site the developer visited (a cross-protocol
 * attack; Redis closes a connection that sends `POST` or `Host:` for the same
 * reason). Now a connection that begins like an HTTP request is refused and
 * closed before anything it sent is read as a request.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { Browser } from 'playwright-core';
import { browserSkipReason, launchBrowser, newPage } from './helpers/browser.js';
import { startHerald, type TestServer } from './helpers/server.js';

const skip = browserSkipReason();

/** Sends raw bytes to the legacy port; resolves with everything the server wrote before it closed the connection (or after `ms`). */
function rawLegacy(port: number, bytes: string, ms = 3000): Promise<{ answer: string; closedByServer: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    let answer = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ answer, closedByServer: false });
    }, ms);
    s.on('data', (c) => { answer += c.toString(); });
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closedByServer: true });
    });
    s.on('error', reject);
  });
}

describe('the legacy port refuses what a web page can send it', { skip }, () => {
  let server: TestServer;
  let browser: Browser;
  let evil: Server;
  let evilUrl: string;
  let legacyPort: number;

  before(async () => {
    server = await startHerald({ commandsAllow: ['ping'] });
    legacyPort = server.herald.urls.legacy!.port;
    browser = await launchBrowser();
    // The attacker's page, on an origin of its own (another port of 127.0.0.1 stands for any site).
    evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>innocent</title>'));
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const a = evil.address();
    evilUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}/`;
  });

  after(async () => {
    await browser?.close();
    await new Promise((r) => evil?.close(r));
    await server?.close();
  });

  test('a page\'s fetch() to the legacy port neither notifies an admin nor runs a command', async () => {
    const tab = await server.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const { context, page } = await newPage(browser);
    try {
      await page.goto(evilUrl);
      const outcome = await page.evaluate(async (port) => {
        const forged = [
          { TYPE: 'MESSAGE', TO: 'ADMIN', ID: '*', DATA: { TYPE: 'MESSAGE', TITLE: 'forged', TEXT: 'from a web page' } },
          { TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping', PROGRAM_ARGS: ['-c 1', '127.0.0.1'], ID: 'forged-task' },
        ];
        try {
          await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', mode: 'no-cors', body: forged.map((r) => JSON.stringify(r)).join('') });
          return 'answered';
        } catch (e) {
          // What the legacy port writes back is not HTTP: the fetch fails once the server has answered or closed.
          return `failed: ${(e as Error).message}`;
        }
      }, legacyPort);
      assert.match(outcome, /^failed/);
    } finally {
      await context.close();
    }
    // A marker sent after the page's request: a forged notification, had it been delivered, would be before it.
    await server.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 'marker', TEXT: '' } });
    await tab.next((f) => f?.TITLE === 'marker');
    assert.deepEqual(tab.notifications().filter((f) => f?.TITLE === 'forged'), [], 'the page\'s forged MESSAGE reached the admin');
    const commands = await server.api('GET', '/api/v1/commands');
    assert.deepEqual(commands.body.commands, [], 'the page\'s forged COMMAND ran');
  });

  test('a connection that begins like an HTTP request is answered with an error and closed', async () => {
    const body = '{"TYPE":"PING"}';
    const r = await rawLegacy(legacyPort, `POST / HTTP/1.1\r\nHost: 127.0.0.1:${legacyPort}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.equal(r.closedByServer, true, `the server kept the connection open and answered ${r.answer}`);
    assert.doesNotMatch(r.answer, /PONG/);
    const answer = JSON.parse(r.answer.trim()) as { TYPE: string; ERROR: string; CODE: string };
    assert.equal(answer.TYPE, 'ERROR');
    assert.equal(answer.CODE, 'HERALD_ERR_BAD_REQUEST');
    assert.match(answer.ERROR, /HTTP/);
  });

  test('the old client\'s requests, and junk after a first request, are served as before', async () => {
    const ok = await rawLegacy(legacyPort, '{"TYPE":"PING"}', 500);
    assert.equal(ok.answer, '{"TYPE":"PONG"}\n');
    const ws = await rawLegacy(legacyPort, ' \r\n{"TYPE":"PING"}', 500);
    assert.equal(ws.answer, '{"TYPE":"PONG"}\n');
    // Garbage later in a connection keeps its documented answer (INCORRECT REQUEST, then resynchronise).
    const later = await rawLegacy(legacyPort, '{"TYPE":"PING"}GET / HTTP/1.1\r\n{"TYPE":"PING"}', 500);
    assert.equal(later.answer, '{"TYPE":"PONG"}\n{"TYPE":"ERROR","ERROR":"INCORRECT REQUEST"}\n{"TYPE":"PONG"}\n');
  });
});
