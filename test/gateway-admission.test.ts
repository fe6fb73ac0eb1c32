/**
 * The handshake admit() hands the resolvers, on real V8 and a real upgrade
 * request. It must be an ordinary object in V8's fast mode: an object
 * literal with a getter closing over the request was built in dictionary
 * mode, and each connect's request then outlived young collections and was
 * promoted (docs/bench-history.md, tenth round).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runModule } from './helpers/node-child.js';

const MODULE = fileURLToPath(new URL('../src/server/gateway/admission.ts', import.meta.url));

// A real HTTP server and a real upgrade request from a client on 127.0.0.1;
// the resolver keeps what it was handed and refuses.
const CHILD = `
import { createServer, request } from 'node:http';
const { admit } = await import(process.env.ADMISSION_MODULE);
const seen = [];
const deps = {
  origins: { check: () => 'allowed' },
  resolver: { name: 'test', resolve(h) { seen.push(h); return { outcome: 'refused', reason: 'test' }; } },
};
const server = createServer();
server.on('upgrade', (req, socket) => {
  const admission = admit(deps, 'admin', req);
  const h = seen.at(-1);
  console.log(JSON.stringify({
    admitted: admission.admitted, fast: %HasFastProperties(h), kind: h.kind, token: h.query.get('token'),
    cookie: h.cookies.get('herald_token'), host: h.headers.host, remoteAddress: h.remoteAddress,
  }));
  socket.destroy();
  server.close();
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const r = request({ host: '127.0.0.1', port, path: '/ws/admin?token=abc', headers: {
    Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', Cookie: 'herald_token=def',
  } });
  r.on('error', () => {});
  r.end();
});
`;

test('admit hands the resolvers a fast-mode handshake with the request\'s query, cookies, headers and peer address', async () => {
  const out = await runModule(CHILD, { env: { ADMISSION_MODULE: MODULE }, nodeFlags: ['--allow-natives-syntax'] });
  const { host, ...seen } = JSON.parse(out) as Record<string, unknown>;
  assert.match(String(host), /^127\.0\.0\.1:\d+$/);
  assert.deepEqual(seen, { admitted: false, fast: true, kind: 'admin', token: 'abc', cookie: 'def', remoteAddress: '127.0.0.1' });
});
