/**
 * TCP proxies on 127.0.0.1 for browser tests of broken networks: pipeTo
 * joins a client to the server, and FreezableProxy's open connections can
 * be frozen: no byte flows either way and both sockets stay open, as on a
 * network that went away without closing anything (a dead link). New
 * connections still work. Or cut: every connection closed, and new ones
 * refused while `down`, as while a network is away.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * Joins `client` to 127.0.0.1:`targetPort` both ways, after writing `first`
 * (bytes already read from the client) upstream; the end or an error of
 * either side ends both. Returns the upstream socket.
 */
export function pipeTo(client: Socket, targetPort: number, first: readonly Buffer[] = []): Socket {
  const upstream = connect(targetPort, '127.0.0.1');
  for (const chunk of first) upstream.write(chunk);
  client.pipe(upstream);
  upstream.pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  return upstream;
}

export class FreezableProxy {
  readonly #server: Server;
  readonly #pairs = new Set<[Socket, Socket]>();
  port = 0;
  /** New connections are closed at once (cut() sets it; set it false to let them through again). */
  down = false;

  constructor(targetPort: number) {
    this.#server = createServer((client: Socket) => {
      if (this.down) return void client.destroy();
      const pair: [Socket, Socket] = [client, pipeTo(client, targetPort)];
      this.#pairs.add(pair);
      client.on('close', () => this.#pairs.delete(pair));
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

  /** Closes every open connection, and refuses new ones until `down` is set false. */
  cut(): void {
    this.down = true;
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
