/**
 * Log lines a sender or a client can repeat as fast as it likes are bounded
 * (src/server/throttled-log.ts): 20 in 10 s one by one, then one summary.
 * - A notification dropped from a full stream wrote a warning each: a sender
 *   past a person's maxPerStream wrote one line a send (18,000 lines in a
 *   burst of 20,000 sends to two people).
 * - A tab closed as a slow consumer wrote nothing at all: an operator whose
 *   tabs kept dropping had nothing to go by.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Socket } from 'node:net';
import { startAuthHerald } from './helpers/auth-herald.js';
import { until } from './helpers/ws-client.js';

function lines(log: string, msg: string): Array<Record<string, any>> {
  return log.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>).filter((l) => String(l.msg).startsWith(msg));
}

describe('bounded log lines', () => {
  test('notifications dropped from a full stream: 20 lines one by one, the rest one summary with their count', async () => {
    const h = await startAuthHerald({ store: 'memory', maxPerStream: 5 });
    try {
      for (let i = 0; i < 65; i++) await h.herald.notifier.send({ kind: 'admin', id: 1 }, { TYPE: 'MESSAGE', TEXT: `n${i}` });
      // 60 sends found the stream full: one line each before.
      assert.equal(lines(h.log(), 'stream cap reached: oldest notifications dropped').filter((l) => l.to === 'admin:1').length, 20);
      await h.close();
      const summary = lines(h.log(), 'stream cap reached: oldest notifications dropped, more than 20 times');
      assert.equal(summary.length, 1, 'said once, at the latest when Herald closes');
      assert.equal(summary[0]!.dropped, 40);
    } finally {
      await h.close().catch(() => undefined);
    }
  });

  test('a tab closed as a slow consumer says so in the log', async () => {
    const h = await startAuthHerald({ store: 'memory', maxBufferedBytes: 65_536, maxPerStream: 20_000 });
    try {
      const { token } = await h.herald.mintToken({ kind: 'admin', id: 2 });
      const deaf = await h.open('admin', { query: { token } });
      await deaf.nextOfType('WELCOME');
      (deaf.ws as unknown as { _socket: Socket })._socket.pause();
      const TEXT = 'й'.repeat(1000);
      for (let i = 0; h.herald.hub.count({ kind: 'admin', id: 2 }) > 0; i++) {
        assert.ok(i < 100, 'the tab was never closed');
        await h.herald.notifier.sendBatch(Array.from({ length: 300 }, (_, k) => ({ to: { kind: 'admin', id: 2 }, payload: { TYPE: 'MESSAGE', N: i * 300 + k, TEXT } })));
        await new Promise((r) => setTimeout(r, 10));
      }
      await until(() => lines(h.log(), 'tab closed: slow consumer').length === 1, 5000, 'the log line');
      const [line] = lines(h.log(), 'tab closed: slow consumer');
      assert.equal(line!.who, 'admin:2');
      assert.equal(line!.maxBufferedBytes, 65_536);
      assert.ok(line!.bufferedBytes > 65_536, JSON.stringify(line));
    } finally {
      await h.close();
    }
  });
});
