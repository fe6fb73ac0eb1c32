/**
 * The WebSocket endpoint's path is matched before any credential is looked at,
 * so what that match costs is open to anyone who reaches the port. A run of
 * slashes that does not end the path (`/ws/`, `/` × 16,000, then `x`, within node's
 * header limit) cost V8's backtracking `replace(/\/+$/, '')` about 0.2 s of
 * the event loop per handshake; it must cost what any other path of its
 * length costs. Judged as a ratio between the two, measured side by side.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { startHerald, type TestServer } from './helpers/server.js';

/** The handshake's status and how long its answer took, in ms. */
function handshake(s: TestServer, path: string, query = ''): Promise<{ status: number; ms: number }> {
  const u = new URL(s.wsUrl);
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: path + query, headers: {
      Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    } });
    const done = (status: number | undefined) => resolve({ status: status ?? 0, ms: performance.now() - started });
    req.on('upgrade', (res, socket) => { socket.destroy(); done(res.statusCode); });
    req.on('response', (res) => { res.resume(); done(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('the WebSocket path match', () => {
  let s: TestServer;
  before(async () => { s = await startHerald(); });
  after(() => s.close());

  test('trailing slashes are still the endpoint, and a path of slashes then more is 404', async () => {
    const token = await s.token('admin', 7);
    assert.equal((await handshake(s, '/ws/admin///', `?token=${token}`)).status, 101);
    assert.equal((await handshake(s, `/ws/admin${'/'.repeat(15_000)}`, `?token=${token}`)).status, 101);
    assert.equal((await handshake(s, `/ws/${'/'.repeat(15_000)}x`)).status, 404);
    assert.equal((await handshake(s, '/ws/admin/x')).status, 404);
  });

  test('a run of slashes that does not end the path costs what any path of its length costs', async () => {
    // After a first segment: a path that begins `//` is read as naming a host.
    const slashes = `/ws/${'/'.repeat(15_000)}x`;
    const letters = `/ws/${'a'.repeat(15_001)}`;
    const slashMs: number[] = [];
    const letterMs: number[] = [];
    // Interleaved, so a busy moment of the machine falls on both.
    for (let i = 0; i < 7; i++) {
      letterMs.push((await handshake(s, letters)).ms);
      const r = await handshake(s, slashes);
      assert.equal(r.status, 404);
      slashMs.push(r.ms);
    }
    // Before the fix the slashes took about 100-200 ms against under 2 ms: a ratio in the hundreds.
    const ratio = median(slashMs) / Math.max(median(letterMs), 0.5);
    assert.ok(ratio < 10, `slashes ${median(slashMs).toFixed(1)} ms against letters ${median(letterMs).toFixed(1)} ms (medians of 7)`);
  });
});
