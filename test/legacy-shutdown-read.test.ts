/**
 * What the legacy door does with requests already in a connection's socket when close() begins:
 * written by the peer, not yet read by Herald. Paused at once, a SILENT (NON_SAFE) MESSAGE there
 * was neither carried out, stored nor logged, and its sender, which reads no answer, never knew:
 * lost at every restart of a panel sending a steady stream of them. Now a short last read frames
 * them: complete requests are carried out (or answered), an unfinished one is dropped, and a peer
 * that keeps writing does not hold close() past its grace.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { LegacyServer } from '../src/server/api/legacy-server.js';
import { loadOptions } from '../src/server/options.js';
import { createCore } from './helpers/legacy-core.js';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const silentSend = (text: string) => `{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"SILENT":1,"DATA":{"TEXT":"${text}"}}`;

const texts = (frames: unknown[]) => frames
  .filter((f): f is { TYPE: string; TEXT: string } => (f as { TYPE?: unknown })?.TYPE === 'MESSAGE')
  .map((f) => f.TEXT);

describe('legacy: requests in the socket when close() begins', () => {
  it('a SILENT MESSAGE written just before close() is stored (SQLite) and delivered after a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-legacy-shutdown-'));
    const start = { dataDir, secret: 'k'.repeat(43), apiToken: 't'.repeat(32) };
    try {
      const s = await startHerald({ legacyEnabled: true, store: 'sqlite' }, start);
      const c = await RawLegacyClient.connect(s.herald.urls.legacy!.port);
      let closing: Promise<void> | undefined;
      try {
        // The first is read before the shutdown: a PING behind it is answered only once it was.
        await c.write(silentSend('one'));
        assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
        // Written (on loopback, in the server's receive buffer once the callback runs), then the
        // operator stops Herald before the server's next read.
        await new Promise<void>((resolve, reject) => c.socket.write(silentSend('two'), (e) => {
          if (e) return reject(e);
          closing = s.herald.close();
          resolve();
        }));
        await within(closing!, 10_000, 'Herald.close()');
      } finally {
        c.destroy();
        await s.close().catch(() => undefined);
      }
      const s2 = await startHerald({ legacyEnabled: true, store: 'sqlite' }, start);
      try {
        const tab = await s2.tab('admin', 7);
        await tab.next((f) => f?.TYPE === 'MESSAGE' && f.TEXT === 'two', 5000);
        assert.deepEqual(texts(tab.frames), ['one', 'two'], 'both replayed, in the order sent');
      } finally {
        await s2.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('at close(), complete requests already in the socket are carried out or answered; an unfinished one after them is dropped', async () => {
    const core = await createCore();
    const options = loadOptions({ env: {} });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options, logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    const [tab] = core.open('admin', 7);
    const c = await RawLegacyClient.connect(port);
    try {
      // Accepted and serving before the shutdown begins.
      assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      let closing: Promise<void> | undefined;
      const cut = '{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"SILENT":1,"DATA":{"TEXT":"cut';
      await new Promise<void>((resolve, reject) => c.socket.write(`${silentSend('three')}{"TYPE":"PING"}${cut}`, (e) => {
        if (e) return reject(e);
        closing = legacy.close();
        resolve();
      }));
      await within(closing!, 5000, 'close()');
      await within(c.ended, 3000, 'the server to end the connection');
      assert.deepEqual(c.answers, [{ TYPE: 'PONG' }, { TYPE: 'PONG' }], 'the PING in the socket answered, nothing for the SILENT send');
      assert.deepEqual(texts(tab!.received), ['three'], 'the complete SILENT send carried out, the unfinished one not');
    } finally {
      c.destroy();
      await legacy.close();
      await core.close();
    }
  });

  it('close() ends within its grace though a peer keeps writing through it', async () => {
    const core = await createCore();
    const options = loadOptions({ env: {} });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options, logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    // Half-open allowed: the server's end of the connection does not end the peer's writing.
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    socket.on('error', () => { /* the server's cut may reset it */ });
    await within(once(socket, 'connect'), 3000, 'the connection');
    let answered = 0;
    socket.on('data', (chunk: Buffer) => {
      for (const b of chunk) if (b === 0x0a) answered++;
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let writes = 0;
    let writing = true;
    // PINGs and SILENT sends without end, a batch a turn of the event loop, answers read and
    // dropped: the peer never stops writing, whatever the server does.
    const batch = `${'{"TYPE":"PING"}'.repeat(50)}${silentSend('flood').repeat(10)}`;
    const writer = (async () => {
      while (writing && socket.writable) {
        writes++;
        if (!socket.write(batch)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              socket.off('drain', done);
              socket.off('close', done);
              resolve();
            };
            socket.on('drain', done);
            socket.on('close', done);
          });
        } else {
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    })();
    try {
      await until(() => answered > 100, 5000, 'the flood to be served');
      const before = writes;
      // Grace 2 s, then the cut: well within 5 s however much the peer writes.
      await within(legacy.close(), 5000, 'close() with a peer that keeps writing');
      assert.ok(writes > before, 'the peer was still writing while close() ran');
      await within(closed, 5000, 'the connection to be closed');
    } finally {
      writing = false;
      socket.destroy();
      await writer;
      await legacy.close();
      await core.close();
    }
  });
});
