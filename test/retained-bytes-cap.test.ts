/**
 * maxRetainedBytes: a node-wide cap on what the retained notifications come
 * to. The store holds them all in memory (the SQLite store loads them again at
 * start), so without a bound about 4,000 acknowledged sends of 1 MiB ended the
 * process out of heap, and every restart's replay did it again. A stored send
 * past the cap is refused with 503 naming the option; live-only sends go; what
 * expires or maxPerStream drops makes room again; the status shows both
 * figures; and the SQLite store counts what it loads after a restart.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startHerald, type TestServer } from './helpers/server.js';
import { cleanEnv, cliBundle } from './helpers/cli.js';
import { mintToken } from '../src/server/auth/token-resolver.js';
import { TestTab, until } from './helpers/ws-client.js';

const CAP = 50_000;
const TEXT = 'y'.repeat(20_000);
const message = (title: string, text = TEXT) => ({ TYPE: 'MESSAGE', TITLE: title, TEXT: text });

for (const store of ['memory', 'sqlite'] as const) {
  describe(`maxRetainedBytes with the ${store} store`, () => {
    let s: TestServer;
    before(async () => { s = await startHerald({ store, maxRetainedBytes: CAP, maxPerStream: 2, pruneIntervalMs: 50 }); });
    after(async () => { await s.close(); });

    const counts = async () => (await s.api('GET', '/api/v1/status')).body.storeCounts as { retained: number; retainedBytes: number; maxRetainedBytes: number };

    test('a stored send past the cap is refused with 503 naming the option; live-only sends still go; the status shows both figures', async () => {
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: message('a') })).status, 200);
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 2 }, message: message('b') })).status, 200);
      const held = await counts();
      assert.equal(held.maxRetainedBytes, CAP);
      assert.ok(held.retainedBytes > 40_000 && held.retainedBytes < CAP, JSON.stringify(held));
      const r = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: message('c') });
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(r.body.error.code, 'HERALD_ERR_UNAVAILABLE');
      assert.match(r.body.error.message, /maxRetainedBytes \(50000\)/);
      assert.equal(r.body.error.details.reason, 'store full');
      assert.equal(r.body.error.details.retainedBytes, held.retainedBytes);
      assert.deepEqual(await counts(), held, 'nothing stored');
      // A batch that would pass it stores none of its items, not even the small first one.
      const batch = await s.api('POST', '/api/v1/send/batch', { messages: [{ to: { aid: 4 }, message: message('small', 'x') }, { to: { aid: 5 }, message: message('d') }] });
      assert.equal(batch.status, 503, JSON.stringify(batch.body));
      assert.deepEqual(await counts(), held, 'nothing of the batch stored');
      // Live-only: nothing stored, so nothing refused.
      const tab = await s.tab('admin', 3);
      try {
        const live = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: message('live'), ttl: 0 });
        assert.equal(live.status, 200, JSON.stringify(live.body));
        assert.equal(live.body.delivered, 1);
      } finally {
        tab.close();
      }
      // Small ones fit in what is left.
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: message('small', 'x') })).status, 200);
      // The health of the store is not in question: it is full, not failing.
      assert.equal((await s.api('GET', '/api/v1/status')).body.healthy, true);
    });

    test('what expires makes room again', async () => {
      const start = await counts();
      const room = CAP - start.retainedBytes;
      // A short-lived one that takes most of what is left, then a second one does not fit. (Lives 1.5 s: the
      // second send must come while it lives, and a loaded machine may take more than a few hundred ms.)
      const sent = Date.now();
      const short = await s.api('POST', '/api/v1/send', { to: { aid: 7 }, message: message('short', 'x'.repeat(room - 200)), ttl: 1.5 });
      assert.equal(short.status, 200, JSON.stringify(short.body));
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 8 }, message: message('next', 'x'.repeat(room - 200)) })).status, 503);
      assert.ok(Date.now() - sent < 1500, 'the refused send came while the first lived');
      // Pruned (every 50 ms) once expired: the room is back.
      await until(async () => (await counts()).retainedBytes === start.retainedBytes, 10_000);
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 8 }, message: message('next', 'x'.repeat(room - 200)) })).status, 200);
    });
    test('what maxPerStream drops for a send makes room for it', async () => {
      // Admin 1's stream holds one: a second one there drops nothing, and does not fit.
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: message('a2') })).status, 503);
      // Admin 6's stream full (maxPerStream 2), then the node filled to within a few bytes of the cap.
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: message('small', 'x') })).status, 200);
      const room = CAP - (await counts()).retainedBytes;
      const overhead = JSON.stringify(message('filler', '')).length;
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 9 }, message: message('filler', 'f'.repeat(room - overhead - 10)) })).status, 200);
      const at = await counts();
      assert.equal(at.retainedBytes, CAP - 10);
      // One more small one to another person does not fit; to admin 6 it replaces the oldest of the same size.
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 10 }, message: message('small', 'x') })).status, 503);
      const replace = await s.api('POST', '/api/v1/send', { to: { aid: 6 }, message: message('small', 'x') });
      assert.equal(replace.status, 200, JSON.stringify(replace.body));
      assert.equal(replace.body.results[0].dropped, 1);
      assert.equal((await counts()).retainedBytes, at.retainedBytes, 'one dropped for one of the same size');
    });
  });
}

describe('maxRetainedBytes across a restart of the SQLite store', () => {
  test('what the store loads counts against the cap, and a lower cap set since refuses stored sends', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-cap-'));
    const secret = randomBytes(32).toString('base64url');
    const apiToken = randomBytes(24).toString('base64url');
    try {
      let s = await startHerald({ store: 'sqlite', maxRetainedBytes: CAP }, { dataDir, secret, apiToken });
      assert.equal((await s.api('POST', '/api/v1/send', { to: { aids: [1, 2] }, message: message('a') })).status, 200);
      const held = (await s.api('GET', '/api/v1/status')).body.storeCounts;
      await s.close();
      s = await startHerald({ store: 'sqlite', maxRetainedBytes: CAP }, { dataDir, secret, apiToken });
      try {
        const loaded = (await s.api('GET', '/api/v1/status')).body.storeCounts;
        assert.equal(loaded.retained, 2);
        assert.equal(loaded.retainedBytes, held.retainedBytes, 'counted as it is loaded');
        const r = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: message('c') });
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.equal(r.body.error.details.reason, 'store full');
      } finally {
        await s.close();
      }
      s = await startHerald({ store: 'sqlite', maxRetainedBytes: 30_000 }, { dataDir, secret, apiToken });
      try {
        const r = await s.api('POST', '/api/v1/send', { to: { aid: 4 }, message: message('small', 'x') });
        assert.equal(r.status, 503, 'over a cap lowered since: nothing more is stored');
        assert.equal((await s.api('POST', '/api/v1/send', { to: { aid: 4 }, message: message('live', 'x'), ttl: 0 })).status, 200);
      } finally {
        await s.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

const ROOT = fileURLToPath(new URL('../', import.meta.url));

/** `herald start` (the tests' bundled CLI, helpers/cli.ts) as a child with a 64 MB heap: the reviewer's crash loop. */
class SmallHeapHerald {
  child: ChildProcess | undefined;
  stderr = '';
  exit: Promise<number | null> | undefined;
  constructor(readonly port: number, readonly dataDir: string, readonly secret: string, readonly apiToken: string, readonly cap: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const env = cleanEnv({ HERALD_SECRET: this.secret, HERALD_API_TOKEN: this.apiToken });
    const child = spawn(process.execPath, [
      '--max-old-space-size=64', cliBundle(), 'start', '--port', String(this.port), '--data-dir', this.dataDir,
      '--no-legacy', '--store', 'sqlite', '--log-level', 'warn', '--set', 'commandsEnabled=false', '--set', `maxRetainedBytes=${this.cap}`,
    ], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr += d; });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`herald start exited ${child.exitCode}: ${this.stderr}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`herald start not ready within 30 s: ${this.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json() };
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await this.exit;
  }
}

