/**
 * What Herald answers about a send's reach is what the tabs got. A tab that
 * begins to close (a kick, its own CLOSE_REQUEST) while a stored send waits
 * for the store is not counted in `delivered` (HTTP API) nor in the legacy
 * RESULT, one entry per tab; a tab that sends its own close frame while
 * frames it has not read are still queued to it leaves the Hub at once, not
 * when its close handshake ends (closeTimeoutMs). The store's wait is held
 * at the exact point by the test (a real SQLite store whose next append
 * waits for it), so nothing depends on timing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AppendInput, AppendResult, MessageStore } from '../src/server/store/message-store.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until, type TestTab } from './helpers/ws-client.js';

/** A point the test holds the store's next append at: `reached` once the send waits there, `release()` lets it go on. */
interface Hold {
  reached: Promise<void>;
  release(): void;
}

/** A real SQLite store whose next `appendMany` waits, when the test asks, until the test releases it. */
function holdingStore(file: string): { store: MessageStore; holdNextAppend(): Hold } {
  const inner = new SqliteStore({ file, maxPerStream: 1000 });
  let next: { arrive: () => void; gate: Promise<void> } | undefined;
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'appendMany') {
        return async (inputs: readonly AppendInput[], now: number): Promise<AppendResult[]> => {
          const h = next;
          next = undefined;
          if (h) {
            h.arrive();
            await h.gate;
          }
          return target.appendMany(inputs, now);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    holdNextAppend() {
      let arrive!: () => void;
      const reached = new Promise<void>((r) => { arrive = r; });
      let release!: () => void;
      const gate = new Promise<void>((r) => { release = r; });
      next = { arrive, gate };
      return { reached, release };
    },
  };
}

const ADMIN_7 = { kind: 'admin' as const, id: 7 };

/** Whether the tab was written the notification `text` before any close notice. */
function got(tab: TestTab, text: string): boolean {
  const closeAt = tab.frames.findIndex((f) => f?.TYPE === 'close');
  const at = tab.frames.findIndex((f) => f?.TEXT === text);
  return at >= 0 && (closeAt < 0 || at < closeAt);
}

/** Waits until the server has written everything it had for the tab: a PING's PONG comes after it. */
async function settle(tab: TestTab): Promise<void> {
  tab.send({ TYPE: 'PING' });
  await tab.nextOfType('PONG');
}

