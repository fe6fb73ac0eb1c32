/**
 * The resolver cache's rules, with an in-memory credential resolver (the
 * seam's own implementation for tests) and a controllable clock; what an
 * entry costs on the heap, over the http resolver and a real panel. The one
 * query per burst against real databases is in auth-sql-*.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { PrincipalKind } from '../src/protocol/principal.js';
import { CachedResolver } from '../src/server/auth/cached-resolver.js';
import { HttpResolver } from '../src/server/auth/http-resolver.js';
import { parseCookies, type CredentialResolver, type Handshake, type Refusal, type Resolution } from '../src/server/auth/session-resolver.js';
import { until } from './helpers/ws-client.js';

/** Sessions in a Map; every look-up is counted; `gate` holds answers back to make look-ups concurrent. */
class MemorySessions implements CredentialResolver {
  readonly name = 'memory';
  readonly sessions = new Map<string, number>();
  down = false;
  lookups = 0;
  gate: Promise<void> = Promise.resolve();

  credentialOf(h: Handshake): string | Refusal {
    return h.cookies.get('sid') ?? { outcome: 'refused', reason: 'no session id' };
  }
  resolve(h: Handshake): Promise<Resolution> {
    const c = this.credentialOf(h);
    return typeof c === 'string' ? this.recheck(h.kind, c) : Promise.resolve(c);
  }
  async recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    this.lookups++;
    await this.gate;
    if (this.down) return { outcome: 'unavailable', reason: 'down' };
    const id = this.sessions.get(credential);
    return id === undefined ? { outcome: 'refused', reason: 'session not found' } : { outcome: 'admitted', principal: { kind, id }, credential };
  }
  async close(): Promise<void> {}
}

const hs = (sid: string, kind: PrincipalKind = 'admin'): Handshake => ({
  kind, headers: {}, cookies: parseCookies(`sid=${sid}`), query: new URLSearchParams(), remoteAddress: undefined,
});

function setup(positiveMs = 1000, negativeMs = 100, maxEntries = 1000) {
  let now = 0;
  const inner = new MemorySessions();
  const cache = new CachedResolver(inner, { positiveMs, negativeMs, maxEntries, now: () => now });
  return { inner, cache, advance: (ms: number) => (now += ms) };
}

