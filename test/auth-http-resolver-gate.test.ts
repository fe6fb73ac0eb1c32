/**
 * The http resolver's bound on look-ups at the panel at once: a real panel
 * (node:http on 127.0.0.1) that holds each request until the test lets it
 * answer, and counts how many it holds at once. A reconnect storm of many
 * sessions must reach the panel a few at a time, lose none of them, and a
 * queue past its bound must answer at once rather than wait.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { HttpResolver } from '../src/server/auth/http-resolver.js';
import { LookUpGate } from '../src/server/auth/look-up-gate.js';
import type { Handshake } from '../src/server/auth/session-resolver.js';
import { startAuthHerald, within } from './helpers/auth-herald.js';

/** A panel that admits `panel_session=admin-N` as admin N, once the test releases the request. */
class HoldingPanel {
  readonly server: Server;
  #held: Array<() => void> = [];
  #waiters: Array<() => void> = [];
  holding = 0;
  mostHeld = 0;
  received = 0;

  constructor() {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.received++;
        this.mostHeld = Math.max(this.mostHeld, ++this.holding);
        const id = Number(/admin-(\d+)/.exec(req.headers.cookie ?? '')?.[1]);
        this.#held.push(() => answer(res, id));
        res.on('close', () => this.holding--);
        for (const w of this.#waiters.splice(0)) w();
      });
    });
  }

  async listen(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/herald/session`;
  }

  /** Waits until the panel holds `n` requests. */
  async held(n: number): Promise<void> {
    while (this.#held.length < n) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Answers every request held now. */
  releaseAll(): void {
    for (const answerIt of this.#held.splice(0)) answerIt();
  }

  /** Answers every request, now and as they come, until the look-ups given are done. */
  async drain<T>(pending: Promise<T>): Promise<T> {
    let done = false;
    const settled = pending.finally(() => {
      done = true;
    });
    while (!done) {
      this.releaseAll();
      await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 5))]);
    }
    return settled;
  }

  close(): void {
    this.server.closeAllConnections();
    this.server.close();
  }
}

function answer(res: ServerResponse, id: number): void {
  res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id }));
}

function handshake(id: number): Handshake {
  return { kind: 'admin', headers: { cookie: `panel_session=admin-${id}` }, cookies: new Map(), query: new URLSearchParams(), remoteAddress: '127.0.0.1' };
}

describe('LookUpGate', () => {
  test('turns go in the order asked; one that gives up leaves its place to the next', async () => {
    const gate = new LookUpGate(1, 10);
    const never = new AbortController().signal;
    assert.equal(gate.enter(never), true);
    const order: string[] = [];
    const quitter = new AbortController();
    const a = Promise.resolve(gate.enter(never)).then((t) => order.push(`a:${t}`));
    const b = Promise.resolve(gate.enter(quitter.signal)).then((t) => order.push(`b:${t}`));
    const c = Promise.resolve(gate.enter(never)).then((t) => order.push(`c:${t}`));
    assert.equal(gate.waiting, 3);
    quitter.abort();
    await b;
    assert.deepEqual(order, ['b:false']);
    gate.leave();
    await a;
    gate.leave();
    await c;
    assert.deepEqual(order, ['b:false', 'a:true', 'c:true']);
    gate.leave();
    assert.deepEqual({ active: gate.active, waiting: gate.waiting }, { active: 0, waiting: 0 });
  });
});

describe('http resolver: look-ups at the panel at once', () => {
  let panel: HoldingPanel;
  let url: string;

  before(async () => {
    panel = new HoldingPanel();
    url = await panel.listen();
  });
  after(() => panel.close());

  test('twelve sessions at once reach the panel three at a time, and every one is admitted', async () => {
    panel.mostHeld = 0;
    const resolver = new HttpResolver({ url, timeoutMs: 10_000, headers: [], concurrency: 3 });
    const all = Promise.all(Array.from({ length: 12 }, (_, i) => resolver.resolve(handshake(i + 1))));
    await panel.held(3);
    // Give the other nine every chance to go out too: they must not.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(panel.holding, 3);
    assert.deepEqual(resolver.load, { active: 3, waiting: 9 });
    const answers = await panel.drain(all);
    assert.equal(panel.mostHeld, 3);
    assert.deepEqual(answers.map((r) => (r.outcome === 'admitted' ? r.principal.id : r.outcome)), Array.from({ length: 12 }, (_, i) => i + 1));
    assert.deepEqual(resolver.load, { active: 0, waiting: 0 });
  });

  test('past the waiting bound a look-up is unavailable at once, and never reaches the panel', async () => {
    const before = panel.received;
    const resolver = new HttpResolver({ url, timeoutMs: 10_000, headers: [], concurrency: 1, maxWaiting: 2 });
    const admitted = Promise.all([1, 2, 3].map((id) => resolver.resolve(handshake(id))));
    await panel.held(1);
    const t0 = Date.now();
    // "At once": long before the 10 s deadline it would otherwise wait out (with room for a loaded machine).
    const turnedAway = await within(resolver.resolve(handshake(4)), 5000, 'the fourth look-up to be answered');
    assert.deepEqual(turnedAway, { outcome: 'unavailable', reason: 'session service unavailable' });
    assert.ok(Date.now() - t0 < 5000);
    const answers = await panel.drain(admitted);
    assert.deepEqual(answers.map((r) => r.outcome), ['admitted', 'admitted', 'admitted']);
    assert.equal(panel.received - before, 3);
  });

  test('the deadline covers the wait for a turn: a look-up that waited is answered by its own deadline, and the turns come back', async () => {
    const TIMEOUT_MS = 1000;
    const resolver = new HttpResolver({ url, timeoutMs: TIMEOUT_MS, headers: [], concurrency: 1 });
    const settledAt = (p: Promise<unknown>) => p.then(() => Date.now());
    const first = resolver.resolve(handshake(1));
    await panel.held(1);
    const waited = resolver.resolve(handshake(2));
    // The panel never answers: the first runs out of time, and the second
    // waited for its turn nearly as long. Its deadline counts that wait: it
    // is answered about when the first is (both began together), not a
    // whole TIMEOUT_MS after it. (Compared with each other, not with the
    // clock, so a busy machine's slower start does not count.)
    const [firstAt, waitedAt] = await Promise.all([settledAt(first), settledAt(waited)]);
    assert.equal((await first).outcome, 'unavailable');
    assert.equal((await waited).outcome, 'unavailable');
    assert.ok(waitedAt - firstAt < TIMEOUT_MS / 2, `the look-up that waited was answered ${waitedAt - firstAt} ms after the first`);
    assert.deepEqual(resolver.load, { active: 0, waiting: 0 });
    panel.releaseAll(); // the aborted requests' answers go nowhere
    // The turn came back: the next look-up reaches the panel and is admitted.
    assert.equal((await panel.drain(resolver.resolve(handshake(3)))).outcome, 'admitted');
  });

  test('Herald takes httpResolverConcurrency: handshakes of many sessions at once, one look-up at a time, all admitted', async () => {
    panel.mostHeld = 0;
    const h = await startAuthHerald({ authResolver: 'http', httpResolverUrl: url, httpResolverConcurrency: 1, authCacheMs: 0, authNegativeCacheMs: 0 });
    try {
      const statuses = Promise.all([11, 12, 13, 14].map((id) => h.status('admin', { headers: { cookie: `panel_session=admin-${id}` } })));
      assert.deepEqual(await panel.drain(statuses), [101, 101, 101, 101]);
      assert.equal(panel.mostHeld, 1);
    } finally {
      await h.close();
    }
  });
});
