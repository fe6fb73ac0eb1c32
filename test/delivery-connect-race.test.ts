/**
 * The seam where a tab connects (or closes) while a send to its person is in
 * flight: counted, but not yet appended, or appended and published while the
 * tab's own replay read waits. A model-based test cannot reach these windows
 * by timing, so the store is held at the exact point and released by the
 * test. Each tab must get every notification exactly once, in SEQ order,
 * without reconnecting.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { AppendInput, AppendResult, MessageStore, ReadResult, StreamHead } from '../src/server/store/message-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { gatedStore } from './helpers/gated-store.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until, type TestTab } from './helpers/ws-client.js';

/** A point the test holds a store call at: `reached` once the call is there, `release()` lets it go on. */
interface Hold {
  reached: Promise<void>;
  release(): void;
}

type HoldWhen = 'before' | 'after';

/**
 * A real store (memory unless given) whose next `appendMany`, `readAfter` or
 * `head` of a stream can be held: `before` holds it before the store reads (it then sees whatever was
 * appended meanwhile), `after` reads first and holds the answer (a snapshot
 * from before the appends that happen meanwhile, as a networked store's
 * answer in flight would be).
 */
function holdingStore(inner: MessageStore = new MemoryStore({ maxPerStream: 1000 })): { store: MessageStore; hold(method: 'readAfter' | 'head' | 'appendMany', stream: string, when: HoldWhen): Hold } {
  const holds: Array<{ method: string; stream: string; when: HoldWhen; arrive: () => void; gate: Promise<void> }> = [];
  const take = (method: string, stream: string) => {
    const i = holds.findIndex((h) => h.method === method && h.stream === stream);
    return i < 0 ? undefined : holds.splice(i, 1)[0];
  };
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'appendMany') {
        // Held before the store sees it (`when` is ignored): the send is counted, not yet appended.
        return async (inputs: readonly AppendInput[], now: number): Promise<AppendResult[]> => {
          const i = holds.findIndex((h) => h.method === 'appendMany' && inputs.some((x) => x.stream === h.stream));
          const h = i < 0 ? undefined : holds.splice(i, 1)[0];
          if (h) {
            h.arrive();
            await h.gate;
          }
          return target.appendMany(inputs, now);
        };
      }
      if (key === 'readAfter') {
        return async (stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> => {
          const h = take('readAfter', stream);
          if (!h) return target.readAfter(stream, afterSeq, limit, now);
          if (h.when === 'after') {
            const r = await target.readAfter(stream, afterSeq, limit, now);
            h.arrive();
            await h.gate;
            return r;
          }
          h.arrive();
          await h.gate;
          return target.readAfter(stream, afterSeq, limit, now);
        };
      }
      if (key === 'head') {
        return (stream: string): StreamHead | Promise<StreamHead> => {
          const h = take('head', stream);
          if (!h) return target.head(stream);
          if (h.when === 'after') {
            const r = target.head(stream);
            h.arrive();
            return h.gate.then(() => r);
          }
          h.arrive();
          return h.gate.then(() => target.head(stream));
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    hold(method, stream, when) {
      let arrive!: () => void;
      const reached = new Promise<void>((r) => { arrive = r; });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      holds.push({ method, stream, when, arrive, gate });
      return { reached, release };
    },
  };
}

function send(s: TestServer, to: unknown, title: string) {
  return s.api('POST', '/api/v1/send', { to, message: { TYPE: 'MESSAGE', TITLE: title } });
}

/** Waits until the server has written everything it had for the tab: a PING's PONG comes after it. */
async function settle(tab: TestTab): Promise<void> {
  tab.send({ TYPE: 'PING' });
  await tab.nextOfType('PONG');
}

function ownSeqs(tab: TestTab): number[] {
  return tab.notifications().filter((f) => f.STREAM === undefined).map((f) => f.SEQ as number);
}

function broadcastSeqs(tab: TestTab): number[] {
  return tab.notifications().filter((f) => f.STREAM === '*').map((f) => f.SEQ as number);
}

/** The tab is still the one it was: one WELCOME, no RESET, no close notice, and the socket open. */
function assertSameConnection(tab: TestTab): void {
  assert.equal(tab.frames.filter((f) => f?.TYPE === 'WELCOME').length, 1, 'one WELCOME: the tab never reconnected');
  assert.deepEqual(tab.frames.filter((f) => f?.TYPE === 'RESET' || f?.TYPE === 'close'), [], 'no RESET, no close');
  assert.equal(tab.ws.readyState, tab.ws.OPEN);
}

describe('a tab connects while a send to its person is held in the store (the append)', () => {
  test('1. no tab when planned, the tab connects before the append completes: it gets it once, live, and is counted', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const sending = send(s, { aid: 7 }, 'in flight');
      await g.written(1);
      const tab = await s.tab('admin', 7);
      const welcome = await tab.nextOfType('WELCOME');
      assert.equal(welcome.SEQ, 0, 'WELCOME was read before the append');
      g.open();
      const r = await sending;
      assert.equal(r.status, 200);
      assert.equal(r.body.results[0].delivered, 1, 'the tab that connected meanwhile was written it live');
      assert.equal(r.body.results[0].queued, true);
      assert.equal(r.body.results[0].seq, 1);
      await tab.next((f) => f.TITLE === 'in flight');
      await settle(tab);
      assert.deepEqual(ownSeqs(tab), [1]);
      assert.equal(tab.notifications()[0].EPOCH, welcome.EPOCH, 'the EPOCH WELCOME named');
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });

  test('1. with a backlog: the tab replays what was stored, then gets the held send once, after it', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      // Stored before the gate: append() reaches the inner store's own appendMany, not the gated one.
      await g.store.append({ stream: 'admin:7', json: '{"TYPE":"MESSAGE","TITLE":"stored"}', expiresAt: Date.now() + 60_000 }, Date.now());
      const sending = send(s, { aid: 7 }, 'in flight');
      await g.written(1);
      const tab = await s.tab('admin', 7);
      const welcome = await tab.nextOfType('WELCOME');
      assert.equal(welcome.SEQ, 1);
      await tab.next((f) => f.TITLE === 'stored');
      g.open();
      const r = await sending;
      assert.equal(r.body.results[0].seq, 2);
      await tab.next((f) => f.TITLE === 'in flight');
      await settle(tab);
      assert.deepEqual(ownSeqs(tab), [1, 2]);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });

  test('1. a batch of stored, live-only and stored items: the tab that connected while it was held gets all three, in order', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const sending = s.api('POST', '/api/v1/send/batch', { messages: [
        { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TITLE: 'first, stored' } },
        { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TITLE: 'second, live only' }, ttl: 0 },
        { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TITLE: 'third, stored' } },
      ] });
      await g.written(1);
      const tab = await s.tab('admin', 7);
      await tab.nextOfType('WELCOME');
      g.open();
      const r = await sending;
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.results.map((x: { delivered: number }) => x.delivered), [1, 1, 1]);
      await tab.next((f) => f.TITLE === 'third, stored');
      await settle(tab);
      assert.deepEqual(tab.notifications().map((f) => f.TITLE), ['first, stored', 'second, live only', 'third, stored']);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });

  test('1. a tab that resumes with a cursor while the append is held', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const epoch = (await s.herald.store.head('admin:7')).epoch;
      const sending = send(s, { aid: 7 }, 'in flight');
      await g.written(1);
      const tab = await s.tab('admin', 7, { query: { seq: '0', epoch } });
      await tab.nextOfType('WELCOME');
      g.open();
      assert.equal((await sending).body.results[0].seq, 1);
      await tab.next((f) => f.TITLE === 'in flight');
      await settle(tab);
      assert.deepEqual(ownSeqs(tab), [1]);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });
});

