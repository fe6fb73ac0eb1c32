/**
 * One read of a legacy connection can hold thousands of requests: 64 KB of
 * `{}` is 32,768. The server frames at most MAX_QUEUED_REQUESTS of them at a
 * time and keeps the rest of the read as bytes, counted in the held total
 * that legacyMaxBufferedBytes bounds. Queued whole, they took about 3 MB of
 * heap for each peer that sent 64 KB and did not read its answers, and the
 * default 1024 connections could run the heap out. Nothing read is lost:
 * the rest is framed as the queue drains, even once the peer has gone.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pino from 'pino';
import { LegacyServer } from '../src/server/api/legacy-server.js';
import { loadOptions } from '../src/server/options.js';
import { createCore, legacyOverGate } from './helpers/legacy-core.js';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { until } from './helpers/ws-client.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe('legacy TCP: a read of many requests', () => {
  it('a peer that does not read its answers holds about the bytes it sent, counted in the held total, not its requests parsed', async () => {
    const core = await createCore();
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    const peers: RawLegacyClient[] = [];
    try {
      const before = heapUsed();
      const n = 5;
      for (let i = 0; i < n; i++) {
        const c = await RawLegacyClient.connect(port);
        c.socket.pause();
        c.socket.write('{}'.repeat(1 << 20)); // 2 MiB of requests, each answered with an error
        peers.push(c);
      }
      // Settled: each peer's reading has stopped, with the rest of a read held.
      let last = -1;
      await until(async () => {
        const held = legacy.held;
        const settled = held === last && held > 0;
        last = held;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return settled;
      }, 90_000, 'the peers\' reading to stop'); // about 8 s alone; past 30 s in a suite run beside other work
      const grown = heapUsed() - before;
      assert.ok(legacy.held <= n * 65_536, `each peer holds at most the rest of one read: ${legacy.held} bytes for ${n}`);
      // Each held about 3.4 MB when its reads were queued whole (64 KB of {} at a time), 0.16-0.33 MB now.
      assert.ok(grown < n * 1_000_000, `the heap grew ${grown} bytes for ${n} peers that sent 2 MiB of {} each`);
    } finally {
      for (const c of peers) c.destroy();
      await legacy.close();
      await core.close();
    }
  });

  it('answers every request of a read far longer than the queue, in order', async () => {
    const core = await createCore();
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const c = await RawLegacyClient.connect(port);
      const n = 5000;
      let batch = '';
      for (let i = 0; i < n; i++) batch += `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${i}}}`;
      await c.write(batch);
      for (let i = 0; i < n; i++) assert.equal(await c.next(), i);
      c.end();
      await within(c.closed, 2000, 'the server to end the connection');
      assert.equal(legacy.held, 0);
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('first bytes held as a possible HTTP request line, read as requests at the end of input, are framed 64 at a time too', async () => {
    // Sends that wait for the store, SILENT (not waited for, so counted as queued while they
    // run): the queue fills and stays full until the test lets the store write.
    const { legacy, port, gate, tab, close } = await legacyOverGate();
    try {
      // `A ` and no space after it: under 8 KiB, these could still be an HTTP request line, so
      // they are held, and read as requests (junk, then the sends) only once the peer half-closes.
      let sends = '';
      let n = 0;
      for (; sends.length < 8000; n++) sends += `{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"n${n}","SILENT":1}}`;
      const c = await RawLegacyClient.connect(port);
      c.socket.write(`A ${sends}`, () => c.end());
      await within(gate.written(1), 3000, 'the first send to reach the store');
      // Pushed whole, all of them were queued at once and nothing was left held.
      assert.ok(legacy.held > 0, 'the sends past the first 64 are still held as bytes');
      gate.open();
      await until(() => tab.received.length === n, 5000, `all ${n} sends at the tab`);
      assert.deepEqual((tab.received as Array<{ TITLE?: unknown }>).map((f) => f.TITLE), Array.from({ length: n }, (_, i) => `n${i}`));
      assert.deepEqual(await c.next(2000), { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' }, 'the `A ` is junk, and the sends have no answer');
      await within(c.closed, 3000, 'the server to end the connection');
      assert.equal(legacy.held, 0);
    } finally {
      await close();
    }
  });

  for (const how of ['half-closes', 'resets'] as const) {
    it(`carries out every request of such a read when the peer ${how} the connection at once`, async () => {
      const core = await createCore();
      const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
      const { port } = await legacy.listen();
      try {
        const [tab] = core.open('admin', 41);
        const texts = () => (tab!.received as Array<{ TEXT?: unknown }>).map((f) => f.TEXT);
        const c = await RawLegacyClient.connect(port);
        const n = 1000;
        let batch = '';
        for (let i = 0; i < n; i++) batch += `{"TYPE":"MESSAGE","TO":"ADMIN","ID":41,"DATA":{"TEXT":"m ${i}"}}`;
        c.socket.write(batch, () => (how === 'half-closes' ? c.end() : c.socket.resetAndDestroy()));
        await until(() => texts().length === n, 10_000, `all ${n} notifications`);
        assert.deepEqual(texts(), Array.from({ length: n }, (_, i) => `m ${i}`));
        await until(() => legacy.held === 0, 2000, 'nothing held');
      } finally {
        await legacy.close();
        await core.close();
      }
    });
  }
});
