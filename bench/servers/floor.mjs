// The floor: the minimal notification server anyone would write on `ws`.
// A Map from person id to its sockets, JSON.stringify once per message, an
// HTTP endpoint for a batch of sends and one for broadcast. No auth, no acks,
// no store: the practical limit for Node.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { serveServerIpc, controlHandler } from './common.mjs';

const people = new Map(); // id → Set<WebSocket>
const all = new Set();

const server = createServer(controlHandler({
  send(items) {
    let n = 0;
    for (const { to, msg } of items) {
      const sockets = people.get(to);
      if (!sockets) continue;
      const text = JSON.stringify(msg);
      for (const ws of sockets) { ws.send(text); n++; }
    }
    return n;
  },
  broadcast(msg) {
    const text = JSON.stringify(msg);
    for (const ws of all) ws.send(text);
    return all.size;
  },
}));

const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  const id = Number(new URL(req.url, 'http://x').searchParams.get('id'));
  let set = people.get(id);
  if (!set) people.set(id, (set = new Set()));
  set.add(ws);
  all.add(ws);
  ws.on('close', () => {
    set.delete(ws);
    if (set.size === 0) people.delete(id);
    all.delete(ws);
  });
  ws.on('error', () => {});
});

serveServerIpc();
server.listen(0, '127.0.0.1', () => {
  process.send({ event: 'ready', http: `http://127.0.0.1:${server.address().port}`, ws: `ws://127.0.0.1:${server.address().port}` });
});
process.on('SIGTERM', () => process.exit(0));