describe('a send completes while the connecting tab\'s read of the store is held', () => {
  for (const when of ['before', 'after'] as const) {
    test(`2. the replay read held (${when} it reads): the backlog, then the live send, each once, in SEQ order`, async () => {
      const h = holdingStore();
      const s = await startHerald({}, { store: h.store });
      try {
        const first = await send(s, { aid: 7 }, 'stored');
        assert.equal(first.body.results[0].seq, 1);
        const read = h.hold('readAfter', 'admin:7', when);
        const tab = await s.tab('admin', 7);
        await read.reached;
        const r = await send(s, { aid: 7 }, 'live');
        assert.equal(r.body.results[0].seq, 2);
        assert.equal(r.body.results[0].delivered, 1, 'the tab was in the Hub');
        read.release();
        await tab.next((f) => f.TITLE === 'live');
        await settle(tab);
        assert.deepEqual(ownSeqs(tab), [1, 2]);
        assertSameConnection(tab);
      } finally {
        await s.close();
      }
    });

    test(`2. the connect's head read held (${when} it reads), a send appended and published meanwhile: once`, async () => {
      const h = holdingStore();
      const s = await startHerald({}, { store: h.store });
      try {
        const head = h.hold('head', 'admin:7', when);
        const opening = s.tab('admin', 7);
        await head.reached;
        const r = await send(s, { aid: 7 }, 'live');
        assert.equal(r.body.results[0].seq, 1);
        head.release();
        const tab = await opening;
        const welcome = await tab.nextOfType('WELCOME');
        assert.equal(welcome.SEQ, when === 'after' ? 0 : 1);
        await tab.next((f) => f.TITLE === 'live');
        await settle(tab);
        assert.deepEqual(ownSeqs(tab), [1]);
        assertSameConnection(tab);
      } finally {
        await s.close();
      }
    });
  }
});

