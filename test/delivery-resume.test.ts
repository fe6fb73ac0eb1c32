/**
 * RESUME frames racing a replay that is still running: the tab must still
 * see its stream once per rewind, in order, with no gap, and live
 * notifications must not overtake a replay.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { withDelivery } from '../src/server/notifier.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { AppendInput, AppendResult, MessageStore } from '../src/server/store/message-store.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { openBareConnection } from './helpers/bare-connection.js';
import { until } from './helpers/ws-client.js';

/**
 * Splits what a tab received at each rewind (a SEQ lower than the one before:
 * a RESUME took effect). Within a segment SEQs must be consecutive (a jump is
 * a lost notification); the last segment must run from after the last cursor
 * to the last SEQ sent.
 */
function assertSegments(seqs: number[], lastStart: number, last: number): void {
  const segments: number[][] = [];
  for (const q of seqs) {
    const cur = segments[segments.length - 1];
    if (cur && q > cur[cur.length - 1]!) cur.push(q);
    else segments.push([q]);
  }
  const shape = JSON.stringify(segments.map((x) => [x[0], x[x.length - 1]]));
  for (const seg of segments) {
    seg.forEach((q, i) => assert.ok(i === 0 || q === seg[i - 1]! + 1, `no gap inside a segment: ${shape} (after ${seg[i - 1]} came ${q})`));
  }
  const final = segments[segments.length - 1]!;
  assert.deepEqual([final[0], final[final.length - 1]], [lastStart, last], `the last segment: ${shape}`);
}

describe('RESUME during a replay, through Herald', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ replayBatch: 10 });
  });
  after(() => s.close());

  test('two RESUMEs sent while the first replay runs, with a live send at the same time', async () => {
    const backlog = 300;
    await Promise.all(Array.from({ length: backlog }, (_, i) => s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'R', N: i + 1 } })));
    const epoch = (await s.herald.store.head('admin:1')).epoch;
    const tab = await s.tab('admin', 1, { query: { seq: '0', epoch } });
    tab.send({ TYPE: 'RESUME', SEQ: 100, EPOCH: epoch });
    tab.send({ TYPE: 'RESUME', SEQ: 200, EPOCH: epoch });
    await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'R', N: backlog + 1 } });
    // Replays let the event loop turn between batches, and a PONG is not queued
    // behind them: what ends the test is the last replay reaching the last SEQ.
    const rewound = (): boolean => {
      const seqs = tab.notifications().map((f) => f.SEQ as number);
      const last = seqs.lastIndexOf(201);
      return last > 0 && seqs[seqs.length - 1] === backlog + 1 && seqs.length - last === backlog + 1 - 200;
    };
    await until(rewound, 10_000, 'the last replay, 201 to the live one');
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    const seqs = tab.notifications().map((f) => f.SEQ as number);
    assertSegments(seqs, 201, backlog + 1);
    assert.equal(seqs[seqs.length - 1], backlog + 1);
    tab.close();
  });
});

