/**
 * An ack counts only as far as the tab was sent (connection.ts, #acknowledge:
 * `Math.min(seq, lastSent)`). Acks are cumulative, so one numbered past what
 * the tab has would mark as read notifications it was never shown: their
 * status said `acknowledged`, and the person's next new tab was not sent
 * them. Made certain here by holding a reconnecting tab's replay at the
 * store (a real memory store whose reads wait for the test): the stream has
 * SEQ 2 and 3, the tab has been sent neither, and it acks SEQ 3 (and, in the
 * second case, a SEQ far beyond). (Mutation review rA: `Math.min(seq,
 * lastSent)` → `seq` survived the suite.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { MessageStore } from '../src/server/store/message-store.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until, type TestTab } from './helpers/ws-client.js';

/** A real memory store whose replay reads (readAfter) wait, once `hold()` was called, until `release()`. */
function heldReadsStore(): { store: MessageStore; hold(): void; reading(): Promise<void>; release(): void } {
  const inner = new MemoryStore({ maxPerStream: 1000 });
  let gate: Promise<void> | undefined;
  let open = (): void => undefined;
  let reached = (): void => undefined;
  let reachedOnce = new Promise<void>((resolve) => { reached = resolve; });
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'readAfter') {
        return async (...args: Parameters<MessageStore['readAfter']>) => {
          if (gate) {
            reached();
            await gate;
          }
          return target.readAfter(...args);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    hold() {
      gate = new Promise<void>((resolve) => { open = resolve; });
      reachedOnce = new Promise<void>((resolve) => { reached = resolve; });
    },
    reading: () => reachedOnce,
    release() {
      gate = undefined;
      open();
    },
  };
}

/** Sends `text` to admin `aid`, stored; returns its message id. */
async function send(s: TestServer, aid: number, text: string): Promise<string> {
  const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: text } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results[0].messageId as string;
}

/** Whether the message's status says acknowledged. */
async function acknowledged(s: TestServer, id: string): Promise<boolean> {
  const r = await s.api('GET', `/api/v1/messages/${id}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.acknowledged as boolean;
}

/** Resolves once the server has handled every frame the tab sent before: it answers frames in order. */
async function handled(tab: TestTab): Promise<void> {
  const pongs = tab.frames.filter((f) => f?.TYPE === 'PONG').length;
  tab.send({ TYPE: 'PING' });
  await tab.next((f) => f?.TYPE === 'PONG' && tab.frames.filter((g) => g?.TYPE === 'PONG').length > pongs);
}

describe('an ack counts only as far as the tab was sent', () => {
  for (const [what, ackOf] of [['the last SEQ of the stream', (last: number) => last], ['a SEQ far past the stream', (last: number) => last + 1000]] as const) {
    test(`a tab whose replay has not been sent acks ${what}: what it was not sent stays unacknowledged`, async () => {
      const held = heldReadsStore();
      const s = await startHerald({ heartbeatMs: 60_000 }, { store: held.store });
      try {
        const ids = [await send(s, 51, 'a'), await send(s, 51, 'b'), await send(s, 51, 'c')];
        // The person has read a (SEQ 1) in a first tab.
        const first = await s.tab('admin', 51);
        const welcome = await first.nextOfType('WELCOME');
        const a = await first.nextOfType('MESSAGE');
        assert.equal(a.TEXT, 'a');
        first.send({ TYPE: 'RESPONSE', SEQ: a.SEQ, EPOCH: a.EPOCH });
        await until(() => acknowledged(s, ids[0]!), 5000, 'the ack of a');
        first.close();
        await first.closed;

        // A tab comes back with cursor 1: its replay of b and c waits at the store.
        held.hold();
        const tab = await s.tab('admin', 51, { query: { seq: String(a.SEQ), epoch: welcome.EPOCH } });
        await tab.nextOfType('WELCOME');
        await held.reading();
        tab.send({ TYPE: 'RESPONSE', SEQ: ackOf(welcome.SEQ), EPOCH: welcome.EPOCH });
        await handled(tab);
        assert.equal(await acknowledged(s, ids[1]!), false, 'b was not sent to the tab that acked');
        assert.equal(await acknowledged(s, ids[2]!), false, 'c was not sent to the tab that acked');

        // The replay goes on: the tab is sent b and c, and acks neither.
        held.release();
        assert.deepEqual([(await tab.nextOfType('MESSAGE')).TEXT, (await tab.nextOfType('MESSAGE')).TEXT], ['b', 'c']);
        // A new tab of the person is sent what nobody acknowledged: b and c, not a.
        const fresh = await s.tab('admin', 51);
        await fresh.nextOfType('WELCOME');
        assert.deepEqual([(await fresh.nextOfType('MESSAGE')).TEXT, (await fresh.nextOfType('MESSAGE')).TEXT], ['b', 'c']);
        await handled(fresh);
        assert.deepEqual(fresh.notifications().map((f) => f.TEXT), ['b', 'c']);
      } finally {
        held.release();
        await s.close();
      }
    });
  }
});
