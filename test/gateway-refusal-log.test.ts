/**
 * Refused handshakes are logged one by one up to 20 in 10 s, then counted
 * and said in one line (gateway/refusal-log.ts): a refusal costs a client
 * no credential, and a client refused in a loop wrote the log as fast as it
 * could connect.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RefusalLog } from '../src/server/gateway/refusal-log.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { capturedLog } from './helpers/captured-log.js';


describe('the log of refused handshakes', () => {
  test('20 of each code a window one by one, the rest counted by code and said once when flushed; a new window logs again', () => {
    const { logger, lines } = capturedLog();
    let now = 1_000_000;
    const log = new RefusalLog(logger, () => now);
    for (let i = 0; i < 50; i++) log.refused('info', 'HERALD_ERR_UNAUTHORIZED', { reason: 'no token' }, 'handshake refused: no token');
    for (let i = 0; i < 7; i++) log.refused('info', 'HERALD_ERR_ORIGIN', { origin: `https://x${i}.example` }, 'handshake refused: origin not allowed');
    assert.equal(lines().length, 27);
    now += 5_000;
    log.flush();
    const summary = lines().at(-1)!;
    assert.equal(summary.level, 40);
    assert.deepEqual({ refused: summary.refused, byCode: summary.byCode }, { refused: 30, byCode: { HERALD_ERR_UNAUTHORIZED: 30 } });
    log.flush();
    assert.equal(lines().length, 28, 'nothing more to say');
    now += 5_000;
    log.refused('warn', 'HERALD_ERR_UNAVAILABLE', {}, 'handshake deferred: resolver unavailable');
    assert.equal(lines().length, 29, 'a new window logs one by one again');
    assert.equal(lines().at(-1)!.msg, 'handshake deferred: resolver unavailable');
  });

  test('a real server: 60 handshakes without a token write 20 lines and one summary, not 60', async () => {
    const h = await startAuthHerald({ store: 'memory' });
    try {
      const statuses = [];
      for (let i = 0; i < 60; i++) statuses.push(await h.status('admin'));
      assert.deepEqual(new Set(statuses), new Set([401]));
      const one = () => h.log().split('\n').filter((l) => l.includes('"handshake refused: no token"')).length;
      assert.equal(one(), 20);
      await h.close();
      const summary = h.log().split('\n').filter((l) => l.includes('handshakes refused and not logged one by one')).map((l) => JSON.parse(l) as { refused: number; byCode: unknown });
      assert.equal(summary.length, 1, 'said once, at the latest when the Gateway closes');
      assert.deepEqual({ refused: summary[0]!.refused, byCode: summary[0]!.byCode }, { refused: 40, byCode: { HERALD_ERR_UNAUTHORIZED: 40 } });
    } finally {
      await h.close().catch(() => undefined);
    }
  });
});
