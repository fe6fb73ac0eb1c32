/**
 * A durable store under test that `reopen` closes and opens again on the
 * same file, as a restart would, and `destroy` closes and removes: the
 * shape the store tests share (test/store-contract.ts, StoreUnderTest).
 */
import type { MessageStore } from '../../src/server/store/message-store.js';

export interface ReopenableStore<S extends MessageStore> {
  /** The store open now: a new one after each `reopen`. */
  readonly store: S;
  reopen(): Promise<S>;
  destroy(): Promise<void>;
}

/** `open` makes the store on its file; `remove` deletes what it wrote, after the store is closed. */
export function reopenable<S extends MessageStore>(open: () => S, remove: () => void): ReopenableStore<S> {
  let store = open();
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = open();
      return store;
    },
    async destroy() {
      await store.close();
      remove();
    },
  };
}
