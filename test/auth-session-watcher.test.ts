/**
 * SessionWatcher rules with the real Hub and in-memory tabs: one look-up per
 * distinct session however many tabs share it, refusals and a different
 * person close with 4401 "session ended", "unavailable" closes nothing.
 * The end-to-end versions (real databases, real panel) are in auth-sql-gateway
 * and auth-http-resolver.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Principal, PrincipalKind } from '../src/protocol/principal.js';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { Hub } from '../src/server/hub.js';
import { SLICE_MS, SessionWatcher, type CredentialedTab } from '../src/server/auth/session-watcher.js';
import type { Resolution, SessionResolver } from '../src/server/auth/session-resolver.js';
import { within } from './helpers/auth-herald.js';
import { countTurns } from './helpers/turns.js';

let nextId = 0;
class MemoryTab implements CredentialedTab {
  readonly id = `t${++nextId}`;
  closed: { code: number; reason: string } | undefined;
  #onClose: (() => void) | undefined;
  /** Resolves when the tab is closed. */
  readonly whenClosed = new Promise<void>((r) => (this.#onClose = r));
  constructor(readonly principal: Principal, readonly credential: string | undefined, private readonly hub: Hub) {}
  deliver(): void {}
  close(code: number, reason: string): void {
    this.closed = { code, reason };
    this.hub.remove(this);
    this.#onClose?.();
  }
}

test('one look-up per distinct session; ended sessions close all their tabs; outages close nothing', async () => {
  const hub = new Hub();
  const sessions = new Map<string, number>([['s1', 1], ['s2', 2], ['s3', 3]]);
  let down = false;
  const asked: string[] = [];
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    async recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
      asked.push(credential);
      if (down) return { outcome: 'unavailable', reason: 'down' };
      const id = sessions.get(credential);
      return id === undefined ? { outcome: 'refused', reason: 'gone' } : { outcome: 'admitted', principal: { kind, id }, credential };
    },
    close: async () => {},
  };
  const tab = (id: number, credential: string | undefined) => {
    const t = new MemoryTab({ kind: 'admin', id }, credential, hub);
    hub.add(t);
    return t;
  };
  const a = [tab(1, 's1'), tab(1, 's1'), tab(1, 's1')];
  const b = tab(2, 's2');
  const c = tab(3, 's3');
  const noCredential = tab(4, undefined);
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 60_000 });

  let round = await watcher.checkNow();
  assert.deepEqual(round, { checked: 3, closedTabs: 0, unavailable: 0 });
  assert.deepEqual(asked.sort(), ['s1', 's2', 's3']);

  sessions.delete('s1');
  sessions.set('s3', 99); // the panel handed s3 to someone else
  round = await watcher.checkNow();
  assert.deepEqual(round, { checked: 3, closedTabs: 4, unavailable: 0 });
  for (const t of [...a, c]) assert.deepEqual(t.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
  assert.equal(b.closed, undefined);
  assert.equal(noCredential.closed, undefined);

  down = true;
  sessions.delete('s2');
  round = await watcher.checkNow();
  assert.deepEqual(round, { checked: 1, closedTabs: 0, unavailable: 1 });
  assert.equal(b.closed, undefined);
  assert.equal(hub.size, 2);
});

test('started, it re-checks on its own every interval; stop() ends the rounds', async () => {
  const hub = new Hub();
  const t = new MemoryTab({ kind: 'user', id: 5 }, 'x', hub);
  hub.add(t);
  let rounds = 0;
  const started = Date.now();
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    recheck: async () => {
      rounds++;
      return rounds < 3 ? { outcome: 'admitted', principal: { kind: 'user', id: 5 }, credential: 'x' } : { outcome: 'refused', reason: 'gone' };
    },
    close: async () => {},
  };
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 50 });
  watcher.start();
  await within(t.whenClosed, 3000, 'the third round to close the tab');
  const closedAt = Date.now() - started;
  await watcher.stop();
  assert.ok(t.closed, 'closed by the third round');
  assert.equal(rounds, 3);
  assert.ok(closedAt >= 150, `closed after ${closedAt} ms`);
  assert.throws(() => new SessionWatcher({ tabs: hub, resolver, intervalMs: 0 }), TypeError);
});

test('a round over a resolver that answers at once gives the event loop turns, not one long stall', async () => {
  const hub = new Hub();
  // 2,000 tabs, 400 distinct sessions, each look-up 0.25 ms of CPU answered
  // without waiting for anything (as signed tokens are): about 100 ms of work.
  for (let i = 0; i < 2000; i++) hub.add(new MemoryTab({ kind: i % 2 ? 'admin' : 'user', id: i % 400 }, `s${i % 400}`, hub));
  let asked = 0;
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    recheck: async (kind, credential) => {
      asked++;
      const until = performance.now() + 0.25;
      while (performance.now() < until) { /* busy, as a synchronous check is */ }
      return { outcome: 'admitted', principal: { kind, id: Number(credential.slice(1)) }, credential };
    },
    close: async () => {},
  };
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 60_000 });
  const turns = countTurns();
  await new Promise((resolve) => setImmediate(resolve));
  const before = turns.turns;
  const round = await watcher.checkNow();
  const during = turns.stop() - before;
  assert.equal(round.checked, 400, 'one look-up per kind and session');
  assert.equal(asked, 400);
  assert.equal(round.closedTabs, 0);
  // A turn at least every SLICE_MS of work: 100 ms of it is many turns; one long stall would be none.
  assert.ok(during >= 100 / SLICE_MS / 2, `${during} turns of the event loop during the round`);
});
