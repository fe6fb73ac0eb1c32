/**
 * Loopback is an address, not a spelling: ::1, 0:0:0:0:0:0:0:1 and the
 * IPv4-mapped ::ffff:127.0.0.1 (which the URL parser, and so a browser's Host
 * header, writes ::ffff:7f00:1) stay on this machine as 127.0.0.1 does. The
 * legacy door's no-token rule and the demo's loopback-Host check both ask
 * isLoopback, which knew only the spellings `::1`, `[::1]` and 127.x.x.x.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { isLoopback, loadOptions } from '../src/server/options.js';
import { noIPv6 } from './helpers/ipv6.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** GET `path` from [::1]:`port` with the Host header of our choosing (fetch will not send one). */
function withHost(port: string, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '::1', port, path, setHost: false, headers: { host } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('loopback is an address, not a spelling', () => {
  test('::1 in any spelling and IPv4-mapped 127.x count as loopback; others do not', () => {
    for (const host of ['::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '[::ffff:7f00:1]', '127.0.0.1', '127.5.6.7', 'localhost', 'LocalHost']) {
      assert.equal(isLoopback(host), true, host);
    }
    for (const host of ['::', '0.0.0.0', '::ffff:192.0.2.1', '192.0.2.1', '127.0.0.1.example', 'localhost.example', '::2', '', '[::1', '127.999.0.1']) {
      assert.equal(isLoopback(host), false, host);
    }
  });

  test('legacyHost ::ffff:127.0.0.1 needs no legacyToken, as 127.0.0.1 does not; a mapped public address still does', () => {
    // Before: option "legacyHost" is ::ffff:127.0.0.1 (not loopback) but "legacyToken" is empty.
    assert.equal(loadOptions({ env: {}, overrides: { legacyHost: '::ffff:127.0.0.1' } }).legacyHost, '::ffff:127.0.0.1');
    assert.equal(loadOptions({ env: {}, overrides: { legacyHost: '0:0:0:0:0:0:0:1' } }).legacyHost, '0:0:0:0:0:0:0:1');
    assert.throws(() => loadOptions({ env: {}, overrides: { legacyHost: '::ffff:192.0.2.1' } }), /not loopback/);
  });
});

describe('the demo on a ::1 listener', { skip: noIPv6 }, () => {
  let server: TestServer;
  let port: string;
  before(async () => {
    server = await startHerald({ host: '::1', legacyEnabled: false, demo: 'auto' });
    port = new URL(server.url).port;
  });
  after(() => server?.close());

  test('is on by default (auto), and answers a loopback Host in every spelling', async () => {
    for (const host of [`[::1]:${port}`, `[::ffff:7f00:1]:${port}`, `[0:0:0:0:0:0:0:1]:${port}`, `127.0.0.1:${port}`, `localhost:${port}`]) {
      assert.equal(await withHost(port, '/demo', host), 200, host);
    }
    assert.equal(await withHost(port, '/herald.js', `[::1]:${port}`), 200);
  });

  test('still refuses a name that is not loopback (DNS rebinding)', async () => {
    for (const host of [`evil.example:${port}`, `[::ffff:c000:201]:${port}`]) {
      assert.equal(await withHost(port, '/demo', host), 403, host);
    }
  });
});
