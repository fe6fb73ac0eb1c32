/**
 * A real memory store whose first replay read (`readAfter`) of one stream
 * waits until the test releases it, and then reads: a tab's replay is in
 * flight for as long as the test needs, while what is sent to the tab
 * meanwhile is appended and held for it (its replay has not ended).
 */
import { MemoryStore } from '../../src/server/store/memory-store.js';
import type { MessageStore, ReadResult } from '../../src/server/store/message-store.js';

export interface HeldReadStore {
  store: MessageStore;
  /** Resolves once the read of the stream reached the store and waits. */
  reached: Promise<void>;
  /** Lets it read. */
  release(): void;
}

export function heldReadStore(stream: string, maxPerStream = 1000): HeldReadStore {
  const inner = new MemoryStore({ maxPerStream });
  let arrive!: () => void;
  const reached = new Promise<void>((resolve) => { arrive = resolve; });
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let held = false;
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'readAfter') {
        return async (s: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> => {
          if (s === stream && !held) {
            held = true;
            arrive();
            await gate;
          }
          return target.readAfter(s, afterSeq, limit, now);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store, reached, release };
}