describe('a Herald with a 64 MB heap and the SQLite store', () => {
  test('refuses 1 MiB sends past its cap instead of running out of heap, and replays what it holds after a restart', { timeout: 120_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-heap-'));
    // Within the range given to this test file's author; port 0 cannot be read back from `herald start`.
    const port = 28_000 + Math.floor(Math.random() * 400);
    const h = new SmallHeapHerald(port, dataDir, randomBytes(32).toString('base64url'), randomBytes(24).toString('base64url'), 16 * 1024 * 1024);
    try {
      await h.start();
      const text = 'y'.repeat(1_000_000);
      const statuses: number[] = [];
      // 60 of them: without the cap, 45 ended such a process.
      for (let i = 0; i < 60; i++) {
        const r = await h.api('POST', '/api/v1/send', { to: { aid: 100 }, message: { TYPE: 'MESSAGE', TITLE: `big ${i}`, TEXT: text }, idempotencyKey: `m-${i}` });
        statuses.push(r.status);
        if (r.status !== 200) {
          assert.equal(r.status, 503, JSON.stringify(r.body));
          assert.equal(r.body.error.details.reason, 'store full');
        }
      }
      const stored = statuses.filter((c) => c === 200).length;
      assert.ok(stored >= 15 && stored <= 16, `stored ${stored} of 60 (${statuses.join(',')})`);
      await h.stop();
      await h.start();
      const counts = (await h.api('GET', '/api/v1/status')).body.storeCounts;
      assert.equal(counts.retained, stored);
      // The admin's tab, reconnecting, is replayed all of it, and the process lives on.
      const token = await mintToken(h.secret, { kind: 'admin', id: 100 }, 600_000);
      const tab = await TestTab.open(`ws://127.0.0.1:${port}/ws/admin?token=${encodeURIComponent(token)}`);
      try {
        for (let i = 0; i < stored; i++) {
          const m = await tab.next((f) => f?.TYPE === 'MESSAGE', 20_000);
          assert.equal(m.TITLE, `big ${i}`);
        }
      } finally {
        tab.close();
      }
      assert.equal((await h.api('GET', '/api/v1/ping')).status, 200);
      assert.equal(h.child!.exitCode, null, h.stderr);
    } finally {
      await h.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
