/**
 * The legacy listener's answer deadline (1.5 s, inside the old client's 2 s)
 * with a store that is really slow for some writes: a real MemoryStore whose
 * writes of a marked notification wait until the test lets them through.
 * - A request that asked for no answer gets none at its deadline either, in
 *   every form the parser takes for SILENT: an answer nobody reads would be
 *   read as the answer to the client's next request, and every one after it
 *   a request late.
 * - A MESSAGE answered late keeps running, and the next MESSAGE on the
 *   connection waits for it: two sends to one person arrive in order.
 * - Not for ever: one that never finishes is waited for lateWaitMs, then the
 *   connection carries on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { LocalBroker } from '../src/server/broker/local-broker.js';
import { Hub } from '../src/server/hub.js';
import { Notifier } from '../src/server/notifier.js';
import { LATE_ANSWER, LegacyServer } from '../src/server/api/legacy-server.js';
import { loadOptions } from '../src/server/options.js';
import { MemoryStore } from '../src/server/store/memory-store.js';
import type { MessageStore } from '../src/server/store/message-store.js';
import { FakeTab } from './helpers/legacy-core.js';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const LATE = { TYPE: 'ERROR', ERROR: LATE_ANSWER, CODE: 'HERALD_ERR_UNAVAILABLE' };

/**
 * A real MemoryStore whose writes of a notification holding `marker` (its
 * title) wait until open() — or for ever, if the test never calls it; the
 * other writes go through at once.
 */
function storeHolding(marker: string): { store: MessageStore; reached: Promise<void>; open(): void } {
  const inner = new MemoryStore({ maxPerStream: 1000 });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  let reach!: () => void;
  const reached = new Promise<void>((resolve) => { reach = resolve; });
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'appendMany') {
        return async (...args: Parameters<MessageStore['appendMany']>) => {
          if (args[0].some((input) => input.json.includes(marker))) {
            reach();
            await gate;
          }
          return target.appendMany(...args);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, reached, open };
}

const titles = (frames: unknown[]) => frames
  .filter((f): f is { TYPE: string; TITLE: string } => (f as { TYPE?: unknown })?.TYPE === 'MESSAGE')
  .map((f) => f.TITLE);

