import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';
import { heartbeatSlices } from '../src/server/gateway/gateway.js';

describe('browser endpoint', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
  });
  after(() => s.close());

  test('a tab with a valid token gets a WELCOME naming who it is', async () => {
    const tab = await s.tab('admin', 7);
    const welcome = await tab.nextOfType('WELCOME');
    assert.equal(welcome.KIND, 'admin');
    assert.equal(welcome.ID, 7);
    assert.equal(typeof welcome.EPOCH, 'string');
    assert.equal(welcome.SEQ, 0);
    assert.equal(welcome.HEARTBEAT, 60000);
    tab.close();
  });

  test('WELCOME\'s SESSION is a random id: it tells the page neither the process nor how many tabs came before', async () => {
    const tabs = await Promise.all([s.tab('user', 1), s.tab('user', 1), s.tab('user', 2)]);
    const sessions = await Promise.all(tabs.map(async (t) => (await t.nextOfType('WELCOME')).SESSION as string));
    // A version 4 UUID: 122 random bits (it was the process id and a count, `1a2b-3f`).
    for (const session of sessions) assert.match(session, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(new Set(sessions).size, 3);
    for (const t of tabs) t.close();
  });

  test('WELCOME\'s ACKED says where a tab without a cursor is replayed from, on each stream', async () => {
    const reader = await s.tab('user', 31);
    await reader.nextOfType('WELCOME');
    for (const n of [1, 2, 3]) assert.equal((await s.api('POST', '/api/v1/send', { to: { uid: 31 }, message: { TYPE: 'M', N: n } })).status, 200);
    assert.equal((await s.api('POST', '/api/v1/send', { to: { all: 'users' }, message: { TYPE: 'B' } })).status, 200);
    const second = await reader.next((f) => f?.N === 2);
    const broadcast = await reader.next((f) => f?.TYPE === 'B');
    reader.send({ TYPE: 'RESPONSE', SEQ: second.SEQ, EPOCH: second.EPOCH });
    reader.send({ TYPE: 'RESPONSE', SEQ: broadcast.SEQ, EPOCH: broadcast.EPOCH, STREAM: '*' });
    // Frames of one tab are handled in order: once the PONG is here, so are the acks.
    reader.send({ TYPE: 'PING' });
    await reader.nextOfType('PONG');
    const fresh = await s.tab('user', 31);
    const welcome = await fresh.nextOfType('WELCOME');
    assert.deepEqual([welcome.SEQ, welcome.ACKED], [second.SEQ + 1, second.SEQ]);
    assert.deepEqual([welcome.BROADCAST.SEQ, welcome.BROADCAST.ACKED], [broadcast.SEQ, broadcast.SEQ]);
    // And it is replayed exactly what follows ACKED.
    const replayed = await fresh.next((f) => f?.TYPE === 'M');
    assert.equal(replayed.SEQ, welcome.ACKED + 1);
    reader.close();
    fresh.close();
  });

  test('WELCOME asks for broadcast acks 25–50 times a second from all tabs of a kind together, for a count that does not give the tabs away', async () => {
    const first = await s.tab('admin', 7);
    // One tab: the browser library's own 2 s.
    assert.equal((await first.nextOfType('WELCOME')).BROADCAST.ACK_MS, 2000);
    // 151 admin tabs: each is asked to wait 256/50 s on average (the count rounded up to a
    // power of two, so that the wait does not give it away), users stay at 2 s.
    const more = await Promise.all(Array.from({ length: 149 }, (_, i) => s.tab('admin', 100 + i)));
    const waits = await Promise.all(more.map(async (t) => (await t.nextOfType('WELCOME')).BROADCAST.ACK_MS as number));
    const crowded = await s.tab('admin', 8);
    assert.equal((await crowded.nextOfType('WELCOME')).BROADCAST.ACK_MS, 5120);
    // Every wait told is 2 s or a power of two's: 20 ms a tab for 128 or 256 of them, never an exact count's.
    for (const w of waits) assert.ok([2000, 2560, 5120].includes(w), `${w}`);
    const user = await s.tab('user', 8);
    assert.equal((await user.nextOfType('WELCOME')).BROADCAST.ACK_MS, 2000);
    for (const t of [first, ...more, crowded, user]) t.close();
  });

  test('WELCOME asks every tab for an own-stream ack wait that keeps the node at most at about acksPerSecond acks (250 by default), for a count that does not give the tabs away', async () => {
    // A server of its own, so that no other test's closing tabs are counted.
    const paced = await startHerald({ heartbeatMs: 60000 });
    try {
      // One tab: 1/250 s, far below the browser library's own second, so nothing changes.
      const first = await paced.tab('admin', 7);
      assert.equal((await first.nextOfType('WELCOME')).ACK_MS, 4);
      // 300 tabs of both kinds: each is asked to wait 512/250 s, past the library's second:
      // the count is rounded up to a power of two, so that the wait does not give it away.
      const more = await Promise.all(Array.from({ length: 298 }, (_, i) => paced.tab(i % 2 ? 'admin' : 'user', 100 + i)));
      const waits = await Promise.all(more.map(async (t) => (await t.nextOfType('WELCOME')).ACK_MS as number));
      const crowded = await paced.tab('user', 8);
      assert.equal((await crowded.nextOfType('WELCOME')).ACK_MS, 2048);
      // 4 ms a tab for 2, 4, … or 512 of them: one of nine waits, never an exact count's.
      for (const w of waits) assert.ok([8, 16, 32, 64, 128, 256, 512, 1024, 2048].includes(w), `${w}`);
      for (const t of [first, ...more, crowded]) t.close();
    } finally {
      await paced.close();
    }

    // acksPerSecond 0: no pacing.
    const unpaced = await startHerald({ acksPerSecond: 0 });
    try {
      const tab = await unpaced.tab('admin', 1);
      assert.equal((await tab.nextOfType('WELCOME')).ACK_MS, 0);
      tab.close();
    } finally {
      await unpaced.close();
    }
  });

  test('a tab told a wait half or twice as long as the one asked for now is told the new one (PACE) after it acks, with its next frame, once per doubling', async () => {
    // acksPerSecond 2: one tab is asked for 500 ms (below the library's own second), eight for 4 s.
    const paced = await startHerald({ heartbeatMs: 60000, acksPerSecond: 2 });
    const tabs: TestTab[] = [];
    let n = 0;
    /** Sends `tab`'s person a notification; resolves with it and the frame the tab got just before it. */
    const notify = async (tab: TestTab, aid: number): Promise<{ frame: any; before: any; id: string }> => {
      const text = `n${++n}`;
      const res = await paced.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: text } });
      assert.equal(res.status, 200);
      const frame = await tab.next((f) => f?.TEXT === text);
      return { frame, before: tab.frames[tab.frames.indexOf(frame) - 1], id: encodeURIComponent(res.body.results[0].messageId) };
    };
    /** Acks a notification and waits until the server has recorded the ack. */
    const ack = async (tab: TestTab, sent: { frame: any; id: string }): Promise<void> => {
      tab.send({ TYPE: 'RESPONSE', SEQ: sent.frame.SEQ, EPOCH: sent.frame.EPOCH });
      await until(async () => (await paced.api('GET', `/api/v1/messages/${sent.id}`)).body.acknowledged === true, 5000, 'the ack recorded');
    };
    const paceOf = (f: any) => (f?.TYPE === 'PACE' ? f : undefined);
    try {
      const early = await paced.tab('admin', 7);
      tabs.push(early);
      assert.equal((await early.nextOfType('WELCOME')).ACK_MS, 500);
      // An old script's tab: it acks without a SEQ.
      const old = await paced.tab('admin', 8);
      tabs.push(old);
      await old.nextOfType('WELCOME');
      const more = await Promise.all(Array.from({ length: 6 }, (_, i) => paced.tab('user', 100 + i)));
      tabs.push(...more);
      await Promise.all(more.map((t) => t.nextOfType('WELCOME')));

      const one = await notify(early, 7);
      assert.equal(paceOf(one.before), undefined);
      await ack(early, one);
      // Nothing is sent for the ack itself; the next frame (a notification here) brings the new pace, just before it.
      assert.equal(early.frames.filter(paceOf).length, 0);
      const two = await notify(early, 7);
      // Eight tabs: 8/2 s for the own stream; two admin tabs leave the broadcast wait at its 2 s.
      assert.deepEqual(two.before, { TYPE: 'PACE', ACK_MS: 4000, BROADCAST: { ACK_MS: 2000 } });

      // Told once: the next ack brings nothing.
      await ack(early, two);
      const three = await notify(early, 7);
      assert.equal(paceOf(three.before), undefined);
      // Nine tabs: 4.5 s from the exact count, not twice the 4 s of eight: nothing, though nine
      // rounded up to a power of two (the count a wait is told for) is sixteen, twice eight.
      const ninth = await paced.tab('user', 99);
      tabs.push(ninth);
      await ninth.nextOfType('WELCOME');
      await ack(early, three);
      const four = await notify(early, 7);
      assert.equal(paceOf(four.before), undefined);
      ninth.close();
      // The old script's ack carries no SEQ: it is never told.
      old.send({ TYPE: 'RESPONCE', RESPONCE: 'RECEIVED' });
      old.send({ TYPE: 'PING' });
      await old.nextOfType('PONG');
      assert.equal(paceOf((await notify(old, 8)).before), undefined);

      // The others leave: 2/2 s asked for now, a quarter of the 4 s the early tab was told.
      for (const t of more) t.close();
      await until(() => paced.herald.hub.size === 2, 5000, 'seven tabs gone');
      await ack(early, four);
      // Any frame brings it: here the answer to a PING.
      early.send({ TYPE: 'PING' });
      const pong = await early.nextOfType('PONG');
      assert.deepEqual(early.frames[early.frames.indexOf(pong) - 1], { TYPE: 'PACE', ACK_MS: 1000, BROADCAST: { ACK_MS: 2000 } });
      assert.equal(early.frames.filter(paceOf).length, 2);
      assert.equal(old.frames.filter(paceOf).length, 0);
    } finally {
      for (const t of tabs) t.close();
      await paced.close();
    }
  });

  test('no token, a wrong token, an expired token, or a user token on the admin endpoint: 401 before the upgrade', async () => {
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`)).status, 401);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: 'garbage' } })).status, 401);
    const expired = await s.token('admin', 1, 1000);
    const forged = (await s.token('admin', 1)).slice(0, -2) + 'xx';
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: forged } })).status, 401);
    const user = await s.token('user', 1);
    const refused = await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: user } });
    assert.equal(refused.status, 401);
    assert.match(refused.body, /HERALD_ERR_UNAUTHORIZED/);
    await new Promise((r) => setTimeout(r, 1100)); // let the 1-second token expire (jwt exp has 1 s resolution)
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: expired } })).status, 401);
  });

  test('a foreign Origin is refused with 403; localhost and no Origin are admitted', async () => {
    const token = await s.token('admin', 1);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token }, origin: 'https://evil.example' })).status, 403);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token }, origin: 'http://localhost:8080' })).status, 101);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token } })).status, 101);
  });

  test('an unknown path is 404', async () => {
    const token = await s.token('admin', 1);
    assert.equal((await TestTab.status(`${s.wsUrl}/ws/nobody`, { query: { token } })).status, 404);
  });

  test('PING is answered with PONG DATA RESPONSE', async () => {
    const tab = await s.tab('admin', 2);
    tab.send({ TYPE: 'PING' });
    assert.deepEqual(await tab.nextOfType('PONG'), { TYPE: 'PONG', DATA: 'RESPONSE' });
    tab.close();
  });

  test('bad input gets an error frame and the tab stays open', async () => {
    const tab = await s.tab('admin', 3);
    await tab.nextOfType('WELCOME');
    tab.send('not json{');
    assert.equal((await tab.nextOfType('ERROR')).ERROR, 'BAD_JSON');
    tab.send('[1,2]');
    assert.equal((await tab.nextOfType('ERROR')).ERROR, 'NOT_AN_OBJECT');
    tab.send({ TYPE: 'NOPE' });
    assert.equal((await tab.nextOfType('ERROR')).ERROR, 'UNKNOWN_TYPE');
    tab.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    assert.match((await tab.nextOfType('ERROR')).MESSAGE, /binary/);
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    tab.close();
  });

  test('a frame nested deeper than 64 levels is refused unparsed (an error frame), the tab stays open; 64 levels is a frame like any other', async () => {
    const tab = await s.tab('admin', 3);
    await tab.nextOfType('WELCOME');
    /** A PING whose X holds arrays nested so that the frame is `levels` deep (the frame itself is one). */
    const ping = (levels: number) => `{"TYPE":"PING","X":${'['.repeat(levels - 1)}${']'.repeat(levels - 1)}}`;
    tab.ws.send(ping(64));
    await tab.nextOfType('PONG');
    tab.ws.send(ping(65));
    assert.deepEqual(await tab.nextOfType('ERROR'), { TYPE: 'ERROR', ERROR: 'BAD_JSON', MESSAGE: 'frame is nested deeper than 64 levels' });
    // Brackets inside strings (and escaped quotes before them) are text, not nesting.
    tab.ws.send(`{"TYPE":"PING","X":"\\\"${'['.repeat(100)}"}`);
    await tab.nextOfType('PONG');
    // The most a frame may hold (maxFrameBytes, 64 KB) of `[`, which JSON.parse took 25 ms to read.
    const most = s.options.maxFrameBytes;
    tab.ws.send(`{"TYPE":"PING","X":${'['.repeat((most - 22) / 2)}${']'.repeat((most - 22) / 2)}}`);
    assert.equal((await tab.nextOfType('ERROR')).MESSAGE, 'frame is nested deeper than 64 levels');
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    tab.close();
  });

  test('an oversized frame closes the tab with 4413 after a close notice (past twice the limit, ws\'s own 1009); the server goes on', async () => {
    /** A PING frame of exactly `bytes` bytes. */
    const ping = (bytes: number) => `{"TYPE":"PING","PAD":"${'x'.repeat(bytes - '{"TYPE":"PING","PAD":""}'.length)}"}`;
    const atLimit = await s.tab('admin', 4);
    atLimit.ws.send(ping(s.options.maxFrameBytes));
    await atLimit.nextOfType('PONG');
    const over = await s.tab('admin', 4);
    over.ws.send(ping(s.options.maxFrameBytes + 1));
    assert.deepEqual(await over.nextOfType('close'), { TYPE: 'close', REASON: 'frame too large' });
    assert.deepEqual(await over.closed, { code: 4413, reason: 'frame too large' });
    const farOver = await s.tab('admin', 4);
    farOver.ws.send(ping(2 * s.options.maxFrameBytes + 1));
    assert.equal((await farOver.closed).code, 1009);
    assert.equal(farOver.frames.filter((f) => f?.TYPE === 'close').length, 0);
    atLimit.send({ TYPE: 'PING' });
    await atLimit.nextOfType('PONG');
    atLimit.close();
    const again = await s.tab('admin', 4);
    again.send({ TYPE: 'PING' });
    await again.nextOfType('PONG');
    again.close();
  });

  test('CLOSE_REQUEST: a close frame with the reason, then close code 1000', async () => {
    const tab = await s.tab('admin', 5);
    tab.send({ TYPE: 'CLOSE_REQUEST' });
    assert.deepEqual(await tab.nextOfType('close'), { TYPE: 'close', REASON: 'by client request' });
    assert.deepEqual(await tab.closed, { code: 1000, reason: 'by client request' });
  });

  test('an admin with three tabs gets each notification three times; closing one leaves two', async () => {
    const tabs = await Promise.all([s.tab('admin', 9), s.tab('admin', 9), s.tab('admin', 9)]);
    await Promise.all(tabs.map((t) => t.nextOfType('WELCOME')));
    const r = await s.api('POST', '/api/v1/send', { to: { aid: 9 }, message: { TYPE: 'MESSAGE', TITLE: 'Привет', TEXT: 'Just<br/>some<br/>text' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.delivered, 3);
    for (const t of tabs) {
      const m = await t.nextOfType('MESSAGE');
      assert.equal(m.TITLE, 'Привет');
      assert.equal(m.TEXT, 'Just<br/>some<br/>text');
      assert.equal(m.SEQ, 1);
    }
    tabs[0]!.close();
    await tabs[0]!.closed;
    await until(async () => (await s.api('GET', '/api/v1/online/admin/9')).body.tabs === 2, 5000, 'two tabs');
    const r2 = await s.api('POST', '/api/v1/send', { to: { aid: 9 }, message: { TYPE: 'MESSAGE', TEXT: 'second' } });
    assert.equal(r2.body.delivered, 2);
    for (const t of tabs.slice(1)) assert.equal((await t.nextOfType('MESSAGE')).TEXT, 'second');
    for (const t of tabs.slice(1)) t.close();
  });

  test('a tab that stops answering heartbeats is closed with 4408', async () => {
    const quick = await startHerald({ heartbeatMs: 150 });
    try {
      const tab = await quick.tab('admin', 1, { autoPong: false });
      // ws clients answer protocol pings by themselves; stop that too, as a frozen tab would.
      (tab.ws as any)._receiver.removeAllListeners('ping');
      tab.ws.pong = () => {};
      const closed = await tab.closed;
      assert.equal(closed.code, 4408);
      assert.ok(tab.frames.some((f) => f.TYPE === 'close' && f.REASON === 'heartbeat timeout'));
    } finally {
      await quick.close();
    }
  });

  test('a tab whose WebSocket stack answers the pings stays open without answering PING frames', async () => {
    // 300 ms, not shorter: this process's ws answers the pings, and must within a heartbeat even with the suite beside it.
    const quick = await startHerald({ heartbeatMs: 300 });
    try {
      const tab = await quick.tab('admin', 2, { autoPong: false });
      let pings = 0;
      tab.ws.on('ping', () => pings++);
      await new Promise((r) => setTimeout(r, 1500));
      // About five heartbeats: each a PING frame for the page and a WebSocket ping, both seen.
      assert.ok(pings >= 3, `${pings} WebSocket pings`);
      assert.ok(tab.frames.filter((f) => f.TYPE === 'PING').length >= 3);
      assert.equal(tab.ws.readyState, tab.ws.OPEN);
      tab.close();
    } finally {
      await quick.close();
    }
  });

  test('heartbeats go out in slices a tick of 100 ms apart, each tab once per heartbeat', async () => {
    assert.deepEqual(heartbeatSlices(25_000), { slices: 250, tickMs: 100 });
    assert.deepEqual(heartbeatSlices(300), { slices: 3, tickMs: 100 });
    assert.deepEqual(heartbeatSlices(150), { slices: 2, tickMs: 75 });
    assert.deepEqual(heartbeatSlices(100), { slices: 1, tickMs: 100 });
    assert.deepEqual(heartbeatSlices(3_600_000), { slices: 1000, tickMs: 3600 }, 'a long heartbeat does not make a set per 100 ms');
    const quick = await startHerald({ heartbeatMs: 600 });
    try {
      const tabs = await Promise.all(Array.from({ length: 12 }, (_, i) => quick.tab('admin', 40 + i)));
      const pingedAt = tabs.map(() => [] as number[]);
      tabs.forEach((tab, i) => tab.ws.on('ping', () => pingedAt[i]!.push(Date.now())));
      await new Promise((r) => setTimeout(r, 1500));
      for (const times of pingedAt) {
        assert.ok(times.length >= 1 && times.length <= 3, `pinged ${times.length} times in 1.5 s at one heartbeat per 600 ms`);
        for (let k = 1; k < times.length; k++) assert.ok(times[k]! - times[k - 1]! >= 400, `pings ${times[k]! - times[k - 1]!} ms apart`);
      }
      const firsts = pingedAt.map((t) => t[0]!).sort((a, b) => a - b);
      assert.ok(firsts[firsts.length - 1]! - firsts[0]! >= 300, 'the tabs are pinged over the interval, not all at once');
      for (const tab of tabs) tab.close();
    } finally {
      await quick.close();
    }
  });

  test('shutdown: every tab gets the close frame with a reason, then 1001', async () => {
    const other = await startHerald();
    const tab = await other.tab('user', 3);
    await tab.nextOfType('WELCOME');
    await other.herald.close();
    assert.deepEqual(await tab.nextOfType('close'), { TYPE: 'close', REASON: 'server shutdown' });
    assert.equal((await tab.closed).code, 1001);
    await other.close();
  });
});
