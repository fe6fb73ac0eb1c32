// The bench's sender (bench/sender.mjs), the "application backend": a request
// sent on a kept-alive socket that the server closed as it went is sent once
// more on a new socket (node's `request.reusedSocket` advice), so a server's
// idle timeout cannot end a run; any other failure still fails the call.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { forkBenchChild } from './helpers/bench-child.js';

/** Forks the sender, as the bench does. */
const startSender = () => forkBenchChild('bench/sender.mjs');

/** A floor-like /send that drops the connection of the n-th request (counting from 1) on a socket it already answered on. */
async function server(dropNth: (n: number, reused: boolean) => boolean) {
  const served = new WeakMap<Socket, number>();
  let requests = 0;
  let dropped = 0;
  const srv = createServer((req: IncomingMessage, res: ServerResponse) => {
    const n = ++requests;
    const reused = served.has(req.socket);
    if (dropNth(n, reused)) {
      dropped++;
      req.socket.destroy();
      return;
    }
    served.set(req.socket, (served.get(req.socket) ?? 0) + 1);
    req.resume();
    req.on('end', () => res.end('{"delivered":0}'));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  return { srv, url: `http://127.0.0.1:${port}`, counts: () => ({ requests, dropped }) };
}

test('a request the server resets on a reused socket is sent again; a reset on a new socket fails the call', async () => {
  const sender = await startSender();
  // Every request that comes on a socket already used once is dropped the first time round.
  const resetting = await server((_n, reused) => reused);
  try {
    await sender.call('setup', { kind: 'floor', http: resetting.url, sockets: 1 });
    const sent = await sender.call('unicast', { ids: [1, 2], total: 6, batch: 2, concurrency: 1 }) as { requests: number };
    assert.equal(sent.requests, 3);
    // The 2nd and 3rd went on the kept-alive socket, were reset, and went again on a new one.
    assert.deepEqual(resetting.counts(), { requests: 5, dropped: 2 });
  } finally {
    resetting.srv.close();
  }
  const failing = await server(() => true);
  try {
    await sender.call('setup', { kind: 'floor', http: failing.url, sockets: 1 });
    await assert.rejects(sender.call('unicast', { ids: [1], total: 1, batch: 1, concurrency: 1 }), /socket hang up|ECONNRESET/);
    assert.equal(failing.counts().requests, 1, 'a reset on a new socket is not sent again');
  } finally {
    failing.srv.close();
    sender.child.kill('SIGTERM');
  }
});
