// The floor plus the least a server needs to do what issue 7's targets ask of
// Herald with the memory store: keep every notification for tabs that connect
// or come back later, number it in its person's stream (SEQ, EPOCH), take the
// tabs' acks, and replay after a tab's cursor on connect. Everything else is
// the floor's: no auth, no Origin policy, no limits, no heartbeats, no
// expiry, no status look-ups. It shows where storing alone puts a server
// written straight on `ws` (each notification serialised once, SEQ spliced
// into the text, one array push to keep it); it is not what anyone would ship.
//
// Tabs speak Herald's browser protocol as far as the bench's clients use it:
// WELCOME with the heads and the ack waits, frames with SEQ and EPOCH (and
// "STREAM":"*" for broadcasts), `{"TYPE":"RESPONSE","SEQ":n}` acks, PACE when
// the waits asked for now are off by 2× or more from those when a tab was last
// told. The ack waits follow Herald's defaults (src/server/gateway/connection.ts:
// 250 own-stream and 50 broadcast acks a second from all tabs together, each
// tab told them for the count of tabs rounded up to a power of two), so the
// clients ack as often as they do against Herald.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { serveServerIpc, controlHandler } from './common.mjs';

const EPOCH = Date.now().toString(36);
const ACKS_PER_SECOND = 250;
const BROADCAST_ACKS_PER_SECOND = 50;
const LIBRARY_ACK_MS = 1000;
const MIN_BROADCAST_ACK_MS = 2000;

/** A stream: every notification it was sent, as the frame that carries its SEQ (SEQ n is at n - 1). */
const newStream = () => ({ frames: [], acked: 0 });
const streams = new Map(); // person id → stream
const broadcastStream = newStream();
const people = new Map(); // person id → Set<Tab>
const all = new Set();

/** `tabs` as Herald's waits tell it: rounded up to a power of two (coarseTabs, src/server/gateway/connection.ts). */
const coarse = (tabs) => (tabs <= 1 ? tabs : 2 ** Math.ceil(Math.log2(tabs)));
const ackMs = (tabs) => Math.max(LIBRARY_ACK_MS, Math.round((tabs * 1000) / ACKS_PER_SECOND));
const broadcastAckMs = (tabs) => Math.max(MIN_BROADCAST_ACK_MS, Math.round((tabs * 1000) / BROADCAST_ACKS_PER_SECOND));
/** The waits a tab is told (`told`, from the count rounded) and those of the exact count (`paced`), which staleness is judged on, as Herald does. */
const pace = (tab) => {
  const n = all.size;
  tab.paced = { own: ackMs(n), broadcast: broadcastAckMs(n) };
  tab.told = { own: ackMs(coarse(n)), broadcast: broadcastAckMs(coarse(n)) };
};
const stale = (now, told, least) => {
  const a = Math.max(now, least);
  const b = Math.max(told, least);
  return a >= 2 * b || b >= 2 * a;
};

/** Appends to a stream; returns the frame, `text` with its SEQ and EPOCH spliced in. */
function append(stream, text, broadcast) {
  const seq = stream.frames.length + 1;
  const tail = `"SEQ":${seq},"EPOCH":"${EPOCH}"${broadcast ? ',"STREAM":"*"' : ''}}`;
  const frame = text.length <= 2 ? `{${tail}` : `${text.slice(0, -1)},${tail}`;
  stream.frames.push(frame);
  return frame;
}

/** Sends a frame to a tab, with a PACE before it when the tab's ack waits are stale. */
function deliver(tab, frame) {
  const n = all.size;
  if (stale(ackMs(n), tab.paced.own, LIBRARY_ACK_MS) || stale(broadcastAckMs(n), tab.paced.broadcast, MIN_BROADCAST_ACK_MS)) {
    pace(tab);
    tab.ws.send(`{"TYPE":"PACE","ACK_MS":${tab.told.own},"BROADCAST":{"ACK_MS":${tab.told.broadcast}}}`);
  }
  tab.ws.send(frame);
}

const server = createServer(controlHandler({
  send(items) {
    let n = 0;
    for (const { to, msg } of items) {
      let stream = streams.get(to);
      if (!stream) streams.set(to, (stream = newStream()));
      const frame = append(stream, JSON.stringify(msg), false);
      const tabs = people.get(to);
      if (!tabs) continue;
      for (const tab of tabs) { deliver(tab, frame); n++; }
    }
    return n;
  },
  broadcast(msg) {
    const frame = append(broadcastStream, JSON.stringify(msg), true);
    for (const tab of all) deliver(tab, frame);
    return all.size;
  },
}));

/** `?seq=` and `?bseq=`: replay what came after them (a tab coming back). */
function cursor(params, name) {
  const v = params.get(name);
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : undefined;
}

const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
  const params = new URL(req.url, 'http://x').searchParams;
  const id = Number(params.get('id'));
  let stream = streams.get(id);
  if (!stream) streams.set(id, (stream = newStream()));
  const tab = { ws, told: { own: 0, broadcast: 0 }, paced: { own: 0, broadcast: 0 } };
  let tabs = people.get(id);
  if (!tabs) people.set(id, (tabs = new Set()));
  tabs.add(tab);
  all.add(tab);
  pace(tab);
  ws.send(`{"TYPE":"WELCOME","ID":${id},"SEQ":${stream.frames.length},"EPOCH":"${EPOCH}","ACK_MS":${tab.told.own},`
    + `"BROADCAST":{"SEQ":${broadcastStream.frames.length},"EPOCH":"${EPOCH}","ACK_MS":${tab.told.broadcast}}}`);
  const seq = cursor(params, 'seq');
  if (seq !== undefined) for (const f of stream.frames.slice(seq)) ws.send(f);
  const bseq = cursor(params, 'bseq');
  if (bseq !== undefined) for (const f of broadcastStream.frames.slice(bseq)) ws.send(f);
  ws.on('message', (data) => {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (msg?.TYPE !== 'RESPONSE' || !Number.isSafeInteger(msg.SEQ)) return;
    const s = msg.STREAM === '*' ? broadcastStream : stream;
    if (msg.SEQ > s.acked && msg.SEQ <= s.frames.length) s.acked = msg.SEQ;
  });
  ws.on('close', () => {
    tabs.delete(tab);
    if (tabs.size === 0) people.delete(id);
    all.delete(tab);
  });
  ws.on('error', () => {});
});

serveServerIpc({
  /** What it keeps, for a test: the frames and acked SEQ of a person's stream and of the broadcast stream. */
  stored({ id }) {
    const s = streams.get(id) ?? newStream();
    return { own: { frames: s.frames.length, acked: s.acked }, broadcast: { frames: broadcastStream.frames.length, acked: broadcastStream.acked } };
  },
});
server.listen(0, '127.0.0.1', () => {
  process.send({ event: 'ready', http: `http://127.0.0.1:${server.address().port}`, ws: `ws://127.0.0.1:${server.address().port}` });
});
process.on('SIGTERM', () => process.exit(0));
