/**
 * SessionWatcher rules with the real Hub and in-memory tabs: one look-up per
 * distinct session however many tabs share it, refusals and a different
 * person close with 4401 "session ended", "unavailable" closes nothing.
 * The end-to-end versions (real databases, real panel) are in auth-sql-gateway
 * and auth-http-resolver.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpResolver } from '../src/server/auth/http-resolver.js';
import { createSqlPool } from '../src/server/auth/sql-pool.js';
import { SqlResolver, abillsLookups } from '../src/server/auth/sql-resolver.js';
import type { Principal, PrincipalKind } from '../src/protocol/principal.js';
import { CloseCode, CloseReason } from '../src/protocol/close-codes.js';
import { Hub } from '../src/server/hub.js';
import { SLICE_MS, SessionWatcher, type CredentialedTab } from '../src/server/auth/session-watcher.js';
import type { Resolution, SessionResolver } from '../src/server/auth/session-resolver.js';
import { within } from './helpers/auth-herald.js';
import { countTurns } from './helpers/turns.js';
import { capturedLog } from './helpers/captured-log.js';

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

test('a refusal closes every tab holding the credential when it comes, also one opened while the round was asking', async () => {
  const hub = new Hub();
  const listed = new MemoryTab({ kind: 'admin', id: 1 }, 's1', hub);
  const other = new MemoryTab({ kind: 'admin', id: 2 }, 's2', hub);
  const asUser = new MemoryTab({ kind: 'user', id: 1 }, 's1', hub);
  for (const t of [listed, other, asUser]) hub.add(t);
  const answers = new Map<string, (r: Resolution) => void>();
  let askedAll!: () => void;
  const asked = new Promise<void>((r) => (askedAll = r));
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    recheck: (kind, credential) =>
      new Promise<Resolution>((r) => {
        answers.set(`${kind}:${credential}`, r);
        if (answers.size === 3) askedAll();
      }),
    close: async () => {},
  };
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 60_000 });
  const round = watcher.checkNow();
  await asked;
  // Admitted while the round asks (from a cached answer): not in the round's list.
  const late = new MemoryTab({ kind: 'admin', id: 1 }, 's1', hub);
  hub.add(late);
  answers.get('admin:s1')!({ outcome: 'refused', reason: 'session ended' });
  answers.get('admin:s2')!({ outcome: 'admitted', principal: { kind: 'admin', id: 2 }, credential: 's2' });
  answers.get('user:s1')!({ outcome: 'admitted', principal: { kind: 'user', id: 1 }, credential: 's1' });
  assert.deepEqual(await round, { checked: 3, closedTabs: 2, unavailable: 0 });
  for (const t of [listed, late]) assert.deepEqual(t.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
  assert.equal(other.closed, undefined);
  assert.equal(asUser.closed, undefined, 'the same credential on the other endpoint is another session');
});

test('a session now someone else\'s closes the old person\'s tabs when the answer comes, also one opened while the round was asking', async () => {
  const hub = new Hub();
  const listed = new MemoryTab({ kind: 'admin', id: 1 }, 's1', hub);
  hub.add(listed);
  let answer!: (r: Resolution) => void;
  let askedOnce!: () => void;
  const asked = new Promise<void>((r) => (askedOnce = r));
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    recheck: () =>
      new Promise<Resolution>((r) => {
        answer = r;
        askedOnce();
      }),
    close: async () => {},
  };
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 60_000 });
  const round = watcher.checkNow();
  await asked;
  // Admitted while the round asks, from the cache's answer (admin 1): not in the round's list.
  const late = new MemoryTab({ kind: 'admin', id: 1 }, 's1', hub);
  // Admitted while the round asks as the session's new person: theirs to keep.
  const newPerson = new MemoryTab({ kind: 'admin', id: 2 }, 's1', hub);
  hub.add(late);
  hub.add(newPerson);
  // The panel gave session s1 to admin 2.
  answer({ outcome: 'admitted', principal: { kind: 'admin', id: 2 }, credential: 's1' });
  assert.deepEqual(await round, { checked: 1, closedTabs: 2, unavailable: 0 });
  assert.deepEqual(listed.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED });
  assert.deepEqual(late.closed, { code: CloseCode.UNAUTHORIZED, reason: CloseReason.SESSION_ENDED }, 'the late tab of admin 1 stayed open');
  assert.equal(newPerson.closed, undefined);
});

test('stop() does not wait for a look-up in flight, and its answer, when it comes, closes no tab', async () => {
  const hub = new Hub();
  const t = new MemoryTab({ kind: 'admin', id: 8 }, 's8', hub);
  hub.add(t);
  let answer!: (r: Resolution) => void;
  let asked!: () => void;
  const lookingUp = new Promise<void>((r) => (asked = r));
  const resolver: SessionResolver = {
    name: 'memory',
    resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
    // A panel that stopped answering: the look-up ends when the test says.
    recheck: () => {
      asked();
      return new Promise<Resolution>((r) => (answer = r));
    },
    close: async () => {},
  };
  const watcher = new SessionWatcher({ tabs: hub, resolver, intervalMs: 60_000 });
  const round = watcher.checkNow();
  await lookingUp;
  // Waiting for the look-up held the whole shutdown for up to the resolver's timeout.
  await within(watcher.stop(), 1000, 'stop() with a look-up in flight');
  answer({ outcome: 'refused', reason: 'session ended' });
  await round;
  assert.equal(t.closed, undefined, 'a stopped round closed a tab');
});


/** What a throttled failure log said: lines one by one, and the failures counted in its summaries. */
function failureLines(lines: Array<{ msg: string; [k: string]: unknown }>): { oneByOne: number; counted: number } {
  const oneByOne = lines.filter((l) => l.msg.startsWith('session look-up failed')).length;
  const counted = lines.filter((l) => l.msg.startsWith('session look-ups failed and not logged one by one')).reduce((n, l) => n + (l.failed as number), 0);
  return { oneByOne, counted };
}

