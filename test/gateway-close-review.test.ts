/**
 * How an orderly close (a kick, an ended session, a shutdown: the close
 * notice, then the close frame once the tab has acked, within ACK_WAIT_MS)
 * meets the rest of a tab's life: heartbeats, a second close, a shutdown's
 * grace, a replay that yields to the event loop. Each case is a real Herald
 * and real sockets.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { notify, onCloseNotice } from './helpers/close-notice.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

describe('the ack wait of an orderly close', () => {
  test('is not cut short by heartbeats shorter than it: a kicked tab that owes an ack still gets its close frame, with the kick\'s code', async () => {
    // Heartbeats of 200 ms: five ticks fall within the 1 s ack wait. (At 100 ms, the shortest there is,
    // the test's own process had to answer each PING within 100 ms before the kick, and once, with the
    // suite and another process on the cores, it did not: the tab was closed for silence.)
    const s = await startHerald({ heartbeatMs: 200 });
    try {
      const tab = await s.tab('admin', 61);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 61);
      // The tab never acks (the old browser script): its close frame comes when the wait ends.
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 61 }, reason: 'logged out' });
      assert.deepEqual(kicked.body, { tabs: 1 });
      // 1006 (no close frame) when a heartbeat ended the socket during the wait:
      // the browser library then reconnects as after a network failure.
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
    } finally {
      await s.close();
    }
  });

  test('an ack sent during the wait, later than two heartbeats, is recorded', async () => {
    const s = await startHerald({ heartbeatMs: 200 });
    try {
      const tab = await s.tab('admin', 62);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 62);
      // A busy page: its ack on the notice comes a few heartbeats later, well within ACK_WAIT_MS.
      onCloseNotice(tab, () => {
        setTimeout(() => {
          if (tab.ws.readyState === tab.ws.OPEN) tab.send({ TYPE: 'RESPONSE', SEQ: sent.SEQ, EPOCH: sent.EPOCH });
        }, 450);
      });
      await s.api('POST', '/api/v1/disconnect', { to: { aid: 62 }, reason: 'logged out' });
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
      const status = await s.api('GET', `/api/v1/messages/${sent.id}`);
      assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
    } finally {
      await s.close();
    }
  });

  test('frames other than acks during the wait are not answered and reopen nothing: a PING gets no PONG, a RESUME no replay', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const tab = await s.tab('admin', 65);
      await tab.nextOfType('WELCOME');
      const sent = await notify(s, tab, 65);
      onCloseNotice(tab, () => {
        tab.send({ TYPE: 'PING' });
        tab.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: sent.EPOCH });
        // Then the ack, which ends the wait: whatever the two above caused would be on the wire before the close frame.
        tab.send({ TYPE: 'RESPONSE', SEQ: sent.SEQ, EPOCH: sent.EPOCH });
      });
      await s.api('POST', '/api/v1/disconnect', { to: { aid: 65 }, reason: 'logged out' });
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
      assert.deepEqual(tab.frames.at(-1), { TYPE: 'close', REASON: 'logged out' }, 'a frame came after the close notice');
      assert.equal(tab.notifications().length, 1);
      assert.equal((await s.api('GET', `/api/v1/messages/${sent.id}`)).body.acknowledged, true);
      assert.equal(s.herald.hub.count({ kind: 'admin', id: 65 }), 0);
    } finally {
      await s.close();
    }
  });

  test('a tab in its ack wait is not online, a send meanwhile is stored for the next tab, not reported delivered; its socket counts against maxTabsPerPerson until it has closed', async () => {
    // closeTimeoutMs long: the kicked tab, which stops reading, is still closing throughout (in its wait, then its close handshake).
    const s = await startHerald({ heartbeatMs: 60_000, maxTabsPerPerson: 1, closeTimeoutMs: 60_000 });
    try {
      const tab = await s.tab('admin', 64);
      await tab.nextOfType('WELCOME');
      const first = await notify(s, tab, 64);
      await s.api('POST', '/api/v1/disconnect', { to: { aid: 64 }, reason: 'logged out' });
      await tab.nextOfType('close');
      (tab.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      assert.equal(s.herald.gateway.connections.size, 1, 'the kicked tab is still closing');
      assert.deepEqual((await s.api('GET', '/api/v1/online/admin/64')).body, { kind: 'admin', id: 64, online: false, tabs: 0 });
      const live = await s.api('POST', '/api/v1/send', { to: { aid: 64 }, message: { TYPE: 'MESSAGE', TEXT: 'live only' }, ttl: 0 });
      assert.equal(live.body.delivered, 0, JSON.stringify(live.body));
      const stored = await s.api('POST', '/api/v1/send', { to: { aid: 64 }, message: { TYPE: 'MESSAGE', TEXT: 'while closing' } });
      assert.equal(stored.body.delivered, 0, JSON.stringify(stored.body));
      assert.equal(stored.body.queued, true, JSON.stringify(stored.body));
      // One tab at most, and the kicked tab's socket is still held: a client that began to close and
      // stopped reading could otherwise open tab after tab (gateway-tab-limit-closing.test.ts).
      const refused = await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: await s.token('admin', 64) } });
      assert.equal(refused.status, 429, refused.body);
      assert.equal(tab.ws.readyState, tab.ws.OPEN, 'the kicked tab saw no close frame yet');
      tab.terminate();
      await until(() => s.herald.gateway.connections.size === 0, 5000, 'the kicked tab\'s socket closed');
      // The next tab is replayed both: the unacked one and the one sent meanwhile.
      const next = await s.tab('admin', 64);
      assert.equal((await next.nextOfType('MESSAGE')).SEQ, first.SEQ);
      assert.equal((await next.nextOfType('MESSAGE')).TEXT, 'while closing');
    } finally {
      await s.close();
    }
  });

  test('a shutdown during a kick\'s wait keeps the kick\'s code and reason, and sends the close frame before the socket ends, however short the grace', async () => {
    const s = await startHerald({ heartbeatMs: 60_000, shutdownGraceMs: 0 });
    try {
      const tab = await s.tab('admin', 63);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 63);
      const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid: 63 }, reason: 'password changed' });
      assert.deepEqual(kicked.body, { tabs: 1 });
      await tab.nextOfType('close');
      // The kick waits up to 1 s for an ack that never comes; the shutdown's grace is 0.
      await s.herald.close();
      assert.deepEqual(await tab.closed, { code: 4403, reason: 'password changed' });
    } finally {
      await s.close();
    }
  });
});

const BACKLOG = 20_000;
const REPLAY_BATCH = 200;

/** Calls `fn` once, from its own turn of the event loop, when the server has written `after` notifications to the next tab that connects: between two of its replay's batches. */
function atReplayYield(s: TestServer, after: number, fn: () => void): { written: () => number } {
  let written = 0;
  let fired = false;
  s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
    const write = socket.write;
    socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]): boolean {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('latin1') : '';
      if (text.includes('"TYPE":"MESSAGE"')) written++;
      // setImmediate: the callback runs in a turn of its own, where the replay has yielded.
      if (!fired && written >= after) {
        fired = true;
        setImmediate(fn);
      }
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof socket.write;
  });
  return { written: () => written };
}

