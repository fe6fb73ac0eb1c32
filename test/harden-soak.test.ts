/**
 * Soak: 2,000 authenticated tabs connect and leave (closing politely, asking
 * the server to close, cut, half-closing TCP, or kicked by the server, with
 * or without acking on the kick's notice), 20 at a time, in a child node with
 * --expose-gc, after a thousand to warm up. Afterwards the Hub and the gateway hold nothing, no handle,
 * timer or listener was left behind, and the heap after a full collection is
 * where it was after the warm-up.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { runModule } from './helpers/node-child.js';

const HELPER = fileURLToPath(new URL('./helpers/server.ts', import.meta.url));

const CHILD = `
const { startHerald } = await import(process.env.SERVER_HELPER);
const { default: WebSocket } = await import('ws');
const s = await startHerald({ store: 'memory', heartbeatMs: 1000 });
const server = s.herald.app.server;

/**
 * One tab's life: connect, receive WELCOME, ping, maybe get a notification,
 * leave one of six ways: it closes, asks the server to close, is cut, or
 * half-closes TCP without a close frame (the gateway's 'end' timer); or the
 * server kicks it (an orderly close: the notice, then the close frame once
 * it acks, or when the ack wait's timer ends, for one in four kicked tabs).
 */
async function cycle(i) {
  const id = 1 + (i % 50);
  const token = await s.token('admin', id);
  const ws = new WebSocket(s.wsUrl + '/ws/admin?token=' + token);
  const frames = [];
  let wake = () => {};
  ws.on('message', (d) => { frames.push(JSON.parse(d.toString())); wake(); });
  const closed = new Promise((resolve) => ws.on('close', resolve));
  ws.on('error', () => {});
  const frame = (type) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ' + type + ' for tab ' + i)), 5000);
    const check = () => { const f = frames.find((x) => x.TYPE === type); if (f) { clearTimeout(t); resolve(f); } else wake = check; };
    check();
  });
  const welcome = await frame('WELCOME');
  ws.send('{"TYPE":"PING"}');
  await frame('PONG');
  let how = i % 6;
  // A kicked tab that never acks waits the whole ACK_WAIT_MS: one in four of them, to keep the soak short.
  if (how === 5 && i % 24 !== 5) how = 4;
  let message;
  if (i % 5 === 0 || how >= 4) {
    await s.herald.notifier.sendMany([{ kind: 'admin', id }], { TYPE: 'MESSAGE', TEXT: 'soak ' + i }, { ttlMs: 0 });
    message = await frame('MESSAGE');
  }
  if (how === 0) ws.close();
  else if (how === 1) ws.send('{"TYPE":"CLOSE_REQUEST"}');
  else if (how === 2) ws.terminate();
  else if (how === 3) ws._socket.end();
  else {
    // Kicked as POST /api/v1/disconnect kicks (Hub.disconnect), this one tab only: others of the person are in other cycles.
    if (how === 4) ws.on('message', (d) => {
      if (JSON.parse(d.toString()).TYPE === 'close') ws.send(JSON.stringify({ TYPE: 'RESPONSE', SEQ: message.SEQ, EPOCH: message.EPOCH }));
    });
    const conn = [...s.herald.gateway.connections].find((c) => c.id === welcome.SESSION);
    conn.close(4403, 'kicked');
  }
  await closed;
}

async function run(from, to) {
  let next = from;
  await Promise.all(Array.from({ length: 20 }, async () => { while (next < to) await cycle(next++); }));
}

async function settle() {
  const t0 = Date.now();
  while ((s.herald.hub.size > 0 || s.herald.gateway.connections.size > 0) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 20));
  // A tick for sockets' close callbacks, then two full collections.
  await new Promise((r) => setTimeout(r, 200));
  global.gc(); await new Promise((r) => setImmediate(r)); global.gc();
}

function snapshot() {
  const resources = process.getActiveResourcesInfo().reduce((m, r) => { m[r] = (m[r] ?? 0) + 1; return m; }, {});
  return {
    hub: s.herald.hub.size,
    connections: s.herald.gateway.connections.size,
    heap: process.memoryUsage().heapUsed,
    resources,
    upgradeListeners: server.listenerCount('upgrade'),
    connectionListeners: server.listenerCount('connection'),
    serverConnections: await_count(),
  };
}
function await_count() { return new Promise((r) => server.getConnections((e, n) => r(e ? -1 : n))); }

// Warm-up: the JIT's code and caches, the 50 people's entries, settle within the first thousand or so.
await run(0, 1000);
await settle();
const warm = snapshot(); warm.serverConnections = await warm.serverConnections;
const t = Date.now();
await run(1000, 3000);
await settle();
const end = snapshot(); end.serverConnections = await end.serverConnections;
console.log(JSON.stringify({ warm, end, ms: Date.now() - t }));
await s.close();
`;

test('2,000 tabs connect and leave (six ways, kicks with their ack wait among them): no growth of the Hub, the gateway, handles, timers, listeners or the heap', async () => {
  const out = await runModule(CHILD, { env: { SERVER_HELPER: HELPER }, nodeFlags: ['--expose-gc'] });
  const { warm, end, ms } = JSON.parse(out.trim().split('\n').at(-1)!) as {
    warm: Record<string, any>; end: Record<string, any>; ms: number;
  };
  if (process.env.HERALD_SOAK_STATS) console.log(JSON.stringify({ warm, end, ms }));
  assert.equal(end.hub, 0, 'tabs left in the Hub');
  assert.equal(end.connections, 0, 'connections left in the gateway');
  assert.equal(end.serverConnections, 0, 'sockets left open on the HTTP server');
  assert.deepEqual(end.resources, warm.resources, 'handles and timers');
  assert.equal(end.upgradeListeners, warm.upgradeListeners);
  assert.equal(end.connectionListeners, warm.connectionListeners);
  // 2,000 tabs: a leak of even 500 bytes a tab would be 1 MB.
  const grown = end.heap - warm.heap;
  assert.ok(grown < 1024 * 1024, `the heap grew ${grown} bytes over 2,000 tabs`);
});
