/**
 * A scoped IPv6 address (`::1%lo`, `fe80::1%eth0`) is a valid `host` for node
 * to listen on, but a URL has no zone: the default Origin allowlist, built as
 * a URL from `host`, refused every start with `"::1%lo" is not an IP address
 * or host name`. The allowlist is built from the address without its zone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import { noIPv6 } from './helpers/ipv6.js';

describe('host with an IPv6 zone', { skip: noIPv6 }, () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ host: '::1%lo', legacyEnabled: false });
  });
  after(() => s?.close());

  test('starts, and a page of http://[::1]:PORT is admitted by the default origins', async () => {
    assert.match(s.url, /^http:\/\/\[::1\]:\d+$/);
    const tab = await s.tab('admin', 7, { origin: s.url });
    await tab.close();
    const refused = await s.tab('admin', 7, { origin: 'https://evil.example' }).then(() => 'admitted', (e: Error) => e.message);
    assert.match(refused, /403/);
  });
});
