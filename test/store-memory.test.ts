import { MemoryStore } from '../src/server/store/memory-store.js';
import { storeContract } from './store-contract.js';

storeContract('memory', async (limits) => {
  const store = new MemoryStore(limits);
  return { store, destroy: () => store.close() };
}, { durable: false });
