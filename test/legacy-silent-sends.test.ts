/**
 * Fire-and-forget sends on the legacy door (SILENT in any of its forms:
 * send_message's NON_SAFE, Abills::Backend::API's envelope): there is no
 * answer to wait for, so the connection does not wait for them. Held for
 * each one's 1.5 s deadline, two or three of them behind a slow store kept
 * the old client's is_connected() (PING, then 2 s for the PONG) from its
 * answer, and the client read every later answer one request late; a peer
 * that wrote 30 and left held its connection slot for minutes. They still
 * run one after another, in the order they came, are counted against the
 * connection's queue of 64, and are waited for by `closed` and close().
 * The store here is a real MemoryStore whose writes wait at a gate the test
 * opens.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { legacyOverGate } from './helpers/legacy-core.js';
import { gatedStore } from './helpers/gated-store.js';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

/** The old client's wait for an answer (PROTOCOL.md §2): is_connected() gives up after it. */
const CLIENT_WAIT_MS = 2000;

const silentSend = (title: string) => `{"TYPE":"MESSAGE","TO":"ADMIN","ID":1,"DATA":{"TITLE":"${title}","TEXT":"x","SILENT":1}}`;

const titles = (frames: unknown[]) => frames
  .filter((f): f is { TYPE: string; TITLE: string } => (f as { TYPE?: unknown })?.TYPE === 'MESSAGE')
  .map((f) => f.TITLE);

describe('legacy: fire-and-forget (SILENT) sends', () => {
  for (const sends of [1, 3]) {
    it(`${sends} fire-and-forget send(s) held by the store, then is_connected(): the PONG comes within the client's 2 s, and the sends arrive in order`, async () => {
      const g = gatedStore();
      const server = await startHerald({ store: 'memory' }, { store: g.store });
      const c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
      try {
        const tab = await server.tab('admin', 1);
        await tab.nextOfType('WELCOME');
        // send_message({AID => 1, MESSAGE => {...}, NON_SAFE => 1}): written, never read.
        for (let i = 0; i < sends; i++) await c.write(silentSend(`n${i}`));
        await within(g.written(1), 3000, 'the first send to reach the store');
        assert.deepEqual((await c.request('{"TYPE":"PING"}', CLIENT_WAIT_MS)).answer, { TYPE: 'PONG' }, 'is_connected(): answered while the sends wait for the store');
        assert.equal(g.writes(), 1, 'one send at a time: the next waits for the one before it');
        // An answered send after them waits for them (its own deadline runs meanwhile).
        await c.write('{"TYPE":"MESSAGE","TO":"ADMIN","ID":1,"DATA":{"TITLE":"answered"}}');
        g.open();
        assert.deepEqual(await c.next(3000), { TYPE: 'RESULT', RESULT: [1] });
        await tab.next((f) => f?.TITLE === 'answered');
        assert.deepEqual(titles(tab.frames), [...Array.from({ length: sends }, (_, i) => `n${i}`), 'answered'], 'delivered in the order sent');
        assert.ok(tab.frames.every((f) => f?.SILENT === undefined), 'the tabs never get the client\'s SILENT');
        assert.deepEqual(c.answers, [{ TYPE: 'PONG' }, { TYPE: 'RESULT', RESULT: [1] }], 'nothing for the silent sends');
      } finally {
        g.open();
        c.destroy();
        await server.close();
      }
    });
  }

  it('a peer that writes 30 fire-and-forget sends during a hung store and leaves counts against legacyMaxConnections lateWaitMs after them, not one deadline each', async () => {
    const s = await legacyOverGate(300);
    try {
      const c = await RawLegacyClient.connect(s.port);
      await c.write(Array.from({ length: 30 }, (_, i) => silentSend(`n${i}`)).join(''));
      await within(s.gate.written(1), 3000, 'the first send to reach the store');
      c.destroy();
      // Held for 1.5 s each, they kept the slot 45 s; now each is waited for 300 ms from when it was read.
      await until(() => s.legacy.connections === 0, 5000, 'the left peer\'s connection to stop counting');
    } finally {
      await s.close();
    }
  });

  it('fire-and-forget sends still running count against the queue of 64: reading stops behind them, and resumes as they finish', async () => {
    const s = await legacyOverGate();
    try {
      const c = await RawLegacyClient.connect(s.port);
      const n = 100;
      await c.write(Array.from({ length: n }, (_, i) => silentSend(`n${i}`)).join('') + '{"TYPE":"PING"}');
      await within(s.gate.written(1), 3000, 'the first send to reach the store');
      // Settled: 64 sends started (one at the store, the rest in line behind it), the rest of the read kept as bytes.
      let last = -1;
      await until(async () => {
        const held = s.legacy.held;
        const settled = held === last && held > 0;
        last = held;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return settled;
      }, 5000, 'the rest of the read to be held, not framed');
      assert.deepEqual(c.answers, [], 'the PING is still in the unread bytes');
      s.gate.open();
      assert.deepEqual(await c.next(5000), { TYPE: 'PONG' });
      await until(() => titles(s.tab.received).length === n, 5000, `all ${n} sends at the tab`);
      assert.deepEqual(titles(s.tab.received), Array.from({ length: n }, (_, i) => `n${i}`), 'in the order sent');
      assert.equal(s.legacy.held, 0);
      c.destroy();
    } finally {
      await s.close();
    }
  });

  it('close() waits for fire-and-forget sends in flight, and cuts them after its grace when the store hangs', async () => {
    const s = await legacyOverGate();
    const c = await RawLegacyClient.connect(s.port);
    try {
      await c.write(silentSend('a') + silentSend('b') + '{"TYPE":"PING"}');
      assert.deepEqual(await c.next(CLIENT_WAIT_MS), { TYPE: 'PONG' });
      assert.equal(s.legacy.connections, 1);
      // The store never lets 'a' through: close() resolves after its 2 s grace all the same, and 'b' is dropped unstarted.
      await within(s.legacy.close(), 5000, 'close()');
      assert.equal(s.legacy.connections, 0);
      assert.equal(s.gate.writes(), 1, 'b was waiting for its turn when the server cut the connection');
    } finally {
      c.destroy();
      await s.close();
    }
  });
});
