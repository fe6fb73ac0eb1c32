/**
 * A TCP proxy on 127.0.0.1 in front of one of the shared databases, for the
 * resolver fault tests: the shared servers must never be stopped, so the
 * proxy stands for the database going down and coming back.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { pipeTo } from './freezable-proxy.js';
import { restartablePort } from './ports.js';

/**
 * A TCP proxy on 127.0.0.1 in front of a database: `stop()` closes its port
 * and every connection through it (the database "goes down"), `start()`
 * listens again on the same port (it "comes back").
 */
export class DbProxy {
  readonly #target: number;
  readonly #sockets = new Set<Socket>();
  /** Each client connection with its connection upstream. */
  readonly #pairs = new Map<Socket, Socket>();
  #server: Server | undefined;
  port = 0;

  constructor(target: number) {
    this.#target = target;
  }

  async start(): Promise<void> {
    this.port ||= await restartablePort();
    const server = createServer((client) => {
      const upstream = pipeTo(client, this.#target);
      this.#pairs.set(client, upstream);
      client.on('close', () => this.#pairs.delete(client));
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
      }
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
  }

  /**
   * Every connection open now is dead from here on, and its client is not
   * told until it next writes: then it is closed, unanswered. As a database
   * restart looks to a pool whose idle connections have not heard of it yet.
   */
  breakOpenConnections(): void {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.once('data', () => {
        client.destroy();
        upstream.destroy();
      });
      // unpipe paused it: flowing again, or the 'data' above never comes.
      client.resume();
    }
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

