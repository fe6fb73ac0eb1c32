import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { HeraldError } from '../errors.js';

/**
 * Requests one connection may have waiting for their answers (HTTP/1.1
 * pipelining, RFC 9112 §9.3.2). Node parses every request of a read (up to
 * 64 KB) before it looks at the answers it holds, and then keeps each answer
 * until the client reads it: one read of 1,300 `GET /api/v1/openapi.json`
 * from a client that never read held 191 MiB, and four such clients ran a
 * 512 MiB heap out. No browser pipelines, nor does curl, the SDK (fetch, one
 * request at a time on a connection) or undici unless told to (its own
 * default is 1); 32 leaves a client that does room, and bounds what a
 * connection holds to 32 answers.
 */
export const MAX_PIPELINED = 32;

/** A connection's requests whose answers are not yet written, and whether one past the bound was refused. */
interface Pipeline {
  waiting: number;
  refused: boolean;
}

const pipelines = new WeakMap<Socket, Pipeline>();

/** The request past the bound on its connection, answered (in its turn) by the server's own handler. */
const refusedRequests = new WeakSet<IncomingMessage>();

/**
 * Bounds the answers each connection of `server` may have outstanding to
 * MAX_PIPELINED, counted from a request's arrival until its answer is
 * written or the connection closes. Call it once the server's 'request'
 * listener is in place (Fastify's, the old daemon's ports' handler): it runs
 * in front of them.
 *
 * The request past the bound is not run: the handler answers it with 429
 * HERALD_ERR_RATE_LIMITED (pipelineRefusal) and `Connection: close`, after
 * the answers before it, as node queues answers in the order of their
 * requests. Those after it are neither run nor answered, and the connection
 * is read no more. A client so loses nothing it sent: every request it
 * pipelined is either answered, or was not run, which RFC 9112 §9.6 lets it
 * tell from the `close` (a server must not process requests after one) and
 * may send again. Destroying the connection instead would lose the answers
 * to requests already run, a send delivered but unanswered. (A client that
 * wrote more than the read the refusal came in may see the connection reset
 * when it ends, what it sent still unread: the kernel's way, as with node's
 * own `Connection: close`; the answers it had already received stay its.)
 */
export function limitPipelining(server: HttpServer): void {
  const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!admitted(req, res)) return;
    for (const handler of handlers) handler.call(server, req, res);
  });
}

/** Whether the request goes to the handler: counted, or the one refused past the bound. */
function admitted(req: IncomingMessage, res: ServerResponse): boolean {
  const socket = req.socket;
  let pipeline = pipelines.get(socket);
  if (pipeline === undefined) {
    pipeline = { waiting: 0, refused: false };
    pipelines.set(socket, pipeline);
  }
  if (pipeline.refused) return false;
  if (pipeline.waiting >= MAX_PIPELINED) {
    pipeline.refused = true;
    refusedRequests.add(req);
    // Node ends the connection once this answer is written (its `Connection: close`).
    res.shouldKeepAlive = false;
    stopReading(socket);
    return true;
  }
  pipeline.waiting++;
  // 'close' follows 'finish', and comes alone for an answer cut short by the connection's end.
  res.on('close', answered);
  return true;
}

/** A shared function, so that it keeps nothing of the request alive. */
function answered(this: ServerResponse): void {
  const pipeline = pipelines.get(this.req.socket);
  if (pipeline !== undefined) pipeline.waiting--;
}

/** The refusal of the request past MAX_PIPELINED on its connection (limitPipelining), or undefined. */
export function pipelineRefusal(req: IncomingMessage): HeraldError | undefined {
  if (!refusedRequests.has(req)) return undefined;
  return new HeraldError(
    'HERALD_ERR_RATE_LIMITED',
    `more than ${MAX_PIPELINED} requests on this connection were waiting for their answers: this one and those after it were not run, and the connection closes (read the answers before sending more)`,
  );
}

/**
 * Stops reading a connection for good: what follows on it is never answered.
 * Node resumes a paused connection itself (when an answer before has been
 * written, or a request's body is drained), and the parser would take the
 * next read's requests: each resume is paused again in the same turn, before
 * any read (node's own 'resume' listener starts reading, this one, after it,
 * stops).
 */
export function stopReading(socket: Socket): void {
  socket.pause();
  socket.on('resume', pauseAgain);
}

function pauseAgain(this: Socket): void {
  this.pause();
}
