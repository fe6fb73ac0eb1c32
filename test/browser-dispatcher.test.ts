/**
 * The DOM-free parts of the browser library, in Node: the dispatcher's
 * rules, the connection events' emitter, full-jitter backoff, and the
 * delivery cursors (dedupe, batched cumulative acks, RESET, another
 * person's cursors). The rest runs in Chromium (browser-library,
 * browser-reconnect, browser-connect, browser-page-load).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Dispatcher, toNotification } from '../src/client/dispatcher.js';
import { Backoff } from '../src/client/backoff.js';
import { DeliveryTracker } from '../src/client/delivery.js';
import { Emitter } from '../src/client/emitter.js';
import type { ClientFrame, WelcomeFrame } from '../src/protocol/frames.js';

/**
 * A clock of its own for the tests of ack timing: setTimeout is node:test's
 * mock, and run(ms) advances it a millisecond at a time, so `now()` in a
 * send callback is when the tracker's wait ended, in virtual ms. Real timers
 * on a loaded machine fire late and together (a blocked event loop once
 * showed twenty jittered acks "spread over 0.1 ms").
 */
function virtualClock(tc: TestContext): { now: () => number; run: (ms: number) => void } {
  tc.mock.timers.enable({ apis: ['setTimeout'] });
  let now = 0;
  return {
    now: () => now,
    run(ms) {
      for (let i = 0; i < ms; i++) {
        now++;
        tc.mock.timers.tick(1);
      }
    },
  };
}

describe('Dispatcher', () => {
  it('runs handlers of a TYPE in registration order, then the built-in', () => {
    const d = new Dispatcher();
    const order: string[] = [];
    d.on('MESSAGE', () => order.push('a'));
    d.extend({ TYPE: 'MESSAGE', CALLBACK: () => order.push('b') });
    d.setBuiltin('MESSAGE', () => order.push('builtin'));
    d.on('MESSAGE', () => order.push('c'));
    const r = d.dispatch({ TYPE: 'MESSAGE' });
    assert.deepEqual(order, ['a', 'b', 'c', 'builtin']);
    assert.deepEqual(r, { handled: 3, builtin: true, fallback: false });
  });

  it('reports a throwing handler and still runs the others', () => {
    const d = new Dispatcher();
    const errors: string[] = [];
    d.setErrorReporter((e, _m, type) => errors.push(`${type}:${(e as Error).message}`));
    const ran: number[] = [];
    d.on('X', () => {
      throw new Error('boom');
    });
    d.on('X', () => ran.push(2));
    d.dispatch({ TYPE: 'X' });
    assert.deepEqual(ran, [2]);
    assert.deepEqual(errors, ['X:boom']);
  });

  it('sends unknown TYPEs to the fallback, and only those', () => {
    const d = new Dispatcher();
    const fallback: string[] = [];
    d.setFallback((m) => fallback.push(m.TYPE));
    d.extend({ TYPE: 'MINE', CALLBACK: () => {} });
    d.setBuiltin('EVENT', () => {});
    d.dispatch({ TYPE: 'MINE' });
    d.dispatch({ TYPE: 'EVENT' });
    d.dispatch({ TYPE: 'OTHER' });
    assert.deepEqual(fallback, ['OTHER']);
  });

  it('preventDefault skips the built-in; unsubscribe removes exactly one registration', () => {
    const d = new Dispatcher();
    let builtin = 0;
    let calls = 0;
    d.setBuiltin('MESSAGE', () => builtin++);
    const h = () => calls++;
    const off1 = d.on('MESSAGE', h);
    d.on('MESSAGE', h);
    const offPrevent = d.on('MESSAGE', (_m, ctx) => ctx.preventDefault());
    d.dispatch({ TYPE: 'MESSAGE' });
    assert.equal(builtin, 0);
    assert.equal(calls, 2);
    off1();
    off1();
    offPrevent();
    d.dispatch({ TYPE: 'MESSAGE' });
    assert.equal(calls, 3);
    assert.equal(builtin, 1);
  });

  it('a handler that unsubscribes itself does not disturb this dispatch', () => {
    const d = new Dispatcher();
    const ran: string[] = [];
    const off = d.on('X', () => {
      ran.push('once');
      off();
    });
    d.on('X', () => ran.push('always'));
    d.dispatch({ TYPE: 'X' });
    d.dispatch({ TYPE: 'X' });
    assert.deepEqual(ran, ['once', 'always', 'always']);
  });

  it('rejects a malformed extend() with a TypeError', () => {
    const d = new Dispatcher();
    assert.throws(() => d.extend({ TYPE: 'X' } as never), TypeError);
    assert.throws(() => d.on('', () => {}), TypeError);
  });

  it('turns a plain string into a MESSAGE, and DATA without TYPE into a MESSAGE (as the old daemon did)', () => {
    assert.deepEqual(toNotification('hello'), { TYPE: 'MESSAGE', TEXT: 'hello' });
    assert.deepEqual(toNotification({ TITLE: 't' }), { TITLE: 't', TYPE: 'MESSAGE' });
    assert.equal(toNotification([1]), undefined);
    assert.equal(toNotification(null), undefined);
  });
});

