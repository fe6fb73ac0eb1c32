/**
 * sqlUrl with an IPv6 literal host (`mysql://…@[::1]:PORT/db`,
 * `postgres://…@[::1]:PORT/db`): each driver must take the brackets off
 * before it connects. The shared databases listen on 127.0.0.1 only
 * (SERVICES.md), so a TCP relay on ::1 stands in front of each.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { createSqlPool } from '../src/server/auth/sql-pool.js';
import { noIPv6 } from './helpers/ipv6.js';
import { requireService } from './helpers/sql-services.js';

/** Listens on ::1 and relays each connection to 127.0.0.1:`target`. */
async function relayOnIPv6(target: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => { client.destroy(); upstream.destroy(); });
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  server.listen(0, '::1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

for (const [service, target, template, sql] of [
  ['mariadb', 3306, 'mysql://root@[::1]:PORT/test', 'SELECT ?'],
  ['postgres', 5432, 'postgres://postgres@[::1]:PORT/test', 'SELECT $1::text'],
] as const) {
  const skip = noIPv6 || (await requireService(service));
  describe(`sqlUrl ${template}`, { skip: skip || false }, () => {
    const relays: Array<{ close(): void }> = [];
    after(() => { for (const r of relays) r.close(); });

    test('the pool connects through [::1] and answers a query', async () => {
      const relay = await relayOnIPv6(target);
      relays.push(relay);
      const pool = createSqlPool(template.replace('PORT', String(relay.port)), { size: 1, timeoutMs: 5000 });
      try {
        assert.equal(await pool.firstValue(sql, 'over ::1'), 'over ::1');
      } finally {
        await pool.close();
      }
    });
  });
}
