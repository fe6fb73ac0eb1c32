// Herald itself, the built server from dist/, configured by HERALD_* env like
// `herald start`, plus the benchmark's IPC (memory after GC, token minting
// done before the measured phases so that it costs nothing inside them).
import { loadOptions } from '../../dist/server/options.js';
import { createHerald } from '../../dist/server/herald.js';
import { mintToken } from '../../dist/server/auth/token-resolver.js';
import { serveServerIpc } from './common.mjs';

const options = loadOptions({
  env: process.env,
  overrides: { host: '127.0.0.1', port: 0, legacyEnabled: false, demo: false, logLevel: process.env.HERALD_LOG_LEVEL ?? 'warn' },
});
const herald = await createHerald(options);
await herald.listen();

serveServerIpc({
  /** Browser tokens for admins `ids` (what the panel would hand each tab). */
  async tokens({ ids, ttlMs = 3_600_000 }) {
    const out = [];
    for (const id of ids) out.push(await mintToken(options.secret, { kind: 'admin', id }, ttlMs));
    return out;
  },
});

let closing = false;
process.on('SIGTERM', async () => {
  if (closing) return;
  closing = true;
  const timer = setTimeout(() => process.exit(0), 2000);
  try { await herald.close('benchmark over'); } catch { /* exiting anyway */ }
  clearTimeout(timer);
  process.exit(0);
});
// The store actually built (the SQLite store may not be wired yet).
const storeClass = herald.store?.constructor?.name ?? '?';
process.send({ event: 'ready', http: herald.urls.http, ws: herald.urls.ws, apiToken: options.apiToken, store: options.store, storeClass });
