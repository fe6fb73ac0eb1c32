/**
 * Origins on the IPv6 loopback: the default list admits a page on
 * https://[::1] as it does https://127.0.0.1 (it had http://[::1]:* only), and
 * an allowedOrigins entry with brackets and a port admits that page only,
 * checked with a real `ws` client at ws://[::1].
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OriginPolicy, defaultAllowedOrigins } from '../src/server/auth/origin-policy.js';
import { noIPv6 } from './helpers/ipv6.js';
import { startHerald } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';

describe('origins with [::1]', () => {
  test('the default origins admit a page on https://[::1] as on https://127.0.0.1', () => {
    const policy = new OriginPolicy({ allowed: defaultAllowedOrigins('http://127.0.0.1:19443'), allowMissing: false });
    for (const origin of ['https://[::1]:8443', 'https://[::1]', 'http://[::1]:3000', 'https://127.0.0.1:8443']) {
      assert.equal(policy.check(origin), 'allowed', origin);
    }
    assert.equal(policy.check('https://[::2]:8443'), 'forbidden');
  });

  test('an entry may spell an IPv6 literal any way: it matches the Origin a browser sends', () => {
    for (const [entry, origin] of [
      ['http://[::ffff:127.0.0.1]:8080', 'http://[::ffff:7f00:1]:8080'],
      ['http://[::FFFF:7F00:1]:8080', 'http://[::ffff:7f00:1]:8080'],
      ['http://[0:0:0:0:0:0:0:1]:8080', 'http://[::1]:8080'],
      ['https://[::1]:443', 'https://[::1]'],
      ['http://[::1]:*', 'http://[::1]:3000'],
    ] as const) {
      const policy = new OriginPolicy({ allowed: [entry], allowMissing: false });
      assert.equal(policy.check(origin), 'allowed', `${entry} admits ${origin}`);
      assert.equal(policy.check('http://[::2]:8080'), 'forbidden', entry);
    }
    assert.throws(() => new OriginPolicy({ allowed: ['http://[::1:8080'], allowMissing: false }), /not an origin/);
  });

  test('a tab on a ::1 listener from https://[::1]:8443 is admitted by the default list', { skip: noIPv6 }, async () => {
    const s = await startHerald({ host: '::1', legacyEnabled: false });
    try {
      const token = await s.token('admin', 1);
      const tab = await TestTab.open(`${s.wsUrl}/ws/admin`, { origin: 'https://[::1]:8443', query: { token } });
      await tab.nextOfType('WELCOME');
      tab.close();
    } finally {
      await s.close();
    }
  });

  test('allowedOrigins with brackets and a port admits that page only', { skip: noIPv6 }, async () => {
    const s = await startHerald({ host: '::1', legacyEnabled: false, allowedOrigins: ['http://[::1]:8080'] });
    try {
      const token = await s.token('admin', 1);
      const ok = await TestTab.open(`${s.wsUrl}/ws/admin`, { origin: 'http://[::1]:8080', query: { token } });
      await ok.nextOfType('WELCOME');
      ok.close();
      const refused = await TestTab.status(`${s.wsUrl}/ws/admin`, { origin: 'http://[::1]:8081', query: { token } });
      assert.equal(refused.status, 403);
    } finally {
      await s.close();
    }
  });
});
