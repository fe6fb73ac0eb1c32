// A load generator: holds many client connections to one server, records
// when each notification arrives (latency from the timestamp `t` the sender
// put in the payload; process.hrtime is CLOCK_MONOTONIC, shared by all
// processes on the machine), and acks the way the browser library does.
import { constants, PerformanceObserver } from 'node:perf_hooks';
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';
import { serveIpc } from './lib/ipc.mjs';
import { nowMs } from './lib/clock.mjs';

const clients = [];
let received = 0;
let lat = new Float64Array(1 << 16);
/** With --timeline: when each notification was sent (its `t`), beside its latency. */
let sentAt = null;
let firstRecv = 0;
let lastRecv = 0;
let perBroadcastLast = []; // broadcast index → last arrival (ms)
let perBroadcastCount = [];
let waiter = null;
let ackDelayMs = 1000;
let broadcastAckDelayMs = 2000;
const HANDSHAKE_MS = 30_000; // a handshake that takes longer counts as failed
/**
 * With --timeline: this process's garbage-collection pauses since reset, as
 * [start (CLOCK_MONOTONIC ms), duration (ms), kind]: a notification that
 * arrived during one waited here, not at the server.
 */
let gcEvents = null;
const monotonicOffset = nowMs() - performance.now();
/** performance.now() at the last reset: the observer hears of a pause after it ended, and one before this is not the phase's. */
let gcSince = 0;
/** Major (mark-compact) collections of this process since it started. */
let majorGcs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
    if (gcEvents && e.startTime >= gcSince) gcEvents.push([e.startTime + monotonicOffset, e.duration, e.detail?.kind ?? 0]);
  }
}).observe({ entryTypes: ['gc'] });

function record(msg) {
  const t = nowMs();
  if (received === 0) firstRecv = t;
  lastRecv = t;
  if (received === lat.length) {
    const bigger = new Float64Array(lat.length * 2);
    bigger.set(lat);
    lat = bigger;
    if (sentAt) {
      const more = new Float64Array(lat.length);
      more.set(sentAt);
      sentAt = more;
    }
  }
  if (sentAt) sentAt[received] = msg.t;
  lat[received++] = t - msg.t;
  if (msg.b !== undefined) {
    perBroadcastLast[msg.b] = t;
    perBroadcastCount[msg.b] = (perBroadcastCount[msg.b] ?? 0) + 1;
  }
  if (waiter && received >= waiter.count) { const w = waiter; waiter = null; w.done(); }
}

/** As the browser library waits before an own-stream ack: 0.5–1.5× the delay, so tabs do not ack in step. */
const jittered = (delayMs) => delayMs * (0.5 + Math.random());
/** And before a broadcast ack: 0–2× the delay (src/client/delivery.ts `spread`). */
const spread = (delayMs) => delayMs * 2 * Math.random();

