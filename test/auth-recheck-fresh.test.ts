/**
 * A re-check round asks afresh. The resolver cache let a re-check share a
 * handshake's look-up of the same session still in flight, which may have
 * reached the panel before the admin logged out: the round took its
 * "admitted", the logged-out tabs stayed open one more sessionRecheckMs, and
 * that late "admitted" went into the cache, so new handshakes with the
 * ended session got in for authCacheMs. Now a re-check always asks, and only
 * the newest look-up of a session counts: it alone writes the cache, and the
 * handshake whose older look-up comes back "admitted" after the round's
 * refusal is refused too (it got in, and stayed until the next round). A
 * refusing round closes every tab of the session open when the refusal
 * comes, also one admitted from the cache while the round was asking.
 *
 * End to end: a real panel (node:http on 127.0.0.1) that reads its session
 * table when a request arrives and can hold a look-up unanswered (a slow
 * panel, as slow as the test says), a real Herald, real `ws` tabs. Rounds
 * are started with the watcher's checkNow(), so "the first round after the
 * logout" is a fact, not a guess about timers. Then the cache's rule alone,
 * over a credential resolver that answers when told to.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrincipalKind } from '../src/protocol/principal.js';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { CachedResolver } from '../src/server/auth/cached-resolver.js';
import { parseCookies, type CredentialResolver, type Handshake, type Resolution } from '../src/server/auth/session-resolver.js';
import { startAuthHerald, within } from './helpers/auth-herald.js';

interface PanelRequest {
  readonly sid: string;
  /** Whether the session was in the panel's table when the request arrived. */
  readonly valid: boolean;
}

/**
 * The panel: `panel_session=<sid>` admits admin `sessions.get(sid)`, decided
 * when the request arrives (as a panel reading its session table would); its
 * answer is sent at once, or, for the next request of a session passed to
 * hold(), when the test calls release().
 */
