/**
 * A notification that a tab's replay already sent, arriving live afterwards
 * (connection.ts, #deliverNow): the send is in the store before it is
 * published, so a tab that connects in between reads it in its replay, and
 * is then published the same SEQ (notifier.ts publishes a stored send even
 * when nobody seemed online, for just such a tab). The live copy is dropped:
 * its SEQ equals the last one the replay sent. Taken for new, it reached the
 * tab twice, and a tab without the library's own check showed it twice.
 * (Mutation review: `origin.seq <= this.#lastSent[...]` → `<`.)
 *
 * The gap between the append and the publish is held open by a real memory
 * store that writes at once and answers the write only when the test says:
 * a slow disk or a broker between nodes makes the same gap, unheld.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { MessageStore } from '../src/server/store/message-store.js';
import { startHerald, type TestServer } from './helpers/server.js';

interface HeldAnswer {
  /** Resolves once the write is in the store (readable), its answer held. */
  written: Promise<void>;
  /** Lets the answer through: the send then publishes. */
  answer(): void;
}

/** A memory store whose next write is stored at once and answered when the test says (holdNext). */
function lateAnswerStore(): { store: MessageStore; holdNext(): HeldAnswer } {
  const inner = new MemoryStore({ maxPerStream: 1000 });
  const holds: Array<{ stored: () => void; gate: Promise<void> }> = [];
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'appendMany') {
        return async (...args: Parameters<MessageStore['appendMany']>) => {
          const results = await target.appendMany(...args);
          const hold = holds.shift();
          if (hold) {
            hold.stored();
            await hold.gate;
          }
          return results;
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    holdNext() {
      let stored!: () => void;
      let answer!: () => void;
      const written = new Promise<void>((resolve) => { stored = resolve; });
      const gate = new Promise<void>((resolve) => { answer = resolve; });
      holds.push({ stored, gate });
      return { written, answer };
    },
  };
}

const message = (text: string) => ({ TYPE: 'MESSAGE', TITLE: 'order', TEXT: text });

describe('a notification replayed to a tab, then published to it live', () => {
  let s: TestServer;
  let late: ReturnType<typeof lateAnswerStore>;
  before(async () => {
    late = lateAnswerStore();
    s = await startHerald({ heartbeatMs: 60_000 }, { store: late.store });
  });
  after(() => s.close());

  async function sent(r: Promise<{ status: number; body: any }>): Promise<void> {
    const res = await r;
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  /** The SEQs of the MESSAGE frames the tab received, in order. */
  const seqs = (frames: any[], broadcast: boolean) =>
    frames.filter((f) => f?.TYPE === 'MESSAGE' && (f.STREAM !== undefined) === broadcast).map((f) => f.SEQ);

  test("a person's notification reaches a tab once: by its replay, not again live", async () => {
    const held = late.holdNext();
    const sending = s.api('POST', '/api/v1/send', { to: { aid: 71 }, message: message('a') });
    await held.written;

    // Connected between the append and the publish: the replay reads it from the store.
    const tab = await s.tab('admin', 71);
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.SEQ, 1);
    const replayed = await tab.nextOfType('MESSAGE');
    assert.deepEqual([replayed.TEXT, replayed.SEQ], ['a', 1]);

    // Now the send publishes the same SEQ live; then one more, to have the stream's order end.
    held.answer();
    await sent(sending);
    await sent(s.api('POST', '/api/v1/send', { to: { aid: 71 }, message: message('b') }));
    const next = await tab.nextOfType('MESSAGE');
    assert.deepEqual([next.TEXT, next.SEQ], ['b', 2], 'the message after the replayed one is the next notification, not it again');
    assert.deepEqual(seqs(tab.frames, false), [1, 2]);
  });

  test('a broadcast reaches a tab once: by its replay, not again live', async () => {
    const held = late.holdNext();
    const sending = s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: message('all-a') });
    await held.written;

    const tab = await s.tab('admin', 72);
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.BROADCAST.SEQ, 1);
    const replayed = await tab.nextOfType('MESSAGE');
    assert.deepEqual([replayed.TEXT, replayed.SEQ], ['all-a', 1]);

    held.answer();
    await sent(sending);
    await sent(s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: message('all-b') }));
    const next = await tab.nextOfType('MESSAGE');
    assert.deepEqual([next.TEXT, next.SEQ], ['all-b', 2], 'the broadcast after the replayed one is the next, not it again');
    assert.deepEqual(seqs(tab.frames, true), [1, 2]);
  });
});
