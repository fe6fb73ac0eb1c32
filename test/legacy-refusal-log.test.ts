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
