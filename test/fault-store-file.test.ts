/**
 * The SQLite store's file under a running Herald (`herald start` as a child
 * process): deleted or replaced by hand or by a cleaner of old files. SQLite
 * goes on writing to the open, unlinked file without an error, and the next
 * start finds none of it; so Herald refuses every stored send from then on
 * (503 HERALD_ERR_UNAVAILABLE naming the file) instead of answering "stored"
 * for notifications the next restart would lose. Live delivery goes on.
 * When the WAL alone went, its frames are first copied into the file, so
 * that what was answered as stored survives even a kill.
 */
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runCli } from './helpers/cli.js';
import { FaultServer, type SendItem } from './helpers/fault-server.js';
import { until } from './helpers/ws-client.js';

const batch = (aid: number, from: number, n: number, ttl = 3600): SendItem[] =>
  Array.from({ length: n }, (_, i) => ({ to: { aid }, message: { TYPE: 'MESSAGE', TEXT: `m${from + i}` }, ttl, idempotencyKey: `k${from + i}` }));

describe('the store file under a running Herald', () => {
  const servers: FaultServer[] = [];
  after(async () => {
    for (const s of servers) await s.dispose();
  });

  for (const how of ['deleted', 'its WAL deleted', 'replaced by a copy'] as const) {
    test(`${how}: stored sends are refused with 503 HERALD_ERR_UNAVAILABLE naming the file, logged once; live ones still reach the tab${how === 'its WAL deleted' ? '; what was answered as stored survives a kill -9' : ''}`, async () => {
      const s = await FaultServer.create();
      servers.push(s);
      await s.start();
      const file = join(s.dataDir, 'herald.sqlite');
      const first = await s.sendBatch(batch(1, 0, 20));
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const tab = await s.tab(2);

      if (how === 'deleted') rmSync(file);
      else if (how === 'its WAL deleted') rmSync(`${file}-wal`);
      else {
        copyFileSync(file, `${file}.copy`);
        renameSync(`${file}.copy`, file);
      }

      if (how === 'its WAL deleted') {
        // The file is still Herald's: the commit that found the WAL gone is copied into it.
        const r = await s.sendBatch(batch(1, 20, 20));
        assert.equal(r.status, 200, JSON.stringify(r.body));
      }
      for (let i = 0; i < 3; i++) {
        const r = await s.sendBatch(batch(1, 100 + 20 * i, 20));
        assert.equal(r.status, 503, `a stored send after the file was ${how} must not be answered as stored: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.error?.code, 'HERALD_ERR_UNAVAILABLE');
        assert.match(r.body.error?.message ?? '', new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*deleted or replaced.*restart Herald`));
      }
      // ttl 0: nothing to store, so the tab open now still gets it.
      const live = await s.sendBatch([{ to: { aid: 2 }, message: { TYPE: 'MESSAGE', TEXT: 'live' }, ttl: 0 }]);
      assert.equal(live.status, 200, JSON.stringify(live.body));
      await tab.until(() => tab.live.length > 0, 5000, 'the live send');
      assert.equal(tab.live[0]!.TEXT, 'live');
      tab.close();

      await until(() => s.output.includes('store: file lost'), 10_000, 'store: file lost in the log');
      assert.equal(s.output.split('store: file lost').length - 1, 1, s.output.slice(-3000));
      // A monitor sees it: /healthz is 503 (the path and cause are only in the log).
      const health = await fetch(`http://127.0.0.1:${s.port}/healthz`);
      assert.equal(health.status, 503);
      assert.deepEqual(await health.json(), { ok: false, error: { code: 'HERALD_ERR_UNAVAILABLE', message: 'the store can store nothing more: see the server log' } });
      assert.equal(s.child?.exitCode, null, 'the server keeps running');
      assert.doesNotMatch(s.output, /\n\s+at /, 'no stack trace');

      if (how === 'its WAL deleted') {
        // kill -9 and a start: what was answered as stored is there, in its EPOCH, no RESET.
        const epoch = first.body.results![0]!.results[0]!.epoch!;
        await s.kill();
        await s.start();
        const back = await s.tab(1, { seq: 0, epoch });
        await back.until(() => back.frames.length >= 40, 5000, '40 notifications');
        back.close();
        assert.deepEqual(back.frames.map((f) => [f.TYPE, f.SEQ, f.TEXT]), Array.from({ length: 40 }, (_, i) => ['MESSAGE', i + 1, `m${i}`]));
      }
    });
  }

  // A quiet night: nothing is sent after the file goes, and a monitor polls. It must see the loss
  // then, not at the next send: everything queued meanwhile sits in the unlinked file.
  for (const how of ['deleted', 'its WAL deleted'] as const) {
    test(`${how}, no send since: /healthz answers 503 and the status names the cause at once, logged once${how === 'its WAL deleted' ? '; the probe copies the WAL into the file, so what was stored survives a kill -9' : ''}`, async () => {
      const s = await FaultServer.create();
      servers.push(s);
      await s.start();
      const file = join(s.dataDir, 'herald.sqlite');
      const first = await s.sendBatch(batch(1, 0, 20));
      assert.equal(first.status, 200, JSON.stringify(first.body));
      assert.equal((await fetch(`${s.url}/healthz`)).status, 200);

      rmSync(how === 'deleted' ? file : `${file}-wal`);

      const health = await fetch(`${s.url}/healthz`);
      assert.equal(health.status, 503, `${how} and nothing sent since: /healthz must say so`);
      assert.deepEqual(await health.json(), { ok: false, error: { code: 'HERALD_ERR_UNAVAILABLE', message: 'the store can store nothing more: see the server log' } });
      const status = await fetch(`${s.url}/api/v1/status`, { headers: { authorization: `Bearer ${s.apiToken}` } });
      const body = await status.json() as { healthy: boolean; problem?: string; storeCounts: { writesFailing?: boolean } };
      assert.equal(body.healthy, false);
      assert.match(body.problem ?? '', new RegExp(`^the store can store nothing more: the store file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*deleted or replaced`));
      assert.equal(body.storeCounts.writesFailing, true);
      // Asked again: the same verdict, said once in the log.
      assert.equal((await fetch(`${s.url}/healthz`)).status, 503);
      await until(() => s.output.includes('store: file lost'), 10_000, 'store: file lost in the log');
      // Lost for good: the next stored send is refused, not answered as stored.
      const after = await s.sendBatch(batch(1, 20, 20));
      assert.equal(after.status, 503, JSON.stringify(after.body));
      assert.equal(s.output.split('store: file lost').length - 1, 1, s.output.slice(-3000));

      if (how === 'its WAL deleted') {
        // kill -9 and a start: the 20 answered as stored are in the file, in their EPOCH, no RESET.
        const epoch = first.body.results![0]!.results[0]!.epoch!;
        await s.kill();
        await s.start();
        const back = await s.tab(1, { seq: 0, epoch });
        await back.until(() => back.frames.length >= 20, 5000, '20 notifications');
        back.close();
        assert.deepEqual(back.frames.map((f) => [f.TYPE, f.SEQ, f.TEXT]), Array.from({ length: 20 }, (_, i) => ['MESSAGE', i + 1, `m${i}`]));
      }
    });
  }

  test('its lock file deleted alone (a cleaner of old files): the next write takes it again, so a second Herald on the data dir is still refused', async () => {
    const s = await FaultServer.create();
    servers.push(s);
    await s.start();
    const first = await s.sendBatch(batch(1, 0, 20));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    rmSync(join(s.dataDir, 'herald.sqlite-lock'));
    const next = await s.sendBatch(batch(1, 20, 20));
    assert.equal(next.status, 200, JSON.stringify(next.body));
    // The warning comes down the child's stdout pipe, which may deliver it after the HTTP answer.
    await until(() => /the lock file was deleted under the running Herald; taken again/.test(s.output), 10_000, 'the lock warning in the log');

    const second = await runCli(['start', '--config', s.config, '--port', '0'], { timeoutMs: 15_000 });
    assert.equal(second.code, 1, second.stdout + second.stderr);
    assert.match(second.stderr, /is in use by another process/);
    const last = await s.sendBatch(batch(1, 40, 20));
    assert.equal(last.status, 200, JSON.stringify(last.body));
  });

  test('its lock file deleted and taken by a second Herald before the first wrote again: the first refuses to write, so no SEQ is assigned twice', async () => {
    const s = await FaultServer.create({ logLevel: 'warn' });
    servers.push(s);
    await s.start();
    const first = await s.sendBatch(batch(1, 0, 20));
    assert.equal(first.status, 200, JSON.stringify(first.body));
    rmSync(join(s.dataDir, 'herald.sqlite-lock'));
    const other = await FaultServer.create({ logLevel: 'warn' }, s.dataDir);
    await other.start();
    try {
      const r = await s.sendBatch(batch(1, 20, 20));
      assert.equal(r.status, 503, `the first Herald must not write beside the second: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error?.message ?? '', /lock file .* was deleted while Herald ran, and another process holds the new one/);
      const o = await other.sendBatch(batch(1, 20, 20));
      assert.equal(o.status, 200, JSON.stringify(o.body));
      assert.equal(o.body.results![0]!.results[0]!.seq, 21, 'the second goes on after the first\'s SEQs');
    } finally {
      await other.kill();
      rmSync(other.config, { force: true });
    }
  });

  test('a file left alone: no false alarm, sends go on being stored across a graceful restart (whose close removes the WAL and the next open makes a new one)', async () => {
    const s = await FaultServer.create();
    servers.push(s);
    await s.start();
    for (let i = 0; i < 3; i++) {
      const r = await s.sendBatch(batch(1, 20 * i, 20));
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    assert.equal(await s.stop(), 0);
    await s.start();
    const r = await s.sendBatch(batch(1, 60, 20));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await fetch(`http://127.0.0.1:${s.port}/healthz`)).status, 200);
    const tab = await s.tab(1, { seq: 0, epoch: r.body.results![0]!.results[0]!.epoch! });
    await tab.until(() => tab.messages.length >= 80, 5000, '80 notifications');
    assert.deepEqual(tab.messages.map((m) => m.TEXT), Array.from({ length: 80 }, (_, i) => `m${i}`));
    tab.close();
  });
});