describe('CachedResolver', () => {
  test('concurrent look-ups of one credential share one query', async () => {
    const { inner, cache } = setup();
    inner.sessions.set('s1', 1);
    let open!: () => void;
    inner.gate = new Promise((r) => (open = r));
    const all = Promise.all(Array.from({ length: 100 }, () => cache.resolve(hs('s1'))));
    open();
    const results = await all;
    assert.equal(inner.lookups, 1);
    assert.ok(results.every((r) => r.outcome === 'admitted' && r.principal.id === 1));
    assert.equal(cache.stats().shared, 99);
  });

  test('admissions are reused for positiveMs, refusals for the shorter negativeMs', async () => {
    const { inner, cache, advance } = setup(1000, 100);
    inner.sessions.set('good', 5);
    await cache.resolve(hs('good'));
    await cache.resolve(hs('bad'));
    advance(99);
    await cache.resolve(hs('good'));
    await cache.resolve(hs('bad'));
    assert.equal(inner.lookups, 2);
    advance(2); // 101 ms: the refusal has expired, the admission has not
    inner.sessions.set('bad', 6); // the person has just logged in
    assert.equal((await cache.resolve(hs('bad'))).outcome, 'admitted');
    await cache.resolve(hs('good'));
    assert.equal(inner.lookups, 3);
    advance(1000);
    await cache.resolve(hs('good'));
    assert.equal(inner.lookups, 4);
  });

  test('the same credential on the other endpoint is a separate entry', async () => {
    const { inner, cache } = setup();
    inner.sessions.set('s', 1);
    await cache.resolve(hs('s', 'admin'));
    const asUser = await cache.resolve(hs('s', 'user'));
    assert.equal(inner.lookups, 2);
    assert.equal(asUser.outcome === 'admitted' && asUser.principal.kind, 'user');
  });

  test('"unavailable" is never cached and does not wipe what was known', async () => {
    const { inner, cache, advance } = setup(1000, 100);
    inner.sessions.set('s', 1);
    await cache.resolve(hs('s'));
    inner.down = true;
    assert.equal((await cache.recheck('admin', 's')).outcome, 'unavailable');
    assert.equal((await cache.resolve(hs('s'))).outcome, 'admitted', 'still cached');
    advance(1001);
    assert.equal((await cache.resolve(hs('other'))).outcome, 'unavailable');
    assert.equal((await cache.resolve(hs('other'))).outcome, 'unavailable');
    assert.equal(inner.lookups, 4);
  });

  test('re-checks skip the cache and refresh it; a refusal replaces a cached admission', async () => {
    const { inner, cache } = setup();
    inner.sessions.set('s', 1);
    await cache.resolve(hs('s'));
    inner.sessions.delete('s');
    assert.equal((await cache.resolve(hs('s'))).outcome, 'admitted', 'from the cache');
    assert.equal((await cache.recheck('admin', 's')).outcome, 'refused');
    assert.equal((await cache.resolve(hs('s'))).outcome, 'refused', 'the re-check refreshed the cache');
  });

  test('a handshake without a credential is refused without a look-up; a throwing resolver is "unavailable"', async () => {
    const { inner, cache } = setup();
    const none: Handshake = { kind: 'admin', headers: {}, cookies: new Map(), query: new URLSearchParams(), remoteAddress: undefined };
    assert.equal((await cache.resolve(none)).outcome, 'refused');
    assert.equal(inner.lookups, 0);
    inner.recheck = async () => {
      throw new Error('boom');
    };
    assert.equal((await cache.resolve(hs('x'))).outcome, 'unavailable');
  });

  test('holds at most maxEntries, forgetting the oldest first', async () => {
    const { inner, cache } = setup(10_000, 10_000, 3);
    for (const s of ['a', 'b', 'c', 'd']) {
      inner.sessions.set(s, 1);
      await cache.resolve(hs(s));
    }
    assert.equal(cache.stats().entries, 3);
    await cache.resolve(hs('a'));
    assert.equal(inner.lookups, 5, '"a" was forgotten');
  });

  test('admissions and refusals are forgotten in one age order when full', async () => {
    const { inner, cache } = setup(10_000, 10_000, 3);
    inner.sessions.set('a', 1);
    inner.sessions.set('b', 2);
    for (const s of ['x', 'a', 'y', 'b']) await cache.resolve(hs(s)); // x and y are refused
    assert.equal(cache.stats().entries, 3);
    for (const s of ['a', 'y', 'b']) await cache.resolve(hs(s));
    assert.equal(inner.lookups, 4, 'a, y and b are still cached');
    await cache.resolve(hs('x'));
    assert.equal(inner.lookups, 5, 'the refusal of x, the oldest, was forgotten');
  });

  test('expired answers are dropped though their credentials never come back, refusals after negativeMs even behind a live admission', async () => {
    const { inner, cache, advance } = setup(1000, 100);
    inner.sessions.set('good', 1);
    await cache.resolve(hs('good')); // stored first: a sweep that stopped at it would keep every refusal after it
    for (let i = 0; i < 500; i++) await cache.resolve(hs(`stranger-${i}`));
    assert.equal(cache.stats().entries, 501);
    advance(101);
    inner.sessions.set('later', 2);
    await cache.resolve(hs('later')); // any answer stored later sweeps; no stranger looked up again
    assert.equal(cache.stats().entries, 2, 'the refusals are gone, both admissions stay');
    advance(1000);
    await cache.resolve(hs('stranger-again'));
    assert.equal(cache.stats().entries, 1, 'the admissions are gone too');
    assert.equal(inner.lookups, 503);
  });

  test('with no traffic at all, expired answers still go', async () => {
    const inner = new MemorySessions();
    const cache = new CachedResolver(inner, { positiveMs: 50, negativeMs: 20, maxEntries: 1000 });
    try {
      inner.sessions.set('good', 1);
      await cache.resolve(hs('good'));
      for (let i = 0; i < 200; i++) await cache.resolve(hs(`stranger-${i}`));
      assert.ok(cache.stats().entries > 0);
      await until(() => cache.stats().entries === 0, 2000, 'the expired entries to be dropped');
    } finally {
      await cache.close();
    }
  });

  test('a long credential is cached too, and an admission from the cache still carries the credential (the re-check needs it)', async () => {
    const { inner, cache } = setup();
    const long = 'L'.repeat(5000);
    inner.sessions.set(long, 9);
    await cache.resolve(hs(long));
    const hit = await cache.resolve(hs(long));
    assert.equal(inner.lookups, 1);
    assert.equal(hit.outcome === 'admitted' && hit.credential, long);
    assert.equal((await cache.resolve(hs(`${long}x`))).outcome, 'refused', 'another long credential is another entry');
    assert.equal(inner.lookups, 2);
  });

  test('an answer expires on the monotonic clock, whatever the wall clock does (a step back stretched it by the step)', async () => {
    let mono = 0;
    let wall = 1_000_000;
    const inner = new MemorySessions();
    inner.sessions.set('s1', 1);
    const cache = new CachedResolver(inner, { positiveMs: 1000, negativeMs: 0, maxEntries: 10, now: () => mono, wallNow: () => wall });
    assert.equal((await cache.resolve(hs('s1'))).outcome, 'admitted');
    inner.sessions.delete('s1');
    wall -= 3_600_000; // the wall clock steps an hour back
    mono += 1000;
    assert.equal((await cache.resolve(hs('s1'))).outcome, 'refused', 'the admission expired after positiveMs');
  });

  test('never trusts an admission past its expiresAt (tokens)', async () => {
    let now = 0;
    let lookups = 0;
    const expiring: CredentialResolver = {
      name: 'expiring',
      credentialOf: (h) => h.cookies.get('sid') ?? { outcome: 'refused', reason: 'none' },
      resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
      recheck: async (kind, credential) => {
        lookups++;
        return { outcome: 'admitted', principal: { kind, id: 1 }, credential, expiresAt: 50 };
      },
      close: async () => {},
    };
    const cache = new CachedResolver(expiring, { positiveMs: 10_000, negativeMs: 0, maxEntries: 10, now: () => now, wallNow: () => now });
    await cache.resolve(hs('t'));
    now = 49;
    await cache.resolve(hs('t'));
    assert.equal(lookups, 1);
    now = 51;
    await cache.resolve(hs('t'));
    assert.equal(lookups, 2);
  });
});