describe('a broadcast in flight while a tab of that kind connects', () => {
  test('3. the broadcast\'s append held, the tab connects, then the append completes: once, live', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const sending = send(s, { all: 'admins' }, 'to all');
      await g.written(1);
      const tab = await s.tab('admin', 7);
      const welcome = await tab.nextOfType('WELCOME');
      assert.equal(welcome.BROADCAST.SEQ, 0);
      g.open();
      const r = await sending;
      assert.equal(r.status, 200);
      assert.equal(r.body.seq, 1);
      assert.equal(r.body.queued, true);
      await tab.next((f) => f.TITLE === 'to all');
      await settle(tab);
      assert.deepEqual(broadcastSeqs(tab), [1]);
      assert.deepEqual(ownSeqs(tab), []);
      assert.equal(tab.notifications()[0].EPOCH, welcome.BROADCAST.EPOCH);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });

  for (const when of ['before', 'after'] as const) {
    test(`3. the tab's broadcast replay read held (${when} it reads), a broadcast published meanwhile: once each, in order`, async () => {
      const h = holdingStore();
      const s = await startHerald({}, { store: h.store });
      try {
        assert.equal((await send(s, { all: 'admins' }, 'stored')).body.seq, 1);
        const read = h.hold('readAfter', 'admin:*', when);
        const tab = await s.tab('admin', 7);
        await read.reached;
        const r = await send(s, { all: 'admins' }, 'live');
        assert.equal(r.body.seq, 2);
        read.release();
        await tab.next((f) => f.TITLE === 'live');
        await settle(tab);
        assert.deepEqual(broadcastSeqs(tab), [1, 2]);
        assertSameConnection(tab);
      } finally {
        await s.close();
      }
    });
  }

  test('3. a broadcast and a send to the person in flight together, the tab connects between: each stream once', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const both = Promise.all([send(s, { all: 'admins' }, 'to all'), send(s, { aid: 7 }, 'to 7')]);
      await g.written(2);
      const tab = await s.tab('admin', 7);
      await tab.nextOfType('WELCOME');
      g.open();
      await both;
      // The two streams' frames may come in either order.
      await until(() => tab.notifications().length >= 2, 5000, 'both notifications');
      await settle(tab);
      assert.deepEqual(broadcastSeqs(tab), [1]);
      assert.deepEqual(ownSeqs(tab), [1]);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });
});

describe('a tab closes while a send to it is held in the store', () => {
  test('4. the answer does not count the tab that began to close, says queued, and the next tab gets it once', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const first = await s.tab('admin', 7);
      await first.nextOfType('WELCOME');
      const sending = send(s, { aid: 7 }, 'in flight');
      await g.written(1);
      first.close();
      await first.closed;
      await until(() => s.herald.hub.count({ kind: 'admin', id: 7 }) === 0, 5000, 'the tab to leave the Hub');
      g.open();
      const r = await sending;
      assert.equal(r.status, 200);
      // Counted when published (docs/delivery.md): the tab had begun to close, and got nothing.
      assert.equal(r.body.results[0].delivered, 0);
      assert.equal(r.body.results[0].queued, true);
      assert.equal(r.body.results[0].seq, 1);
      assert.deepEqual(first.notifications(), [], 'the closed tab got nothing');
      const next = await s.tab('admin', 7);
      await next.next((f) => f.TITLE === 'in flight');
      await settle(next);
      assert.deepEqual(ownSeqs(next), [1]);
      assertSameConnection(next);
    } finally {
      await s.close();
    }
  });

  test('4. a second tab of the person stays open: it gets it once, live, and a new tab is replayed it once', async () => {
    const g = gatedStore();
    const s = await startHerald({}, { store: g.store });
    try {
      const closing = await s.tab('admin', 7);
      const staying = await s.tab('admin', 7);
      await closing.nextOfType('WELCOME');
      await staying.nextOfType('WELCOME');
      const sending = send(s, { aid: 7 }, 'in flight');
      await g.written(1);
      closing.close();
      await closing.closed;
      await until(() => s.herald.hub.count({ kind: 'admin', id: 7 }) === 1, 5000, 'the tab to leave the Hub');
      g.open();
      const r = await sending;
      assert.equal(r.body.results[0].delivered, 1);
      assert.equal(r.body.results[0].queued, true);
      await staying.next((f) => f.TITLE === 'in flight');
      await settle(staying);
      assert.deepEqual(ownSeqs(staying), [1]);
      assertSameConnection(staying);
      // Nobody acked it: a new tab is replayed it, once.
      const next = await s.tab('admin', 7);
      await next.next((f) => f.TITLE === 'in flight');
      await settle(next);
      assert.deepEqual(ownSeqs(next), [1]);
    } finally {
      await s.close();
    }
  });
});

