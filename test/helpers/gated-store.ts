/**
 * A real memory store whose writes wait until the test opens the gate: a send
 * is then in flight at the server (received, not yet answered) for as long as
 * the test needs, to shut the server down or cut the connection under it.
 */
import { MemoryStore } from '../../src/server/store/memory-store.js';
import type { MessageStore } from '../../src/server/store/message-store.js';

export interface GatedStore {
  store: MessageStore;
  /** How many writes (appendMany calls) have reached the store. */
  writes(): number;
  /** Resolves once `n` writes have reached the store. */
  written(n: number): Promise<void>;
  /** Lets every write, held and later, through. */
  open(): void;
}

export function gatedStore(): GatedStore {
  const inner = new MemoryStore({ maxPerStream: 1000 });
  let open!: () => void;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  let writes = 0;
  const waiters: Array<{ n: number; resolve: () => void }> = [];
  const store = new Proxy(inner, {
    get(target, key) {
      if (key === 'appendMany') {
        return async (...args: Parameters<MessageStore['appendMany']>) => {
          writes++;
          for (const w of waiters.filter((x) => x.n <= writes)) w.resolve();
          await gate;
          return target.appendMany(...args);
        };
      }
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return {
    store,
    writes: () => writes,
    written: (n) => (writes >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve }))),
    open,
  };
}
