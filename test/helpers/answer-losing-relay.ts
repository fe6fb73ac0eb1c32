/**
 * A relay that loses the answer to its first connection, for retries after a
 * lost connection (the SDK's and the CLI's).
 */
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface Relay {
  url: string;
  /** Connections whose answer was lost. */
  cut: () => number;
  close: () => Promise<void>;
}

/**
 * A TCP relay to 127.0.0.1:`port` that loses the answer on its first
 * connection: when the server's answer starts back, the client's connection
 * is closed with a reset and the answer thrown away. The request reached the
 * server (whole, or as much as the server read before answering). Later
 * connections are relayed untouched.
 */
export async function answerLosingRelay(port: number): Promise<Relay> {
  let connections = 0;
  let cut = 0;
  const sockets = new Set<Socket>();
  const relay = createServer((client) => {
    const lose = ++connections === 1;
    const upstream = connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      if (!lose) {
        client.write(chunk);
        return;
      }
      if (!client.destroyed) cut++;
      client.resetAndDestroy();
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    cut: () => cut,
    close: async () => {
      for (const so of sockets) so.destroy();
      relay.close();
      await once(relay, 'close');
    },
  };
}
