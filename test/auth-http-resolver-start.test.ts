/**
 * The http resolver loads node's fetch when it is made, at start-up, not at
 * the first look-up: node loads fetch's module (undici) at its first use,
 * and the first look-up after a start paid for it inside its own timeout
 * (src/server/auth/http-resolver.ts, loadFetch). Checked in a fresh child
 * process, where nothing else has loaded the module yet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundled } from './helpers/bundle.js';
import { runModule } from './helpers/node-child.js';

const CHILD = `
const { HttpResolver } = await import(process.env.RESOLVER_MODULE);
const loaded = () => process.moduleLoadList.includes('NativeModule internal/deps/undici/undici');
const before = loaded();
new HttpResolver({ url: 'http://127.0.0.1:9/herald/session', timeoutMs: 1000, headers: [] });
console.log(JSON.stringify({ before, after: loaded() }));
`;

test('making an http resolver loads the module node\'s fetch runs on, which a fresh process has not loaded', async () => {
  const out = await runModule(CHILD, { env: { RESOLVER_MODULE: bundled('src/server/auth/http-resolver.ts') }, tsx: false });
  assert.deepEqual(JSON.parse(out), { before: false, after: true });
});