describe('the same windows over the SQLite store (a commit between the append and the answer)', () => {
  let dir: string;
  let n = 0;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'herald-race-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const sqlite = () => holdingStore(new SqliteStore({ file: join(dir, `s${++n}.sqlite`), maxPerStream: 1000 }));

  test('1 and 3: a send and a broadcast held before the append, a tab connects, both complete: each once, the EPOCHs WELCOME named', async () => {
    const h = sqlite();
    const s = await startHerald({}, { store: h.store });
    try {
      const own = h.hold('appendMany', 'admin:7', 'before');
      const all = h.hold('appendMany', 'admin:*', 'before');
      const toAll = send(s, { all: 'admins' }, 'to all');
      await all.reached;
      const to7 = send(s, { aid: 7 }, 'to 7');
      await own.reached;
      const tab = await s.tab('admin', 7);
      const welcome = await tab.nextOfType('WELCOME');
      assert.deepEqual([welcome.SEQ, welcome.BROADCAST.SEQ], [0, 0]);
      own.release();
      all.release();
      const [a, b] = await Promise.all([toAll, to7]);
      assert.equal(a.body.seq, 1);
      assert.equal(b.body.results[0].seq, 1);
      // The two streams' frames may come in either order.
      await until(() => tab.notifications().length >= 2, 5000, 'both notifications');
      await settle(tab);
      assert.deepEqual(ownSeqs(tab), [1]);
      assert.deepEqual(broadcastSeqs(tab), [1]);
      for (const f of tab.notifications()) assert.equal(f.EPOCH, f.STREAM === '*' ? welcome.BROADCAST.EPOCH : welcome.EPOCH);
      assertSameConnection(tab);
    } finally {
      await s.close();
    }
  });

  for (const when of ['before', 'after'] as const) {
    test(`2: the replay read held (${when} it reads) while a send commits and is published: once each, in order`, async () => {
      const h = sqlite();
      const s = await startHerald({}, { store: h.store });
      try {
        await send(s, { aid: 7 }, 'stored');
        const read = h.hold('readAfter', 'admin:7', when);
        const tab = await s.tab('admin', 7);
        await read.reached;
        assert.equal((await send(s, { aid: 7 }, 'live')).body.results[0].seq, 2);
        read.release();
        await tab.next((f) => f.TITLE === 'live');
        await settle(tab);
        assert.deepEqual(ownSeqs(tab), [1, 2]);
        assertSameConnection(tab);
      } finally {
        await s.close();
      }
    });
  }

  test('4: a tab closes while the send is held; the next tab is replayed it once', async () => {
    const h = sqlite();
    const s = await startHerald({}, { store: h.store });
    try {
      const first = await s.tab('admin', 7);
      await first.nextOfType('WELCOME');
      const held = h.hold('appendMany', 'admin:7', 'before');
      const sending = send(s, { aid: 7 }, 'in flight');
      await held.reached;
      first.close();
      await first.closed;
      await until(() => s.herald.hub.count({ kind: 'admin', id: 7 }) === 0, 5000, 'the tab to leave the Hub');
      held.release();
      const r = await sending;
      assert.deepEqual([r.body.results[0].delivered, r.body.results[0].queued, r.body.results[0].seq], [0, true, 1]);
      const next = await s.tab('admin', 7);
      await next.next((f) => f.TITLE === 'in flight');
      await settle(next);
      assert.deepEqual(ownSeqs(next), [1]);
    } finally {
      await s.close();
    }
  });
});