describe('Emitter', () => {
  it('off() removes a listener added with once(), as it does one added with on()', () => {
    const e = new Emitter<{ connected: number }>();
    const got: string[] = [];
    const first = (n: number) => got.push(`once ${n}`);
    const always = (n: number) => got.push(`on ${n}`);
    e.once('connected', first);
    e.on('connected', always);
    e.off('connected', first);
    e.emit('connected', 1);
    e.off('connected', always);
    e.emit('connected', 2);
    assert.deepEqual(got, ['on 1']);
  });

  it('a once() listener runs once, and its returned function still removes it', () => {
    const e = new Emitter<{ state: string }>();
    const got: string[] = [];
    e.once('state', (s) => got.push(s));
    const off = e.once('state', (s) => got.push(`never ${s}`));
    off();
    e.emit('state', 'open');
    e.emit('state', 'closed');
    assert.deepEqual(got, ['open']);
  });
});

describe('Backoff', () => {
  it('draws each delay from [0, min(cap, base·2^n)] and never stops', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.999999, noNaN: true }), fc.integer({ min: 1, max: 80 }), (r, n) => {
        const b = new Backoff({ baseMs: 500, capMs: 30_000, random: () => r });
        let last = 0;
        for (let i = 0; i < n; i++) {
          last = b.next();
          const ceiling = Math.min(30_000, 500 * 2 ** i);
          assert.ok(last >= 0 && last < ceiling + 1, `attempt ${i}: ${last} within [0, ${ceiling}]`);
        }
        return Number.isFinite(last);
      }),
    );
  });

  it('reaches the cap and starts over after reset()', () => {
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.999 });
    const delays = Array.from({ length: 8 }, () => b.next());
    assert.deepEqual(delays.slice(-3), [999, 999, 999]);
    b.reset();
    assert.equal(b.next(), 99);
  });
});

