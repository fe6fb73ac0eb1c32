import type { IncomingMessage, Server as HttpServer } from 'node:http';
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