describe('CachedResolver over the http resolver: what an entry costs', () => {
  // A full collection before each reading of the heap; node:test starts no child with --expose-gc.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  let panel: Server;
  let url: string;

  before(async () => {
    // The panel admits its session cookie whatever else the Cookie header holds, and refuses anything else.
    panel = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (parseCookies(req.headers.cookie).get('panel_session') === 'good') res.writeHead(200, { 'content-type': 'application/json' }).end('{"kind":"admin","id":7}');
        else res.writeHead(401).end();
      });
    });
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    url = `http://127.0.0.1:${(panel.address() as AddressInfo).port}/herald/session`;
  });
  after(() => {
    panel.closeAllConnections();
    panel.close();
  });

  /**
   * Heap bytes still held per cached answer after `n` handshakes, each with
   * its own Cookie header carrying `junk` characters besides the session
   * cookie (`admitted`) or without one (refused, as a stranger's).
   */
  async function retainedPerEntry(junk: number, n: number, admitted: boolean): Promise<number> {
    const cache = new CachedResolver(new HttpResolver({ url, timeoutMs: 10_000, headers: [] }), {
      positiveMs: 60_000, negativeMs: 60_000, maxEntries: 100_000, now: () => 0, // nothing expires while measured
    });
    const padding = 'j'.repeat(junk);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    for (let i = 0; i < n; i += 25) {
      await Promise.all(Array.from({ length: 25 }, (_, j) => {
        const cookie = `${admitted ? 'panel_session=good; ' : ''}junk=${i + j}-${padding}`;
        const handshake: Handshake = { kind: 'admin', headers: { cookie }, cookies: parseCookies(cookie), query: new URLSearchParams(), remoteAddress: undefined };
        return cache.resolve(handshake).then((r) => assert.equal(r.outcome, admitted ? 'admitted' : 'refused'));
      }));
    }
    gc();
    const retained = process.memoryUsage().heapUsed - heapBefore;
    assert.equal(cache.stats().entries, n);
    await cache.close();
    return retained / n;
  }

  test("an entry's size does not grow with the credential's: refusals of strangers' large cookies, and admissions padded with junk cookies", async () => {
    const LONG = 12 * 1024; // node's headers take 16 KB in all
    for (const admitted of [false, true]) {
      // The first rounds warm up the code paths and the sockets; their garbage is not the cache's.
      await retainedPerEntry(16, 100, admitted);
      await retainedPerEntry(LONG, 100, admitted);
      const short = await retainedPerEntry(16, 300, admitted);
      const long = await retainedPerEntry(LONG, 300, admitted);
      // Keeping the credential costs 9-12 KB an entry; the heap's own noise (fetch's garbage, 2-3 KB a
      // request, mostly the same for both) moved the difference by under 2 KB: half the signal is the line.
      assert.ok(long - short < LONG / 2, `${admitted ? 'admissions' : 'refusals'}: ${Math.round(short)} B an entry with a short credential, ${Math.round(long)} B with a ${LONG} B one`);
    }
  });
});