describe('a stored send counts the tabs it reached, not those open when it was planned', () => {
  let dir: string;
  let n = 0;
  let s: TestServer;
  let h: ReturnType<typeof holdingStore>;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-presence-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function start(): Promise<void> {
    h = holdingStore(join(dir, `s${++n}.sqlite`));
    s = await startHerald({ heartbeatMs: 60_000 }, { store: h.store });
  }

  async function legacy(): Promise<RawLegacyClient> {
    return RawLegacyClient.connect(s.herald.urls.legacy!.port);
  }

  test('HTTP API: a tab kicked while the send waits for the store is not delivered to', async () => {
    await start();
    try {
      const tab = await s.tab('admin', 7);
      await tab.nextOfType('WELCOME');
      const held = h.holdNextAppend();
      const sending = s.api('POST', '/api/v1/send', { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TEXT: 'in flight' } });
      await held.reached;
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 7 }, reason: 'kicked' });
      assert.equal(kicked.status, 200, JSON.stringify(kicked.body));
      await tab.nextOfType('close');
      assert.equal(s.herald.hub.count(ADMIN_7), 0, 'the tab left the Hub when its close began');
      held.release();
      const r = await sending;
      assert.equal(r.status, 200, JSON.stringify(r.body));
      await tab.closed;
      assert.equal(got(tab, 'in flight'), false, 'the kicked tab never got it');
      assert.deepEqual([r.body.delivered, r.body.results[0].delivered, r.body.results[0].queued], [0, 0, true], JSON.stringify(r.body));
      // Queued, so the person's next tab gets it.
      const next = await s.tab('admin', 7);
      await next.next((f) => f.TEXT === 'in flight');
    } finally {
      await s.close();
    }
  });

  test('HTTP API: of two tabs, the one closing while the send waits is not counted; the other is', async () => {
    await start();
    try {
      const closing = await s.tab('admin', 7);
      const staying = await s.tab('admin', 7);
      await closing.nextOfType('WELCOME');
      await staying.nextOfType('WELCOME');
      const held = h.holdNextAppend();
      const sending = s.api('POST', '/api/v1/send', { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TEXT: 'in flight' } });
      await held.reached;
      closing.send({ TYPE: 'CLOSE_REQUEST' });
      await closing.nextOfType('close');
      assert.equal(s.herald.hub.count(ADMIN_7), 1);
      held.release();
      const r = await sending;
      await staying.next((f) => f.TEXT === 'in flight');
      await closing.closed;
      assert.equal(got(closing, 'in flight'), false);
      assert.equal(r.body.results[0].delivered, 1, JSON.stringify(r.body));
    } finally {
      await s.close();
    }
  });

  test('HTTP API: a tab that connects while the send waits gets it live, and is counted', async () => {
    await start();
    try {
      const held = h.holdNextAppend();
      const sending = s.api('POST', '/api/v1/send', { to: { aid: 7 }, message: { TYPE: 'MESSAGE', TEXT: 'in flight' } });
      await held.reached;
      const tab = await s.tab('admin', 7);
      assert.equal((await tab.nextOfType('WELCOME')).SEQ, 0, 'WELCOME was read before the append');
      held.release();
      const r = await sending;
      await tab.next((f) => f.TEXT === 'in flight');
      assert.equal(r.body.results[0].delivered, 1, JSON.stringify(r.body));
    } finally {
      await s.close();
    }
  });

  test('legacy MESSAGE: RESULT has one 1 per tab that got it, not for a tab whose CLOSE_REQUEST came while it waited', async () => {
    await start();
    const c = await legacy();
    try {
      const closing = await s.tab('admin', 7);
      const staying = await s.tab('admin', 7);
      await closing.nextOfType('WELCOME');
      await staying.nextOfType('WELCOME');
      const held = h.holdNextAppend();
      const answering = c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"DATA":{"TITLE":"t","TEXT":"in flight"}}');
      await held.reached;
      closing.send({ TYPE: 'CLOSE_REQUEST' });
      await closing.nextOfType('close');
      held.release();
      const { answer } = await answering;
      await staying.next((f) => f.TEXT === 'in flight');
      await closing.closed;
      assert.equal(got(closing, 'in flight'), false);
      assert.deepEqual(answer, { TYPE: 'RESULT', RESULT: [1] });
    } finally {
      c.destroy();
      await s.close();
    }
  });

  test('legacy MESSAGE to ID "*": 0 when the only tab of the kind began to close while it waited', async () => {
    await start();
    const c = await legacy();
    try {
      const tab = await s.tab('admin', 7);
      await tab.nextOfType('WELCOME');
      const held = h.holdNextAppend();
      const answering = c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":"*","DATA":{"TITLE":"t","TEXT":"to all"}}');
      await held.reached;
      tab.send({ TYPE: 'CLOSE_REQUEST' });
      await tab.nextOfType('close');
      held.release();
      const { answer } = await answering;
      await tab.closed;
      assert.equal(got(tab, 'to all'), false);
      assert.equal(answer, 0);
      // The HTTP API's broadcast answer is counted the same way.
      const other = await s.tab('admin', 8);
      await other.nextOfType('WELCOME');
      const held2 = h.holdNextAppend();
      const sending = s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'to all again' } });
      await held2.reached;
      other.send({ TYPE: 'CLOSE_REQUEST' });
      await other.nextOfType('close');
      held2.release();
      const r = await sending;
      await other.closed;
      assert.equal(got(other, 'to all again'), false);
      assert.equal(r.body.delivered, 0, JSON.stringify(r.body));
    } finally {
      c.destroy();
      await s.close();
    }
  });

  test('a tab that stays open is counted, and settles with what it was sent', async () => {
    await start();
    const c = await legacy();
    try {
      const tab = await s.tab('admin', 7);
      await tab.nextOfType('WELCOME');
      const held = h.holdNextAppend();
      const answering = c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"DATA":{"TITLE":"t","TEXT":"kept"}}');
      await held.reached;
      held.release();
      assert.deepEqual((await answering).answer, { TYPE: 'RESULT', RESULT: [1] });
      await tab.next((f) => f.TEXT === 'kept');
      await settle(tab);
    } finally {
      c.destroy();
      await s.close();
    }
  });
});