/** A store whose every call settles on a later turn of the event loop, as a networked store (Redis) does. */
class SlowStore implements MessageStore {
  constructor(readonly inner: MessageStore) {}
  async #later<T>(v: T | Promise<T>): Promise<T> {
    const r = await v;
    await new Promise((res) => setTimeout(res, 1));
    return r;
  }
  append(input: AppendInput, now: number) { return this.#later(this.inner.append(input, now)); }
  appendMany(inputs: readonly AppendInput[], now: number) { return this.#later(this.inner.appendMany(inputs, now)); }
  head(stream: string) { return this.#later(this.inner.head(stream)); }
  readAfter(stream: string, afterSeq: number, limit: number, now: number) { return this.#later(this.inner.readAfter(stream, afterSeq, limit, now)); }
  ack(stream: string, seq: number) { return this.#later(this.inner.ack(stream, seq)); }
  ackMany(acks: ReadonlyMap<string, number>) { return this.#later(this.inner.ackMany(acks)); }
  status(id: string, now: number) { return this.#later(this.inner.status(id, now)); }
  prune(now: number) { return this.#later(this.inner.prune(now)); }
  counts() { return this.inner.counts(); }
  close() { return this.inner.close(); }
}

describe('the replay seam over a store that answers asynchronously', () => {
  test('RESUMEs racing the first replay and live frames: every run in order, none cut short', async () => {
    const store = new SlowStore(new MemoryStore({ maxPerStream: 10_000 }));
    const backlog = 100;
    const appended: AppendResult[] = [];
    for (let i = 1; i <= backlog; i++) appended.push(await store.append({ stream: 'admin:1', json: `{"TYPE":"R","N":${i}}`, expiresAt: Date.now() + 60_000 }, Date.now()));
    const epoch = appended[0]!.epoch;
    const { conn, tab, close } = await openBareConnection(store, { own: { seq: 0, epoch } });
    try {
    await tab.nextOfType('WELCOME');
    // A tab rewinds to what it really has (e.g. a reload restoring an older cursor), twice, mid-replay.
    await tab.next((f) => f.SEQ === 20);
    tab.send({ TYPE: 'RESUME', SEQ: 15, EPOCH: epoch });
    await tab.next((f) => f.SEQ === 25);
    tab.send({ TYPE: 'RESUME', SEQ: 22, EPOCH: epoch });
    // Live frames arriving while the replays run, as the Hub would deliver them after each append.
    for (let i = backlog + 1; i <= backlog + 5; i++) {
      await new Promise((r) => setTimeout(r, 3));
      const r = await store.append({ stream: 'admin:1', json: `{"TYPE":"R","N":${i}}`, expiresAt: Date.now() + 60_000 }, Date.now());
      conn.deliver(withDelivery(`{"TYPE":"R","N":${i}}`, r.seq, r.epoch, false), { stream: 'own', seq: r.seq, expiresAt: Date.now() + 60_000 });
    }
    await tab.next((f) => f.SEQ === backlog + 5, 10_000);
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    await new Promise((r) => setTimeout(r, 200));
    const seqs = tab.notifications().map((f) => f.SEQ as number);
    if (process.env.DEBUG_RESUME) console.log(JSON.stringify(tab.frames.map((f) => f.SEQ ?? f.TYPE)));
    assertSegments(seqs, 23, backlog + 5);
    assert.equal(seqs[seqs.length - 1], backlog + 5);
    } finally {
      close();
    }
  });
});

describe('a large replay to a slow reader', () => {
  test('is paced by the socket instead of closing the tab as a slow consumer', async () => {
    const s = await startHerald({ maxBufferedBytes: 65536, maxPerStream: 1000 });
    try {
      const text = 'x'.repeat(4000);
      const backlog = 1000; // 4 MB: far beyond maxBufferedBytes and the loopback socket's buffers
      for (let i = 1; i <= backlog; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, k) => s.api('POST', '/api/v1/send', { to: { aid: 9 }, message: { TYPE: 'BIG', N: i + k, TEXT: text } })));
      }
      const token = await s.token('admin', 9);
      // A reader that stops reading for a moment right after the handshake, as a slow link would.
      const ws = new (await import('ws')).default(`${s.wsUrl}/ws/admin?token=${token}`);
      ws.on('open', () => {
        const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
        socket.pause();
        setTimeout(() => socket.resume(), 500);
      });
      let got = 0;
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      const all = new Promise<void>((resolve) => ws.on('message', (d) => {
        if ((JSON.parse(d.toString()) as { TYPE: string }).TYPE === 'BIG' && ++got === backlog) resolve();
      }));
      const outcome = await Promise.race([all.then(() => 'all'), closed.then((code) => `closed ${code} after ${got}`)]);
      assert.equal(outcome, 'all');
      ws.close();
    } finally {
      await s.close();
    }
  });
});

/** A store whose reads after the first wait until the test lets them go, as a replay paced by a slow socket waits between pages. */
class GatedStore extends SlowStore {
  reads = 0;
  gate: Promise<void> | undefined;
  override readAfter(stream: string, afterSeq: number, limit: number, now: number) {
    const gate = ++this.reads > 1 ? this.gate : undefined;
    return (gate ?? Promise.resolve()).then(() => this.inner.readAfter(stream, afterSeq, limit, now));
  }
}

describe('the cap dropping notifications while a replay runs', () => {
  test('what it dropped between two pages is announced with RESET, never skipped silently', async () => {
    // A full stream (cap 20); the tab resumes from 0 and is replayed in pages of 10.
    const store = new GatedStore(new MemoryStore({ maxPerStream: 20 }));
    const append = (n: number) => store.inner.append({ stream: 'admin:1', json: `{"TYPE":"R","N":${n}}`, expiresAt: Date.now() + 60_000 }, Date.now());
    let epoch = '';
    for (let i = 1; i <= 20; i++) epoch = (await append(i)).epoch;
    let open!: () => void;
    store.gate = new Promise((resolve) => { open = resolve; });
    const { conn, tab, close } = await openBareConnection(store, { own: { seq: 0, epoch } });
    try {
      await tab.next((f) => f.SEQ === 10);
      // Between the pages, 15 more sends push 1..15 out (11..15 not yet replayed); they go live (held).
      for (let i = 21; i <= 35; i++) {
        const r = await append(i);
        conn.deliver(withDelivery(`{"TYPE":"R","N":${i}}`, r.seq, r.epoch, false), { stream: 'own', seq: r.seq, expiresAt: Date.now() + 60_000 });
      }
      open();
      await tab.next((f) => f.SEQ === 35);
      const seen = tab.frames.filter((f) => f.TYPE === 'R' || f.TYPE === 'RESET').map((f) => (f.TYPE === 'RESET' ? `RESET ${f.SEQ} ${f.REASON}` : f.SEQ));
      const expected: Array<number | string> = Array.from({ length: 10 }, (_, i) => i + 1);
      expected.push('RESET 15 too far behind');
      for (let i = 16; i <= 35; i++) expected.push(i);
      assert.deepEqual(seen, expected);
    } finally {
      close();
    }
  });
});

describe('notifications that expire while a replay runs', () => {
  test('are not sent by its later pages, read after the slow socket let it go on', async () => {
    const s = await startHerald({ maxBufferedBytes: 65536, maxPerStream: 1000, replayBatch: 100 });
    try {
      const text = 'x'.repeat(15_000);
      const send = (n: number, ttl?: number) => s.api('POST', '/api/v1/send', { to: { aid: 9 }, message: { TYPE: 'BIG', N: n, TEXT: text }, ...(ttl === undefined ? {} : { ttl }) });
      // 15 MB that live a day, far beyond the loopback socket's buffers, then 100 that live a second.
      for (let i = 1; i <= 900; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => send(i + k)));
      await Promise.all(Array.from({ length: 100 }, (_, k) => send(901 + k, 1)));
      const token = await s.token('admin', 9);
      const ws = new (await import('ws')).default(`${s.wsUrl}/ws/admin?token=${token}&seq=0&epoch=${(await s.herald.store.head('admin:9')).epoch}`);
      const seqs: number[] = [];
      const done = new Promise<void>((resolve) => ws.on('message', (d) => {
        const f = JSON.parse(d.toString()) as { TYPE: string; SEQ?: number };
        if (f.TYPE === 'BIG') seqs.push(f.SEQ!);
        if (f.SEQ === 1001) resolve();
      }));
      // The reader stops reading until the short-lived ones have expired: the replay waits for the socket.
      await new Promise<void>((resolve) => ws.on('open', () => {
        const socket = (ws as unknown as { _socket: import('node:net').Socket })._socket;
        socket.pause();
        setTimeout(() => {
          socket.resume();
          resolve();
        }, 1500);
      }));
      await send(1001);
      await done;
      // (Read before the reader stopped, 901..1000 would have been sent in time: the socket held the replay up.)
      assert.deepEqual(seqs.filter((q) => q > 900), [1001], 'nothing that had expired was sent');
      assert.equal(seqs.length, 901);
      ws.close();
    } finally {
      await s.close();
    }
  });
});
