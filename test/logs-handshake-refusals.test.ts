/**
 * The log of refused handshakes (gateway/refusal-log.ts) gives each error
 * code a budget of its own: with one shared budget (20 lines in 10 s), a
 * loop of handshakes without a token took it all, and a foreign page's
 * handshakes left no line of their own, the summary giving only a count by
 * code. The summary now also names the Origins refused most often, held in
 * bounded memory (at most five distinct values, Space-Saving: TopValues),
 * so that one foreign page shows through a flood of made-up Origins.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RefusalLog } from '../src/server/gateway/refusal-log.js';
import { SAMPLES_KEPT, TopValues } from '../src/server/throttled-log.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { capturedLog } from './helpers/captured-log.js';

const line = (l: string) => JSON.parse(l) as Record<string, any>;

describe('refused handshakes in the log', () => {
  test('a real server: a flood without a token leaves a foreign Origin its own lines, and the summary names the Origin', async () => {
    const h = await startAuthHerald({ store: 'memory' });
    try {
      for (let i = 0; i < 60; i++) assert.equal(await h.status('admin'), 401);
      // The page that matters, among made-up Origins sent around it.
      for (let i = 0; i < 40; i++) {
        const origin = i % 2 === 0 ? 'https://evil.example' : `https://decoy${i}.example`;
        assert.equal(await h.status('admin', { origin }), 403);
      }
      const lines = () => h.log().split('\n').filter(Boolean).map(line);
      assert.equal(lines().filter((l) => l.msg === 'handshake refused: no token').length, 20);
      const foreign = lines().filter((l) => l.msg === 'handshake refused: origin not allowed');
      assert.equal(foreign.length, 20, 'the foreign Origins had lines of their own, past the 20 lines without a token');
      assert.ok(foreign.some((l) => l.origin === 'https://evil.example'));
      await h.close();
      const summary = lines().filter((l) => String(l.msg).startsWith('handshakes refused and not logged one by one'));
      assert.equal(summary.length, 1);
      assert.deepEqual(summary[0]!.byCode, { HERALD_ERR_UNAUTHORIZED: 40, HERALD_ERR_ORIGIN: 20 });
      const origins = summary[0]!.origins as Record<string, number>;
      assert.ok(Object.keys(origins).length <= SAMPLES_KEPT, JSON.stringify(origins));
      // Ten of the twenty counted were evil.example's: named first.
      assert.equal(Object.keys(origins)[0], 'https://evil.example', JSON.stringify(origins));
      assert.ok(origins['https://evil.example']! >= 10);
    } finally {
      await h.close().catch(() => undefined);
    }
  });

  test('each code has its own 20 lines a window; a new window has them again', () => {
    const { logger, lines } = capturedLog();
    let now = 1_000_000;
    const log = new RefusalLog(logger, () => now);
    for (let i = 0; i < 50; i++) log.refused('info', 'HERALD_ERR_UNAUTHORIZED', { reason: 'no token' }, 'handshake refused: no token');
    for (let i = 0; i < 25; i++) log.refused('info', 'HERALD_ERR_ORIGIN', { origin: `https://x${i % 3}.example` }, 'handshake refused: origin not allowed');
    assert.equal(lines().filter((l) => l.msg === 'handshake refused: no token').length, 20);
    assert.equal(lines().filter((l) => l.msg === 'handshake refused: origin not allowed').length, 20);
    log.flush();
    const summary = lines().at(-1)!;
    assert.deepEqual({ refused: summary.refused, byCode: summary.byCode }, { refused: 35, byCode: { HERALD_ERR_UNAUTHORIZED: 30, HERALD_ERR_ORIGIN: 5 } });
    assert.deepEqual(summary.origins, { 'https://x2.example': 2, 'https://x0.example': 2, 'https://x1.example': 1 });
    now += 10_000;
    log.refused('info', 'HERALD_ERR_UNAUTHORIZED', {}, 'handshake refused: no token');
    assert.equal(lines().at(-1)!.msg, 'handshake refused: no token', 'a new window logs one by one again');
  });

  test('the Origins kept are bounded, and one that keeps coming back stays among them whatever comes around it', () => {
    const top = new TopValues();
    for (let i = 0; i < 10_000; i++) top.add(i % 4 === 0 ? 'https://evil.example' : `https://made-up-${i}.example`);
    const kept = top.top();
    assert.equal(Object.keys(kept).length, SAMPLES_KEPT);
    assert.equal(Object.keys(kept)[0], 'https://evil.example');
    assert.ok(kept['https://evil.example']! >= 2500);
    const long = new TopValues();
    long.add('x'.repeat(100_000));
    assert.ok(Object.keys(long.top())[0]!.length <= 201, 'a value is kept cut');
  });
});