describe('legacy: requests past the answer deadline', () => {
  it('a SILENT request past its deadline gets no answer either, in every form of SILENT: the next request\'s answer comes first', async () => {
    const held = storeHolding('slow');
    const server = await startHerald({ store: 'memory' }, { store: held.store });
    const clients: RawLegacyClient[] = [];
    try {
      const port = server.herald.urls.legacy!.port;
      const tab = await server.tab('admin', 1);
      await tab.nextOfType('WELCOME');
      const forms = [
        // Abills::Sender::Browser's send_message with NON_SAFE: SILENT in the hash it puts in DATA.
        ['DATA.SILENT', '{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"slow2","SILENT":1}}'],
        // The same hash JSON-encoded into a DATA string.
        ['SILENT in a DATA string', JSON.stringify({ TYPE: 'MESSAGE', ID: 1, DATA: JSON.stringify({ TITLE: 'slow3', SILENT: 1 }) })],
        // Abills::Backend::API's envelope, MESSAGE a JSON string with SILENT inside.
        ['SILENT in an envelope\'s MESSAGE string', JSON.stringify({ MESSAGE: JSON.stringify({ TYPE: 'MESSAGE', ID: 1, DATA: { TITLE: 'slow4' }, SILENT: 1 }) })],
        ['top-level SILENT', '{"TYPE":"MESSAGE","ID":1,"SILENT":1,"DATA":{"TITLE":"slow1"}}'],
      ] as const;
      // One connection each, side by side: the client writes its fire-and-forget send, then its next request, and reads one answer.
      await Promise.all(forms.map(async ([form, request]) => {
        const c = await RawLegacyClient.connect(port);
        clients.push(c);
        await c.write(request + '{"TYPE":"PING"}');
        assert.deepEqual(await c.next(4000), { TYPE: 'PONG' }, `${form}: the PING's answer, not a late error for the silent send`);
      }));
      // Carried out all the same once the store lets them through, and the tabs never see SILENT.
      held.open();
      await tab.next((f) => f?.TITLE === 'slow1');
      assert.deepEqual(titles(tab.frames).sort(), ['slow1', 'slow2', 'slow3', 'slow4']);
      assert.ok(tab.frames.every((f) => f?.SILENT === undefined));
      for (const c of clients) assert.deepEqual(c.answers, [{ TYPE: 'PONG' }], 'nothing else on the connection');
    } finally {
      held.open();
      for (const c of clients) c.destroy();
      await server.close();
    }
  });

  it('a MESSAGE answered late keeps running, and the next MESSAGE on the connection waits for it: sends arrive in order', async () => {
    const held = storeHolding('slowA');
    const server = await startHerald({ store: 'memory' }, { store: held.store });
    const c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
    try {
      const tab = await server.tab('admin', 1);
      await tab.nextOfType('WELCOME');
      await c.write('{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"slowA"}}{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"fastB"}}');
      await within(held.reached, 3000, 'slowA to reach the store');
      assert.deepEqual(await c.next(3000), LATE, 'slowA: answered at its deadline');
      // fastB waits for slowA, which the store holds until fastB has been answered.
      const second = await c.next(3000);
      held.open();
      await until(() => titles(tab.frames).length === 2, 5000, 'both sends at the tab');
      assert.deepEqual(titles(tab.frames), ['slowA', 'fastB'], 'delivered in the order sent');
      assert.deepEqual(second, LATE, 'fastB: it waited for slowA past its own deadline, so it is answered late in turn');
      assert.deepEqual((await c.request('{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"C"}}')).answer, { TYPE: 'RESULT', RESULT: [1] }, 'and the connection goes on');
    } finally {
      held.open();
      c.destroy();
      await server.close();
    }
  });

  it('the next MESSAGE waits for one answered late only until it finishes: in time, it is answered in time', async () => {
    const held = storeHolding('slowA');
    const server = await startHerald({ store: 'memory' }, { store: held.store });
    const c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
    try {
      const tab = await server.tab('admin', 1);
      await tab.nextOfType('WELCOME');
      await c.write('{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"slowA"}}{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"fastB"}}');
      assert.deepEqual(await c.next(3000), LATE);
      // slowA finishes now, well inside fastB's deadline (1.5 s from slowA's late answer).
      held.open();
      const second = await c.next(3000);
      await until(() => titles(tab.frames).length === 2, 5000, 'both sends at the tab');
      assert.deepEqual(titles(tab.frames), ['slowA', 'fastB'], 'delivered in the order sent');
      assert.deepEqual(second, { TYPE: 'RESULT', RESULT: [1] });
    } finally {
      held.open();
      c.destroy();
      await server.close();
    }
  });

  it('a MESSAGE that never finishes is waited for lateWaitMs, then the connection carries on; PING never waits; close() resolves', async () => {
    const held = storeHolding('hung');
    const logger = pino({ level: 'silent' });
    const hub = new Hub();
    const broker = new LocalBroker(hub);
    await broker.start((e) => {
      if (e.type === 'person') hub.deliverTo(e.to, e.frame, e.origin);
    });
    const notifier = new Notifier({ store: held.store, broker, logger, defaultTtlMs: 60_000, maxTtlMs: 600_000 });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier, options: loadOptions({ env: {} }), logger, lateWaitMs: 300 });
    const tab = new FakeTab({ kind: 'admin', id: 1 });
    hub.add(tab);
    const { port } = await legacy.listen();
    const c = await RawLegacyClient.connect(port);
    try {
      await c.write('{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"hung"}}{"TYPE":"PING"}{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"next"}}');
      assert.deepEqual(await c.next(3000), LATE);
      // Nothing to carry out in order: answered without waiting for the hung send.
      assert.deepEqual(await c.next(3000), { TYPE: 'PONG' });
      // Waited for the hung send 300 ms, well inside its own deadline, then carried out.
      assert.deepEqual(await c.next(3000), { TYPE: 'RESULT', RESULT: [1] });
      assert.deepEqual(titles(tab.received), ['next']);
      assert.deepEqual((await c.request('{"TYPE":"MESSAGE","ID":1,"DATA":{"TITLE":"later"}}')).answer, { TYPE: 'RESULT', RESULT: [1] });
    } finally {
      c.destroy();
      // The hung send never finishes: close() cuts its connection after its grace.
      await within(legacy.close(), 5000, 'close()');
      held.open();
      await broker.close();
      await held.store.close();
    }
  });
});