describe('a replay that yields to the event loop, meeting a close', () => {
  let s: TestServer;
  let epoch = '';
  /** Person 71's message ids, by SEQ - 1. */
  const ids71: string[] = [];
  const rejections: unknown[] = [];
  const onRejection = (err: unknown): void => {
    rejections.push(err);
  };
  before(async () => {
    process.on('unhandledRejection', onRejection);
    s = await startHerald({ store: 'memory', maxPerStream: BACKLOG + 100, replayBatch: REPLAY_BATCH, heartbeatMs: 60_000, maxBufferedBytes: 1 << 30 });
    for (let i = 0; i < BACKLOG; i += 1000) {
      const messages = Array.from({ length: 1000 }, (_, k) => ({ to: { aid: 70 }, message: { TYPE: 'MESSAGE', N: i + k + 1 } }));
      const r = await s.api('POST', '/api/v1/send/batch', { messages });
      assert.equal(r.status, 200);
      epoch = r.body.results[0].epoch;
    }
    for (let i = 0; i < BACKLOG; i += 1000) {
      const messages = Array.from({ length: 1000 }, (_, k) => ({ to: { aid: 71 }, message: { TYPE: 'MESSAGE', N: i + k + 1 } }));
      const r = await s.api('POST', '/api/v1/send/batch', { messages });
      assert.equal(r.status, 200);
      for (const m of r.body.results) ids71.push(m.results[0].messageId);
    }
  });
  after(async () => {
    process.off('unhandledRejection', onRejection);
    await s.close();
  });

  test('kicked at a yield: the replay stops, the close notice is the last frame, the close frame has the kick\'s code', async () => {
    const probe = atReplayYield(s, 1000, () => s.herald.hub.disconnect({ kind: 'admin', id: 70 }, 4403, 'logged out'));
    const tab = await s.tab('admin', 70, { query: { seq: '0', epoch } });
    assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
    const got = tab.notifications().length;
    assert.ok(got >= 1000 && got < BACKLOG, `the kick came part-way through the replay (${got} of ${BACKLOG})`);
    assert.equal(probe.written(), got, 'a notification was written after the close notice');
    assert.deepEqual(tab.frames.at(-1), { TYPE: 'close', REASON: 'logged out' });
    await until(() => s.herald.gateway.connections.size === 0, 5000, 'the gateway to forget the tab');
    assert.deepEqual(rejections, []);
  });

  test('a RESUME queued behind the replay when the tab is kicked does not rewind it: the ack the tab sends on the notice is recorded', async () => {
    let resumeRead = false;
    let kicked = false;
    let serverSocket: net.Socket | undefined;
    s.herald.app.server.once('upgrade', (_req: unknown, socket: net.Socket) => {
      serverSocket = socket;
    });
    const tab = await s.tab('admin', 71, { query: { seq: '0', epoch: '' } });
    const head = (await tab.nextOfType('WELCOME')) as { EPOCH: string };
    // The first frame the server reads after the handshake is the RESUME: once ws has read it (a turn later), it is queued behind the running replay.
    serverSocket!.once('data', () => setImmediate(() => {
      resumeRead = true;
    }));
    let last: { SEQ: number; EPOCH: string } | undefined;
    tab.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as { TYPE?: string; SEQ: number; EPOCH: string };
      if (f.TYPE === 'MESSAGE') {
        last = f;
        if (f.SEQ === 1000) tab.send({ TYPE: 'RESUME', SEQ: 0, EPOCH: head.EPOCH });
        // Kicked part-way through the first replay, once the RESUME waits behind it.
        if (resumeRead && !kicked) {
          kicked = true;
          s.herald.hub.disconnect({ kind: 'admin', id: 71 }, 4403, 'logged out');
        }
      }
      if (f.TYPE === 'close') tab.send({ TYPE: 'RESPONSE', SEQ: last!.SEQ, EPOCH: last!.EPOCH });
    });
    assert.deepEqual(await tab.closed, { code: 4403, reason: 'logged out' });
    assert.ok(last!.SEQ < BACKLOG, `the kick came part-way through the first replay (at ${last!.SEQ})`);
    const status = await s.api('GET', `/api/v1/messages/${ids71[last!.SEQ - 1]}`);
    assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
    assert.deepEqual(rejections, []);
  });
});
