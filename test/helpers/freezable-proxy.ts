/**
 * A TCP proxy on 127.0.0.1 whose open connections can be frozen: no byte
 * flows either way and both sockets stay open, as on a network that went
 * away without closing anything (a dead link). New connections still work.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class FreezableProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  port = 0;

  constructor(targetPort: number) {
    this.#server = createServer((client: Socket) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.#pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const end = () => {
        this.#pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  /** Stops forwarding on every open connection (new ones still work). Returns how many were frozen. */
  freeze(): number {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
    return this.#pairs.size;
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
