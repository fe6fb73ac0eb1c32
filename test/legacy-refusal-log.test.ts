/**
 * Refused legacy connections and requests are logged one by one up to 20 in
 * 10 s, then counted by reason and said in one line: any web page in a
 * browser on the machine can reach the legacy port with fetch(), and each
 * refusal wrote a warning (3,000 connections, 3,000 lines).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import net from 'node:net';
import { startAuthHerald } from './helpers/auth-herald.js';
import { RawLegacyClient } from './helpers/legacy-client.js';

type Line = Record<string, unknown> & { level: number; msg: string };
const WARN = 40;

/** Opens a connection, writes `text`, and waits for the server to close it. */
function refusedConnection(port: number, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write(text));
    socket.on('data', () => undefined);
    socket.on('error', reject);
    socket.on('close', () => resolve());
  });
}

test('60 HTTP requests to the legacy port write 20 warnings and one summary, not 60', async () => {
  const h = await startAuthHerald({ store: 'memory' });
  try {
    const port = h.herald.legacy!.address!.port;
    for (let i = 0; i < 60; i++) await refusedConnection(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
    const one = () => h.log().split('\n').filter((l) => l.includes('"legacy connection refused: it began like an HTTP request')).length;
    assert.equal(one(), 20);
    await h.herald.close();
    const summary = h.log().split('\n').filter((l) => l.includes('legacy connections and requests refused and not logged one by one')).map((l) => JSON.parse(l) as { refused: number; byReason: unknown });
    assert.equal(summary.length, 1, 'said once, at the latest when the listener closes');
    assert.deepEqual({ refused: summary[0]!.refused, byReason: summary[0]!.byReason }, { refused: 40, byReason: { http: 40 } });
  } finally {
    await h.close().catch(() => undefined);
  }
});

test('a MESSAGE refused for a wrong TOKEN or none, SILENT or not, is a warning with the peer, never the token', async () => {
  // A panel whose token was rotated on one side only: the old client's NON_SAFE sends are SILENT,
  // and their refusal had no trace at any level, at Herald's end or the panel's.
  const h = await startAuthHerald({ store: 'memory', legacyToken: 'the-token-herald-has-now-0123' });
  try {
    const client = await RawLegacyClient.connect(h.herald.legacy!.address!.port);
    client.socket.write(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1, TOKEN: 'the-token-the-panel-had-4567', SILENT: 1, DATA: { TYPE: 'MESSAGE', TITLE: 'Payment received' } }));
    // Answered in turn, after the SILENT one before it.
    const wrong = await client.request(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1, TOKEN: 'the-token-the-panel-had-4567', DATA: { TYPE: 'MESSAGE', TITLE: 'New ticket' } }));
    assert.equal((wrong.answer as { CODE: string }).CODE, 'HERALD_ERR_UNAUTHORIZED');
    const none = await client.request(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1, DATA: { TYPE: 'MESSAGE', TITLE: 'New ticket' } }));
    assert.equal((none.answer as { CODE: string }).CODE, 'HERALD_ERR_UNAUTHORIZED');
    client.socket.destroy();
    const lines = h.log().split('\n').filter((l) => l.includes('legacy request refused')).map((l) => JSON.parse(l) as Line);
    assert.deepEqual(lines.map((l) => [l.level, l.msg, l.silent]), [
      [WARN, 'legacy request refused: wrong TOKEN (it must be the configured legacyToken)', true],
      [WARN, 'legacy request refused: wrong TOKEN (it must be the configured legacyToken)', false],
      [WARN, 'legacy request refused: no TOKEN (it must be the configured legacyToken)', false],
    ]);
    for (const l of lines) assert.match(String(l.peer), /^127\.0\.0\.1:\d+$/);
    assert.ok(!h.log().includes('the-token-the-panel-had') && !h.log().includes('the-token-herald-has-now'), 'no token is ever logged');
  } finally {
    await h.close();
  }
});

test('a SILENT request refused for its shape (no ID: the panel\'s AID was undef) is a warning saying why', async () => {
  const h = await startAuthHerald({ store: 'memory' });
  try {
    const client = await RawLegacyClient.connect(h.herald.legacy!.address!.port);
    client.socket.write(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: null, SILENT: 1, DATA: { TYPE: 'MESSAGE', TITLE: 'Payment received' } }));
    assert.deepEqual((await client.request(JSON.stringify({ TYPE: 'PING' }))).answer, { TYPE: 'PONG' });
    client.socket.destroy();
    const lines = h.log().split('\n').filter((l) => l.includes('legacy request refused')).map((l) => JSON.parse(l) as Line);
    assert.equal(lines.length, 1, h.log());
    assert.equal(lines[0]!.level, WARN);
    assert.equal(lines[0]!.code, 'HERALD_ERR_BAD_REQUEST');
    assert.match(String(lines[0]!.error), /ID/);
  } finally {
    await h.close();
  }
});

test('40 requests with a wrong TOKEN write 5 warnings and, once the listener closes, one summary with the address', async () => {
  const h = await startAuthHerald({ store: 'memory', legacyToken: 'the-token-herald-has-now-0123' });
  try {
    const client = await RawLegacyClient.connect(h.herald.legacy!.address!.port);
    for (let i = 0; i < 40; i++) await client.request(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 1, TOKEN: `wrong-${i}`, DATA: 'x' }));
    client.socket.destroy();
    const one = () => h.log().split('\n').filter((l) => l.includes('legacy request refused: wrong TOKEN')).length;
    assert.equal(one(), 5);
    await h.herald.close();
    const summary = h.log().split('\n').filter((l) => l.includes('legacy requests refused and not logged one by one')).map((l) => JSON.parse(l) as Line);
    assert.equal(summary.length, 1, 'said once, at the latest when the listener closes');
    assert.deepEqual({ refused: summary[0]!.refused, byReason: summary[0]!.byReason, addresses: summary[0]!.addresses }, { refused: 35, byReason: { 'wrong TOKEN': 35 }, addresses: { 'wrong TOKEN': { '127.0.0.1': 35 } } });
  } finally {
    await h.close().catch(() => undefined);
  }
});
