import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Whether the Upgrade header offers WebSocket (a comma-separated list of protocols, any case). */
export function offersWebSocket(req: IncomingMessage): boolean {
  const offer = req.headers.upgrade;
  if (offer === undefined) return false;
  for (const protocol of offer.split(',')) if (protocol.trim().toLowerCase() === 'websocket') return true;
  return false;
}

/** Connection options that only go with an offer to switch protocols. */
const OFFER_TOKENS = new Set(['upgrade', 'http2-settings']);

/**
 * Answers a request that offers to switch to a protocol other than WebSocket
 * as the ordinary request it also is. curl's `--http2` and libcurl's HTTP/2
 * mode send `Upgrade: h2c` with every request over plain HTTP, and RFC 9110
 * (§7.8) lets a server ignore the offer and answer in HTTP/1.1. But once an
 * HTTP server has an 'upgrade' listener (the Gateway's), node hands it every
 * request with an Upgrade header, its parser already detached: an API call
 * with the offer would get the Gateway's 404. So the request is written back
 * in front of what followed it (its body, the next requests) without the
 * offer, and the HTTP server takes the connection anew, as if just accepted.
 * Node's parser decoded the head as latin1, so latin1 gives its bytes back.
 */
export function answerWithoutUpgrade(server: HttpServer, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'upgrade' || name === 'http2-settings') continue;
    if (name === 'connection') {
      const kept = raw[i + 1]!.split(',').map((t) => t.trim()).filter((t) => t !== '' && !OFFER_TOKENS.has(t.toLowerCase()));
      if (kept.length > 0) lines.push(`${raw[i]}: ${kept.join(', ')}`);
      continue;
    }
    lines.push(`${raw[i]}: ${raw[i + 1]}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
  server.emit('connection', socket);
}

/**
 * The answer node is writing on a connection, if any: node's own
 * `socket._httpMessage` (lib/_http_server.js), set when an answer starts and
 * cleared when it has finished, the next one queued then taking its place.
 */
export function answerInProgress(socket: Duplex): ServerResponse | undefined {
  return (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/**
 * Runs `then` once the answers to the requests before an upgrade request on
 * the same connection have been written. Node hands the upgrade request over
 * as soon as it has parsed it, pipelined behind a request still in its route:
 * taken at once, an h2c offer's connection went to a new parser whose answers
 * queued behind one it never saw finish (the connection went silent, the
 * requests' routes having run), and a WebSocket's 101 and WELCOME went out in
 * front of the earlier answer. Waiting is what a client that pipelines
 * expects (answers in the order of the requests, RFC 9112 §9.3.2); it is the
 * rare path: a browser never pipelines a handshake. Node's HTTP server sees
 * such a socket no more (its parser is gone with the upgrade, closeAllConnections
 * passes it by) but still counts it: its caller keeps it, to end it at shutdown.
 */
export function afterEarlierAnswers(socket: Duplex, then: () => void): void {
  // Node took its listeners off the socket with the upgrade: without one, a reset while waiting would throw.
  socket.on('error', destroyOnError);
  const wait = (): void => {
    if (socket.destroyed) return;
    const answering = answerInProgress(socket);
    if (answering !== undefined) {
      // 'close' as well: an answer cut short by the connection's end never finishes.
      let waited = false;
      const next = (): void => {
        if (waited) return;
        waited = true;
        wait();
      };
      answering.once('finish', next);
      answering.once('close', next);
      return;
    }
    socket.off('error', destroyOnError);
    // The last answer may have ended the connection (Connection: close): the rest is never answered.
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    // Node armed its keep-alive wait (keepAliveTimeout) when that answer finished, for an idle
    // connection: this one is busy again, and the new parser would let the wait end a long request.
    (socket as Socket).setTimeout?.(0);
    then();
  };
  wait();
}

function destroyOnError(this: Duplex): void {
  this.destroy();
}