async function startPanel() {
  const sessions = new Map<string, number>();
  const log: PanelRequest[] = [];
  let holdSid: string | undefined;
  const held: Array<() => void> = [];
  let heldArrived: (() => void) | undefined;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const sid = parseCookies(req.headers.cookie).get('panel_session') ?? '';
      const id = sessions.get(sid);
      log.push({ sid, valid: id !== undefined });
      const answer = (r: ServerResponse) => {
        if (id === undefined) r.writeHead(401).end();
        else r.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id }));
      };
      if (sid !== holdSid) return answer(res);
      holdSid = undefined;
      held.push(() => answer(res));
      heldArrived?.();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/herald/session`,
    sessions,
    log,
    /** Holds the next request of `sid`; resolves once it has arrived. */
    hold(sid: string): Promise<void> {
      holdSid = sid;
      return new Promise((resolve) => (heldArrived = resolve));
    },
    held: () => held.length,
    release(): void {
      for (const send of held.splice(0)) send();
    },
    close(): void {
      this.release();
      server.closeAllConnections();
      server.close();
    },
  };
}

test('the first re-check round after a logout closes its tabs though a handshake of the session is still at the panel, and the cache then refuses the session', async () => {
  const panel = await startPanel();
  const h = await startAuthHerald({
    // The held look-up is answered when the test says, however long a loaded machine takes to get there.
    authResolver: 'http', httpResolverUrl: panel.url, httpResolverTimeoutMs: 120_000,
    authCacheMs: 60_000, authNegativeCacheMs: 60_000,
    // One entry: another session's refusal pushes this one's admission out, as its expiry would.
    authCacheMaxEntries: 1,
    // Rounds run when the test starts them (checkNow), never on their own during it.
    sessionRecheckMs: 3_600_000,
  });
  const cookie = { cookie: 'panel_session=s7' };
  try {
    const watcher = h.herald.watcher;
    assert.ok(watcher);
    panel.sessions.set('s7', 7);
    const tab = await h.open('admin', { headers: cookie });
    await tab.nextOfType('WELCOME');
    assert.equal(await h.status('admin', { headers: { cookie: 'panel_session=stranger' } }), 401);

    // A second tab of s7: its look-up reaches the panel while s7 is valid, and the panel is slow.
    const held = panel.hold('s7');
    const late = h.open('admin', { headers: cookie });
    late.catch(() => undefined); // awaited below; a refusal must fail there, not as an unhandled rejection
    await held;
    // The admin logs out; then a round starts.
    panel.sessions.delete('s7');
    const loggedOutAt = panel.log.length;
    const round = await within(watcher.checkNow(), 10_000, 'the round after the logout (it waits for the handshake\'s look-up it shared)');

    assert.deepEqual(round, { checked: 1, closedTabs: 1, unavailable: 0 });
    assert.deepEqual(panel.log.slice(loggedOutAt), [{ sid: 's7', valid: false }], 'the round asked the panel again');
    assert.equal(panel.held(), 1, 'the handshake\'s look-up is still unanswered: the round did not use it');
    assert.equal((await tab.nextOfType('close')).REASON, CloseReason.SESSION_ENDED);
    assert.deepEqual(await tab.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });

    // The slow "admitted" comes now. Its handshake began before the logout, but Herald has
    // learnt since that the session ended: the newer look-up's refusal is its answer too.
    panel.release();
    await assert.rejects(late, /handshake refused: 401/, 'a stale "admitted" let the tab in after the round\'s refusal');
    // And the cache keeps the refusal of the newer look-up: a new handshake is refused, from the cache.
    const asked = panel.log.length;
    assert.equal(await h.status('admin', { headers: cookie }), 401);
    assert.equal(panel.log.length, asked, 'refused from the cache');
    assert.equal(h.herald.hub.all('admin').length, 0);
  } finally {
    panel.release();
    await h.close();
    panel.close();
  }
});

test('the cache: a re-check does not share a look-up begun before it, later handshakes share the re-check\'s, and an older answer that comes last is not kept', async () => {
  const valid = new Set(['s']);
  /** The look-ups asked, in order; calling one sends its answer. */
  const pending: Array<() => void> = [];
  // Each look-up reads the session table when asked and answers when the test says.
  const inner: CredentialResolver = {
    name: 'held',
    credentialOf: (hs) => hs.cookies.get('sid') ?? { outcome: 'refused', reason: 'none' },
    resolve: () => Promise.resolve({ outcome: 'refused', reason: 'unused' }),
    recheck: (kind: PrincipalKind, credential: string) => {
      const answer: Resolution = valid.has(credential)
        ? { outcome: 'admitted', principal: { kind, id: 1 }, credential }
        : { outcome: 'refused', reason: 'session not found' };
      return new Promise((resolve) => pending.push(() => resolve(answer)));
    },
    close: async () => {},
  };
  // Refusals are not cached: an older admission would have an empty slot to fill.
  const cache = new CachedResolver(inner, { positiveMs: 60_000, negativeMs: 0, maxEntries: 10 });
  const hs: Handshake = { kind: 'admin', headers: {}, cookies: parseCookies('sid=s'), query: new URLSearchParams(), remoteAddress: undefined };
  try {
    const first = cache.resolve(hs);
    valid.delete('s');
    const recheck = cache.recheck('admin', 's');
    const after = cache.resolve(hs);
    assert.equal(pending.length, 2, 'the re-check asked; the handshake after it did not');
    pending[1]!(); // the re-check's (newer) answer first
    assert.equal((await recheck).outcome, 'refused');
    assert.equal((await after).outcome, 'refused', 'shared the re-check\'s look-up');
    pending[0]!(); // then the older one
    assert.equal((await first).outcome, 'refused', 'its caller gets the newer refusal, not its own stale "admitted"');
    const again = cache.resolve(hs);
    assert.equal(pending.length, 3, 'the old admission was not cached: the next handshake asks');
    pending[2]!();
    assert.equal((await again).outcome, 'refused');
    assert.deepEqual(cache.stats(), { hits: 0, shared: 1, lookups: 3, entries: 0 });
  } finally {
    await cache.close();
  }
});

test('a refusing round closes the session\'s tabs open when the refusal comes, also one admitted from the cache while the round was asking', async () => {
  const panel = await startPanel();
  const h = await startAuthHerald({
    authResolver: 'http', httpResolverUrl: panel.url, httpResolverTimeoutMs: 120_000,
    authCacheMs: 60_000, authNegativeCacheMs: 60_000, sessionRecheckMs: 3_600_000,
  });
  const cookie = { cookie: 'panel_session=s7' };
  try {
    const watcher = h.herald.watcher;
    assert.ok(watcher);
    panel.sessions.set('s7', 7);
    const first = await h.open('admin', { headers: cookie });
    await first.nextOfType('WELCOME');
    // The admin logs out; the round's look-up reaches the panel and is held there.
    panel.sessions.delete('s7');
    const held = panel.hold('s7');
    const round = watcher.checkNow();
    await held;
    // Meanwhile a tab of the session is admitted from the cache's older "admitted".
    const asked = panel.log.length;
    const second = await h.open('admin', { headers: cookie });
    await second.nextOfType('WELCOME');
    assert.equal(panel.log.length, asked, 'admitted from the cache');
    // The refusal comes: both tabs are closed by this round, not the second one a whole interval later.
    panel.release();
    assert.deepEqual(await within(round, 10_000, 'the round'), { checked: 1, closedTabs: 2, unavailable: 0 });
    for (const tab of [first, second]) assert.deepEqual(await tab.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
    assert.equal(h.herald.hub.all('admin').length, 0);
  } finally {
    panel.release();
    await h.close();
    panel.close();
  }
});

test('the cache: an older look-up that answers first waits for the newer one, whose definite answer counts; when the newer cannot tell, its own stands', async () => {
  /** The answer each look-up will give, in the order they are asked; calling pending[i] sends the i-th. */
  const answers: Resolution[] = [];
  const pending: Array<() => void> = [];
  const inner: CredentialResolver = {
    name: 'held',
    credentialOf: (hs) => hs.cookies.get('sid') ?? { outcome: 'refused', reason: 'none' },
    resolve: () => Promise.resolve({ outcome: 'refused', reason: 'unused' }),
    recheck: () => {
      const answer = answers[pending.length]!;
      return new Promise((resolve) => pending.push(() => resolve(answer)));
    },
    close: async () => {},
  };
  const cache = new CachedResolver(inner, { positiveMs: 60_000, negativeMs: 60_000, maxEntries: 10 });
  const hs: Handshake = { kind: 'admin', headers: {}, cookies: parseCookies('sid=s'), query: new URLSearchParams(), remoteAddress: undefined };
  const admitted: Resolution = { outcome: 'admitted', principal: { kind: 'admin', id: 1 }, credential: 's' };
  try {
    answers.push(admitted, { outcome: 'refused', reason: 'session not found' });
    let settled = false;
    const first = cache.resolve(hs).finally(() => (settled = true));
    const recheck = cache.recheck('admin', 's');
    pending[0]!(); // the older "admitted" first
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'the older look-up\'s caller waits for the newer one');
    pending[1]!();
    assert.equal((await recheck).outcome, 'refused');
    assert.equal((await first).outcome, 'refused');

    // A new session: the newer look-up meets an outage, so the older answer stands (and is not cached).
    const hs2: Handshake = { ...hs, cookies: parseCookies('sid=t') };
    answers.push({ ...admitted, credential: 't' }, { outcome: 'unavailable', reason: 'down' });
    const older = cache.resolve(hs2);
    const newer = cache.recheck('admin', 't');
    pending[3]!();
    pending[2]!();
    assert.equal((await newer).outcome, 'unavailable');
    assert.deepEqual(await older, { ...admitted, credential: 't' });
  } finally {
    await cache.close();
  }
});