test('during an outage, failed re-checks are logged at most 20 a 10 s and then counted in one line, for the http and the sql resolver', async () => {
  const SESSIONS = 200;
  /** One tab for each of SESSIONS sessions, with the credential a resolver made of its handshake. */
  const tabs = (credential: (sid: string) => string): Hub => {
    const hub = new Hub();
    for (let i = 1; i <= SESSIONS; i++) hub.add(new MemoryTab({ kind: 'admin', id: i }, credential(`s${i}`), hub));
    return hub;
  };

  // The panel is down: every look-up is answered 500.
  const panel: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(500).end());
  });
  panel.listen(0, '127.0.0.1');
  await once(panel, 'listening');
  // So is the database: nothing listens at its port.
  const gone = createServer().listen(0, '127.0.0.1');
  await once(gone, 'listening');
  const dbPort = (gone.address() as AddressInfo).port;
  await new Promise((r) => gone.close(r));

  const http = capturedLog('trace');
  const sql = capturedLog('trace');
  const resolvers = [
    {
      log: http,
      // The http resolver's credential is the handshake's forwarded headers.
      tabs: tabs((sid) => JSON.stringify({ cookie: `sid=${sid}` })),
      resolver: new HttpResolver({ url: `http://127.0.0.1:${(panel.address() as AddressInfo).port}/session`, timeoutMs: 5000, headers: [], logger: http.logger }),
    },
    {
      log: sql,
      tabs: tabs((sid) => sid),
      resolver: new SqlResolver({ pool: createSqlPool(`mysql://root@127.0.0.1:${dbPort}/none`, { size: 2, timeoutMs: 5000 }), lookups: abillsLookups('mysql'), logger: sql.logger }),
    },
  ];
  try {
    for (const { log, tabs, resolver } of resolvers) {
      const watcher = new SessionWatcher({ tabs, resolver, intervalMs: 60_000 });
      const started = performance.now();
      for (let round = 0; round < 2; round++) {
        assert.deepEqual(await watcher.checkNow(), { checked: SESSIONS, closedTabs: 0, unavailable: SESSIONS }, resolver.name);
      }
      const windows = Math.ceil((performance.now() - started) / 10_000);
      // close() says what was counted and not yet said.
      await resolver.close();
      const { oneByOne, counted } = failureLines(log.lines());
      // One line per session per round before: 400 here, 1.2 million an hour for 10,000 sessions every 30 s.
      assert.ok(oneByOne >= 1 && oneByOne <= 20 * windows, `${resolver.name}: ${oneByOne} lines one by one in ${windows} windows of 10 s`);
      assert.equal(oneByOne + counted, 2 * SESSIONS, `${resolver.name}: every failure is logged or counted`);
    }
  } finally {
    for (const { resolver } of resolvers) await resolver.close();
    panel.closeAllConnections();
    panel.close();
  }
});
