/**
 * A Herald core without the network: MemoryStore + LocalBroker + Hub +
 * Notifier, wired as the composition root wires them, and fake tabs that
 * record what they are sent. For the legacy protocol's unit tests.
 */
import pino from 'pino';
import type { Principal } from '../../src/protocol/principal.js';
import { LocalBroker } from '../../src/server/broker/local-broker.js';
import { Hub, type Tab } from '../../src/server/hub.js';
import { Notifier } from '../../src/server/notifier.js';
import { LegacyServer } from '../../src/server/api/legacy-server.js';
import { loadOptions } from '../../src/server/options.js';
import { MemoryStore } from '../../src/server/store/memory-store.js';
import { gatedStore, type GatedStore } from './gated-store.js';
import { within } from './legacy-client.js';

export class FakeTab implements Tab {
  static #next = 0;
  readonly id = `fake-${++FakeTab.#next}`;
  readonly principal: Principal;
  readonly frames: string[] = [];
  closed: { code: number; reason: string } | undefined;

  constructor(principal: Principal) {
    this.principal = principal;
  }

  deliver(frame: string): void {
    this.frames.push(frame);
  }

  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }

  /** The frames as parsed JSON. */
  get received(): unknown[] {
    return this.frames.map((f) => JSON.parse(f) as unknown);
  }
}

export interface Core {
  hub: Hub;
  notifier: Notifier;
  store: MemoryStore;
  /** Opens `n` fake tabs for a person. */
  open(kind: 'admin' | 'user', id: number, n?: number): FakeTab[];
  close(): Promise<void>;
}

export async function createCore(): Promise<Core> {
  const logger = pino({ level: 'silent' });
  const hub = new Hub();
  const broker = new LocalBroker(hub);
  const store = new MemoryStore({ maxPerStream: 1000 });
  // LocalBroker reads presence from the Hub itself: no presence wiring needed.
  await broker.start((e) => {
    if (e.type === 'person') hub.deliverTo(e.to, e.frame, e.origin);
    else if (e.type === 'kind') hub.deliverToKind(e.kind, e.frame, e.origin);
    else hub.disconnect(e.to, e.code, e.reason);
  });
  const notifier = new Notifier({ store, broker, logger, defaultTtlMs: 60_000, maxTtlMs: 600_000 });
  return {
    hub,
    notifier,
    store,
    open(kind, id, n = 1) {
      const tabs: FakeTab[] = [];
      for (let i = 0; i < n; i++) {
        const t = new FakeTab({ kind, id });
        hub.add(t);
        tabs.push(t);
      }
      return tabs;
    },
    async close() {
      await broker.close();
      await store.close();
    },
  };
}

/** A LegacyServer over a gated store and one fake admin tab (id 1), without the rest of Herald. */
export async function legacyOverGate(lateWaitMs?: number): Promise<{ legacy: LegacyServer; port: number; gate: GatedStore; tab: FakeTab; close(): Promise<void> }> {
  const gate = gatedStore();
  const logger = pino({ level: 'silent' });
  const hub = new Hub();
  const broker = new LocalBroker(hub);
  await broker.start((e) => {
    if (e.type === 'person') hub.deliverTo(e.to, e.frame, e.origin);
  });
  const notifier = new Notifier({ store: gate.store, broker, logger, defaultTtlMs: 60_000, maxTtlMs: 600_000 });
  const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier, options: loadOptions({ env: {} }), logger, ...(lateWaitMs === undefined ? {} : { lateWaitMs }) });
  const tab = new FakeTab({ kind: 'admin', id: 1 });
  hub.add(tab);
  const { port } = await legacy.listen();
  return {
    legacy, port, gate, tab,
    async close() {
      gate.open();
      await within(legacy.close(), 5000, 'close()');
      await broker.close();
      await gate.store.close();
    },
  };
}