function connectFloor(url, id) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}/?id=${id}`, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_MS });
    ws.on('open', () => resolve({ close: () => ws.terminate() }));
    ws.on('message', (data) => record(JSON.parse(data)));
    ws.on('error', reject);
  });
}

function connectSocketIo(url, id) {
  return new Promise((resolve, reject) => {
    const s = ioClient(url, { transports: ['websocket'], auth: { id }, reconnection: false, forceNew: true, timeout: HANDSHAKE_MS });
    s.on('connect', () => resolve({ close: () => s.disconnect() }));
    s.on('connect_error', reject);
    s.on('message', record);
  });
}

/**
 * A Herald tab (token in ?token=; the floor-stored server's tabs speak the
 * same protocol with ?id=): ready at WELCOME, PONG to PING, and acks
 * `{"TYPE":"RESPONSE","SEQ":n}` for the highest SEQ seen, batched as the
 * browser library does: one ack of the own stream about every `ackDelayMs`
 * or WELCOME's ACK_MS, whichever is longer (each wait 0.5–1.5× it), one of
 * the broadcast stream (`"STREAM":"*"`)
 * about every `broadcastAckDelayMs` or WELCOME's BROADCAST.ACK_MS, whichever
 * is longer (each wait 0–2× it; src/client/delivery.ts), and the waits a
 * later PACE frame asks for instead.
 */
function connectHerald(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: HANDSHAKE_MS });
    const welcomeTimer = setTimeout(() => { if (!welcomed) { ws.terminate(); reject(new Error('no WELCOME in time')); } }, HANDSHAKE_MS);
    let seq = 0;
    let bseq = 0;
    let ackTimer = null;
    let backTimer = null;
    let welcomed = false;
    let ownDelay = ackDelayMs;
    let broadcastDelay = broadcastAckDelayMs;
    const flushOwn = () => {
      ackTimer = null;
      if (seq > 0 && ws.readyState === WebSocket.OPEN) ws.send(`{"TYPE":"RESPONSE","SEQ":${seq}}`);
      seq = 0;
    };
    const flushBroadcast = () => {
      backTimer = null;
      if (bseq > 0 && ws.readyState === WebSocket.OPEN) ws.send(`{"TYPE":"RESPONSE","SEQ":${bseq},"STREAM":"*"}`);
      bseq = 0;
    };
    // The waits WELCOME or a later PACE asks for (the browser library's Delivery.pace).
    const pace = (msg) => {
      if (Number.isFinite(msg.ACK_MS)) ownDelay = Math.max(ackDelayMs, Math.min(msg.ACK_MS, 600_000));
      if (Number.isFinite(msg.BROADCAST?.ACK_MS)) broadcastDelay = Math.max(broadcastAckDelayMs, Math.min(msg.BROADCAST.ACK_MS, 600_000));
    };
    ws.on('message', (data) => {
      const msg = JSON.parse(data);
      if (msg.TYPE === 'WELCOME') {
        welcomed = true;
        clearTimeout(welcomeTimer);
        pace(msg);
        resolve({ close: () => ws.terminate() });
        return;
      }
      if (msg.TYPE === 'PING') { ws.send('{"TYPE":"PONG"}'); return; }
      if (msg.TYPE === 'PACE') { pace(msg); return; }
      if (typeof msg.SEQ === 'number') {
        if (msg.STREAM === '*') {
          bseq = Math.max(bseq, msg.SEQ);
          backTimer ??= setTimeout(flushBroadcast, spread(broadcastDelay));
        } else {
          seq = Math.max(seq, msg.SEQ);
          ackTimer ??= setTimeout(flushOwn, jittered(ownDelay));
        }
      }
      if (msg.t !== undefined) record(msg);
    });
    ws.on('unexpected-response', (_req, res) => reject(new Error(`handshake refused: HTTP ${res.statusCode}`)));
    ws.on('error', reject);
    ws.on('close', (code) => {
      clearTimeout(ackTimer);
      clearTimeout(backTimer);
      if (!welcomed) reject(new Error(`closed before WELCOME (${code})`));
    });
  });
}

serveIpc({
  /**
   * Opens one connection per entry of `ids` (or `tokens` for Herald), at most
   * `concurrency` handshakes in flight. Answers when all are open or failed.
   */
  async connect({ kind, url, ids, tokens, concurrency = 100, ackDelay = 1000, broadcastAckDelay = 2000 }) {
    ackDelayMs = ackDelay;
    broadcastAckDelayMs = broadcastAckDelay;
    const n = kind === 'herald' ? tokens.length : ids.length;
    let next = 0;
    let failed = 0;
    const errors = [];
    const t0 = nowMs();
    const worker = async () => {
      while (next < n) {
        const i = next++;
        try {
          const c = kind === 'floor' ? await connectFloor(url, ids[i])
            : kind === 'socketio' ? await connectSocketIo(url, ids[i])
            : kind === 'floor-stored' ? await connectHerald(`${url}/?id=${ids[i]}`)
            : await connectHerald(`${url}?token=${encodeURIComponent(tokens[i])}`);
          clients.push(c);
        } catch (e) {
          failed++;
          if (errors.length < 5) errors.push(String(e?.message ?? e));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
    return { opened: n - failed, failed, errors, t0, t1: nowMs() };
  },
  /**
   * Forgets what was received so far (before a measured phase); `timeline`
   * also keeps each one's send time. `expected`: how many notifications the
   * phase brings here, so that the arrays for them are made now, not grown
   * (a copy of the whole array) in the middle of it.
   *
   * Then collects all garbage: what connecting and the warm-up left (a
   * thousand tabs' handshakes, ten thousand notifications, their ack timers)
   * was otherwise collected during the measured phase, a major collection
   * of this process pausing it for 3–6 ms while notifications arrived, and
   * every latency it measured then included that pause (docs/bench-history.md,
   * forty-eighth round). Every server's clients get the same.
   */
  reset({ timeline = false, expected = 0 } = {}) {
    received = 0; firstRecv = 0; lastRecv = 0;
    if (expected > lat.length) lat = new Float64Array(expected);
    sentAt = timeline ? new Float64Array(lat.length) : null;
    perBroadcastLast = []; perBroadcastCount = [];
    globalThis.gc?.();
    // After that collection: it paused no notification, and is not one of the phase's pauses.
    gcSince = performance.now();
    gcEvents = timeline ? [] : null;
    return { collected: typeof globalThis.gc === 'function' };
  },
  /** Answers once `count` notifications have arrived since reset, or at `timeoutMs`. */
  async wait({ count, timeoutMs = 120_000 }) {
    if (received < count) {
      await new Promise((resolve) => {
        const timer = setTimeout(() => { waiter = null; resolve(); }, timeoutMs);
        waiter = { count, done: () => { clearTimeout(timer); resolve(); } };
      });
    }
    return {
      received, firstRecv, lastRecv, majorGcs,
      latencies: lat.slice(0, received),
      ...(sentAt ? { sentAt: sentAt.slice(0, received), gc: gcEvents } : {}),
      perBroadcastLast, perBroadcastCount,
    };
  },
  async close() {
    for (const c of clients.splice(0)) { try { c.close(); } catch { /* already gone */ } }
    return true;
  },
});

process.send({ event: 'ready' });
process.on('SIGTERM', () => process.exit(0));