/** A masked client close frame (RFC 6455 §5.5.1) with `code`. */
function closeFrame(code: number): Buffer {
  const mask = randomBytes(4);
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, payload]);
}

describe('a tab that sends its own close frame while frames it has not read are queued to it', () => {
  let s: TestServer;
  before(async () => {
    // Neither the heartbeat nor the close timer may end the tab during the test: only its close frame.
    s = await startHerald({ store: 'memory', heartbeatMs: 600_000, closeTimeoutMs: 600_000, maxBufferedBytes: 256 << 20 });
  });
  after(() => s.close());

  test('leaves the Hub at once: not online, not listed, not counted by a send', async () => {
    const socket = net.connect({ port: Number(new URL(s.url).port), host: '127.0.0.1' });
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      received = Buffer.concat([received, b]);
    };
    socket.on('data', onData);
    const c = await RawLegacyClient.connect(s.herald.urls.legacy!.port);
    try {
      socket.write(`GET /ws/admin?token=${await s.token('admin', ADMIN_7.id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      await until(() => received.includes('"TYPE":"WELCOME"'), 5000, 'WELCOME');
      // The page stops reading: what Herald writes piles up in the kernels' buffers, then in Herald's.
      socket.off('data', onData);
      socket.pause();
      // 48 MiB: more than both kernels' buffers can take (tcp_wmem and tcp_rmem at most 4 and 32 MiB here, and
      // the receive window does not grow for a reader that reads nothing), so a backlog stays in Herald's socket.
      const big = 'x'.repeat(512 * 1024);
      for (let i = 0; i < 96; i++) {
        const r = await s.api('POST', '/api/v1/send', { to: { aid: ADMIN_7.id }, message: { TYPE: 'MESSAGE', TEXT: big }, ttl: 0 });
        assert.equal(r.body.delivered, 1, `send ${i}: ${JSON.stringify(r.body).slice(0, 200)}`);
      }
      assert.equal(s.herald.hub.count(ADMIN_7), 1);
      // The page is closed: its close frame goes out (its writes still do). Herald's answer
      // waits behind the backlog the page never reads, so the close handshake cannot end.
      socket.write(closeFrame(1000));
      // Nothing is sent to the tab before this: a send to it would also find it closing.
      await until(() => s.herald.hub.count(ADMIN_7) === 0, 5000, 'the tab to leave the Hub on its close frame');
      const online = await s.api('GET', `/api/v1/online/admin/${ADMIN_7.id}`);
      assert.equal(online.body.tabs, 0, JSON.stringify(online.body));
      assert.deepEqual((await c.request('{"TYPE":"REQUEST_LIST","LIST_TYPE":"ADMINS"}')).answer, { TYPE: 'RESULT', LIST: [] });
      const sent = await s.api('POST', '/api/v1/send', { to: { aid: ADMIN_7.id }, message: { TYPE: 'MESSAGE', TEXT: 'after close' }, ttl: 0 });
      assert.equal(sent.body.delivered, 0, JSON.stringify(sent.body));
      assert.equal((await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"TTL":0,"DATA":{"TEXT":"after close"}}')).answer, 0);
      const status = await s.api('GET', '/api/v1/status');
      assert.equal(status.body.online.admin, 0, JSON.stringify(status.body.online));
      assert.ok(!socket.destroyed, 'the page kept TCP open and unread throughout');
    } finally {
      c.destroy();
      socket.destroy();
    }
  });
});