describe('DeliveryTracker', () => {
  function tracker(ackDelayMs = 5, broadcastAckDelayMs = ackDelayMs) {
    const sent: ClientFrame[] = [];
    const t = new DeliveryTracker({ storageKey: undefined, send: (f) => (sent.push(f), true), ackDelayMs, broadcastAckDelayMs });
    return { t, sent };
  }
  const welcome = (id: number): WelcomeFrame => ({
    TYPE: 'WELCOME', KIND: 'admin', ID: id, SESSION: 's', HEARTBEAT: 1000, SEQ: 0, EPOCH: 'e', ACK_MS: 0, BROADCAST: { SEQ: 0, EPOCH: 'b', ACK_MS: 2000 },
  });

  it('drops a frame at or below the cursor of the same epoch, per stream', () => {
    const { t } = tracker();
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' }).kind, 'new');
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 2, EPOCH: 'e' }).kind, 'new');
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 2, EPOCH: 'e' }).kind, 'duplicate');
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' }).kind, 'duplicate');
    // The broadcast stream has its own cursor.
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'b', STREAM: '*' }).kind, 'new');
    // Untracked frames always pass.
    assert.equal(t.accept({ TYPE: 'MESSAGE' }).kind, 'untracked');
    assert.deepEqual(t.resumeParams(), { seq: '2', epoch: 'e', bseq: '1', bepoch: 'b' });
    t.dispose();
  });

  it('acks cumulatively, batched: one RESPONSE per stream for a burst', async () => {
    const { t, sent } = tracker(20);
    for (let s = 1; s <= 50; s++) t.accept({ TYPE: 'MESSAGE', SEQ: s, EPOCH: 'e' });
    t.accept({ TYPE: 'MESSAGE', SEQ: 3, EPOCH: 'b', STREAM: '*' });
    assert.deepEqual(sent, []);
    // The own wait is 0.5–1.5× the delay, the broadcast one 0–2×: both are out by 40 ms.
    await new Promise((r) => setTimeout(r, 55));
    // In either order: the two waits are drawn independently.
    const own = sent.filter((f) => !('STREAM' in f));
    assert.deepEqual(own, [{ TYPE: 'RESPONSE', SEQ: 50, EPOCH: 'e' }]);
    assert.deepEqual(sent.filter((f) => !own.includes(f)), [{ TYPE: 'RESPONSE', SEQ: 3, STREAM: '*', EPOCH: 'b' }]);
    t.dispose();
  });

  it('acks the broadcast stream on its own delay; flush sends both at once', async () => {
    const { t, sent } = tracker(10, 120);
    t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' });
    t.accept({ TYPE: 'MESSAGE', SEQ: 7, EPOCH: 'b', STREAM: '*' });
    t.accept({ TYPE: 'MESSAGE', SEQ: 8, EPOCH: 'b', STREAM: '*' });
    // The own ack is out by 15 ms, the broadcast one by 240.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(sent.filter((f) => !('STREAM' in f)), [{ TYPE: 'RESPONSE', SEQ: 1, EPOCH: 'e' }]);
    // One broadcast ack for both, cumulative.
    assert.deepEqual(sent.filter((f) => 'STREAM' in f), [{ TYPE: 'RESPONSE', SEQ: 8, STREAM: '*', EPOCH: 'b' }]);
    t.accept({ TYPE: 'MESSAGE', SEQ: 9, EPOCH: 'b', STREAM: '*' });
    t.accept({ TYPE: 'MESSAGE', SEQ: 2, EPOCH: 'e' });
    t.flush();
    assert.deepEqual(sent.slice(2), [{ TYPE: 'RESPONSE', SEQ: 2, EPOCH: 'e' }, { TYPE: 'RESPONSE', SEQ: 9, STREAM: '*', EPOCH: 'b' }]);
    t.dispose();
  });

  it('spreads broadcast acks over 0–2× the delay, and takes a longer delay from WELCOME', (tc) => {
    const clock = virtualClock(tc);
    const at: number[] = [];
    const trackers = Array.from({ length: 200 }, () => {
      const t = new DeliveryTracker({ storageKey: undefined, send: () => (at.push(clock.now()), true), broadcastAckDelayMs: 20 });
      // The server asks for 500 ms (many tabs open); a shorter ask would leave the page's 20.
      t.welcome({ ...welcome(1), BROADCAST: { SEQ: 0, EPOCH: 'b', ACK_MS: 500 } });
      t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'b', STREAM: '*' });
      return t;
    });
    clock.run(350);
    // With the page's 20 ms every ack would be out by 40; with 500, most are still waiting.
    const early = at.length;
    clock.run(800);
    for (const t of trackers) t.dispose();
    assert.equal(at.length, 200);
    assert.ok(early > 0 && early < 150, `${early} of 200 acks in the first 350 ms (waits 0–1000 ms)`);
    // Uniform over 0–1000 ms: some soon (the first ack of a broadcast is not held back), some late.
    assert.ok(Math.min(...at) < 250, `earliest ack at ${Math.min(...at)} ms`);
    assert.ok(Math.max(...at) > 750, `latest ack at ${Math.max(...at)} ms`);
  });

  it('keeps the page\'s broadcast delay when WELCOME asks for less', (tc) => {
    const clock = virtualClock(tc);
    const at: number[] = [];
    const trackers = Array.from({ length: 50 }, () => {
      const t = new DeliveryTracker({ storageKey: undefined, send: () => (at.push(clock.now()), true), broadcastAckDelayMs: 400 });
      t.welcome({ ...welcome(1), BROADCAST: { SEQ: 0, EPOCH: 'b', ACK_MS: 5 } });
      t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'b', STREAM: '*' });
      return t;
    });
    clock.run(60);
    for (const t of trackers) t.dispose();
    // Waits of 0–800 ms: fifty of them all within 60 ms would mean the 5 ms ask won.
    assert.ok(at.length < 25, `${at.length} of 50 acks within 60 ms`);
  });

  it('waits the longer of the page\'s own ack delay and the one WELCOME asks for (many tabs open)', (tc) => {
    const clock = virtualClock(tc);
    const at: Record<string, number[]> = { asked: [], page: [] };
    const trackers = [
      // The server asks for 400 ms on average; the page's 20 would ack within 30.
      ...Array.from({ length: 20 }, () => ({ kind: 'asked', ackDelayMs: 20, ACK_MS: 400 })),
      // The server asks for 5 ms (few tabs); the page's 200 stands.
      ...Array.from({ length: 20 }, () => ({ kind: 'page', ackDelayMs: 200, ACK_MS: 5 })),
    ].map(({ kind, ackDelayMs, ACK_MS }) => {
      const t = new DeliveryTracker({ storageKey: undefined, send: () => (at[kind]!.push(clock.now()), true), ackDelayMs });
      t.welcome({ ...welcome(1), ACK_MS });
      t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' });
      return t;
    });
    clock.run(900);
    for (const t of trackers) t.dispose();
    // Each wait is drawn from 0.5–1.5× the delay: 200–600 ms, and 100–300 ms.
    assert.equal(at.asked!.length, 20);
    assert.ok(Math.min(...at.asked!) >= 199, `earliest ack asked to wait 400 ms came at ${Math.min(...at.asked!)} ms`);
    assert.equal(at.page!.length, 20);
    assert.ok(Math.min(...at.page!) >= 99, `earliest ack with the page's 200 ms came at ${Math.min(...at.page!)} ms`);
  });

  it('takes the waits a later PACE frame asks for, longer or shorter, from the next wait on', (tc) => {
    const clock = virtualClock(tc);
    const at: Record<string, number[]> = { longer: [], shorter: [] };
    const trackers = (['longer', 'shorter'] as const).flatMap((kind) => Array.from({ length: 20 }, () => {
      const t = new DeliveryTracker({ storageKey: undefined, send: () => (at[kind]!.push(clock.now()), true), ackDelayMs: 20 });
      // WELCOME asked for 5 ms (the page's 20 stands), or for 400.
      t.welcome({ ...welcome(1), ACK_MS: kind === 'longer' ? 5 : 400 });
      // Then the node filled up, or emptied.
      t.pace({ ACK_MS: kind === 'longer' ? 400 : 5, BROADCAST: { ACK_MS: 2000 } });
      t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' });
      return t;
    }));
    clock.run(900);
    for (const t of trackers) t.dispose();
    // 0.5–1.5× 400 ms: 200–600 ms; 0.5–1.5× the page's 20: 10–30 ms.
    assert.equal(at.longer!.length, 20);
    assert.ok(Math.min(...at.longer!) >= 199, `earliest ack after PACE asked for 400 ms came at ${Math.min(...at.longer!)} ms`);
    assert.equal(at.shorter!.length, 20);
    assert.ok(Math.max(...at.shorter!) < 150, `latest ack after PACE asked for 5 ms came at ${Math.max(...at.shorter!)} ms`);
  });

  it('jitters the ack wait, so tabs that got the same frame at once do not all ack at once', (tc) => {
    const clock = virtualClock(tc);
    const at: number[] = [];
    const trackers = Array.from({ length: 20 }, () => {
      const t = new DeliveryTracker({ storageKey: undefined, send: () => (at.push(clock.now()), true), ackDelayMs: 100 });
      t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e' });
      return t;
    });
    clock.run(250);
    for (const t of trackers) t.dispose();
    assert.equal(at.length, 20);
    // Each wait is 50–150 ms; twenty all within 10 ms of each other would mean no jitter.
    assert.ok(Math.min(...at) >= 49, `earliest ack at ${Math.min(...at)} ms`);
    assert.ok(Math.max(...at) - Math.min(...at) > 10, `acks spread over ${Math.max(...at) - Math.min(...at)} ms`);
  });

  it('keeps an ack pending while the socket is closed and sends it on flush', () => {
    let open = false;
    const sent: ClientFrame[] = [];
    const t = new DeliveryTracker({ storageKey: undefined, send: (f) => (open ? (sent.push(f), true) : false), ackDelayMs: 1000 });
    t.accept({ TYPE: 'MESSAGE', SEQ: 4, EPOCH: 'e' });
    t.flush();
    assert.deepEqual(sent, []);
    open = true;
    t.flush();
    assert.deepEqual(sent, [{ TYPE: 'RESPONSE', SEQ: 4, EPOCH: 'e' }]);
    t.dispose();
  });

  it('adopts a RESET and accepts what follows it', () => {
    const { t } = tracker();
    t.accept({ TYPE: 'MESSAGE', SEQ: 9, EPOCH: 'old' });
    t.reset({ TYPE: 'RESET', EPOCH: 'new', SEQ: 0, REASON: 'epoch changed' });
    assert.deepEqual(t.cursor('own'), { SEQ: 0, EPOCH: 'new' });
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'new' }).kind, 'new');
    t.dispose();
  });

  it('forgets cursors that belong to another person', () => {
    const { t } = tracker();
    t.welcome(welcome(1));
    t.accept({ TYPE: 'MESSAGE', SEQ: 5, EPOCH: 'e' });
    t.welcome(welcome(1));
    assert.equal(t.cursor('own')?.SEQ, 5);
    t.welcome(welcome(2));
    assert.equal(t.cursor('own'), undefined);
    t.dispose();
  });
});
