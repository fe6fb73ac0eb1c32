// Socket.IO 4 as people use it for notifications: one room per person,
// io.to(room).emit for a send, io.emit for a broadcast; websocket transport only.
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { serveServerIpc, controlHandler } from './common.mjs';

let io;
const server = createServer(controlHandler({
  send(items) {
    let n = 0;
    for (const { to, msg } of items) {
      const room = `p${to}`;
      n += io.sockets.adapter.rooms.get(room)?.size ?? 0;
      io.to(room).emit('message', msg);
    }
    return n;
  },
  broadcast(msg) {
    io.emit('message', msg);
    return io.engine.clientsCount;
  },
}));

io = new Server(server, { transports: ['websocket'], serveClient: false });
io.on('connection', (socket) => {
  socket.join(`p${Number(socket.handshake.auth?.id)}`);
});

serveServerIpc();
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  process.send({ event: 'ready', http: `http://127.0.0.1:${port}`, ws: `http://127.0.0.1:${port}` });
});
process.on('SIGTERM', () => process.exit(0));
