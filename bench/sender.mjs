// The sender: the application backend that pushes notifications through each
// server's HTTP endpoint. Its own process, so its CPU is seen apart from the
// server's and the clients'.
import http from 'node:http';
import { serveIpc } from './lib/ipc.mjs';
import { nowMs } from './lib/clock.mjs';

let agent = null;
let target = null; // { kind, http, apiToken, heraldBatch, ttl }

/**
 * POSTs `body`. A request sent on a kept-alive socket that the server closed
 * as it went (its idle timeout, 5 s for node's own servers) fails with
 * ECONNRESET before the server read it: it is sent once more on a new socket,
 * as node's documentation advises (`request.reusedSocket`). Any other
 * failure fails the call.
 */
async function post(path, body) {
  try {
    return await postOnce(path, body);
  } catch (e) {
    if (e?.reusedSocket && e.code === 'ECONNRESET') return postOnce(path, body);
    throw e;
  }
}

function postOnce(path, body) {
  const u = new URL(path, target.http);
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
    if (target.apiToken) headers.authorization = `Bearer ${target.apiToken}`;
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent, headers }, (res) => {
      const parts = [];
      res.on('data', (c) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        if (res.statusCode >= 300) reject(new Error(`POST ${path}: HTTP ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      e.reusedSocket = req.reusedSocket;
      reject(e);
    });
    req.end(body);
  });
}

// ~200 bytes on the wire for the floor (the others add their own framing).
const PAD = 'x'.repeat(120);
function message(i, t, b) {
  const m = { TYPE: 'MESSAGE', TITLE: 'Bench notification', TEXT: PAD, i, t };
  if (b !== undefined) m.b = b;
  return m;
}

/** A Herald send body: `"ttl"` only when the run sets one (--herald-ttl). */
function heraldSend(to, msg) {
  return target.ttl === undefined ? { to, message: msg } : { to, message: msg, ttl: target.ttl };
}

/** Sends the notifications `from`..`to`-1 (recipient ids[i % ids.length]) as one request or more. */
function sendRange(ids, from, to) {
  const t = nowMs();
  if (target.kind !== 'herald') {
    const items = [];
    for (let i = from; i < to; i++) items.push({ to: ids[i % ids.length], msg: message(i, t) });
    return post('/send', JSON.stringify(items)).then(() => 1);
  }
  if (target.heraldBatch) {
    const messages = [];
    for (let i = from; i < to; i++) messages.push(heraldSend({ aid: ids[i % ids.length] }, message(i, t)));
    // Totals only, as the floor answers (a count): the sender keeps no message ids.
    return post('/api/v1/send/batch', JSON.stringify({ messages, answer: 'summary' })).then(() => 1);
  }
  // No batch form: one request per notification, all in flight together.
  const ps = [];
  for (let i = from; i < to; i++) ps.push(post('/api/v1/send', JSON.stringify(heraldSend({ aid: ids[i % ids.length] }, message(i, t)))));
  return Promise.all(ps).then(() => ps.length);
}

serveIpc({
  setup({ kind, http: base, apiToken, heraldBatch = false, ttl, sockets = 64 }) {
    if (agent) agent.destroy();
    agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
    target = { kind, http: base, apiToken, heraldBatch, ttl };
    return true;
  },
  /** W2: `total` notifications as fast as the server takes them, `batch` per request, `concurrency` requests in flight. */
  async unicast({ ids, total, batch, concurrency }) {
    let next = 0;
    let requests = 0;
    const t0 = nowMs();
    const worker = async () => {
      while (next < total) {
        const from = next;
        next = Math.min(total, next + batch);
        requests += await sendRange(ids, from, next);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { t0, t1: nowMs(), requests };
  },
  /** W4: a steady `rate` per second for `durationMs`, sent every `tickMs` as one batch of at most `maxBatch` (bench/lib/config.mjs sets both). */
  async steady({ ids, rate, durationMs, tickMs, maxBatch, maxInFlight = 512 }) {
    const total = Math.round((rate * durationMs) / 1000);
    const t0 = nowMs();
    let sent = 0;
    let inFlight = 0;
    let lagged = 0;
    let requests = 0;
    const inFlightSet = new Set();
    while (sent < total) {
      const due = Math.min(total, Math.floor(((nowMs() - t0) * rate) / 1000)) - sent;
      if (due > 0 && inFlight < maxInFlight) {
        const n = Math.min(due, maxBatch);
        const p = sendRange(ids, sent, sent + n).then((r) => { requests += r; }).finally(() => { inFlight--; inFlightSet.delete(p); });
        inFlight++;
        inFlightSet.add(p);
        sent += n;
      } else if (due > 0) {
        lagged++;
      }
      await new Promise((r) => setTimeout(r, tickMs));
    }
    await Promise.all(inFlightSet);
    return { t0, t1: nowMs(), sent, lagged, requests };
  },
  /** W3: `count` broadcasts one after another (each request answered before the next). */
  async broadcast({ count }) {
    const sendTimes = [];
    const answerMs = [];
    for (let b = 0; b < count; b++) {
      const t = nowMs();
      sendTimes.push(t);
      const msg = message(-1, t, b);
      if (target.kind === 'herald') await post('/api/v1/send', JSON.stringify(heraldSend({ all: 'admins' }, msg)));
      else await post('/broadcast', JSON.stringify({ msg }));
      answerMs.push(nowMs() - t);
    }
    return { sendTimes, answerMs };
  },
});

process.send({ event: 'ready' });
process.on('SIGTERM', () => process.exit(0));
