/**
 * The disk under the data dir fills up while Herald runs (a 2 MB tmpfs,
 * mounted by the test as root; skipped with the reason when the sandbox
 * refuses the mount, a failure under CI=true): stored sends are answered
 * 503 HERALD_ERR_UNAVAILABLE saying the disk is full, the server keeps
 * running, live-only sends still reach open tabs, and once space is freed it
 * stores again without a restart. Nothing answered as stored is lost (checked after a kill -9 and
 * a start) or delivered twice.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { skipUnlessCI } from './helpers/capability.js';
import { FaultServer, type SendItem, type SendResult } from './helpers/fault-server.js';

describe('the disk fills up under a running Herald', () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'herald-full-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mountPoint]);
  const refused = mount.status === 0 ? undefined : `mount -t tmpfs refused in this sandbox: ${mount.error?.message ?? (mount.stderr.toString().trim() || `exit ${mount.status}`)}`;
  let server: FaultServer | undefined;
  after(async () => {
    await server?.kill();
    if (!refused) spawnSync('umount', [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });

  test('503 while full, live sends go on, stores again once space is freed, nothing accepted lost', { skip: skipUnlessCI(refused) }, async () => {
    const dataDir = join(mountPoint, 'data');
    mkdirSync(dataDir);
    const s = await FaultServer.create({ maxPerStream: 100_000 }, dataDir);
    server = s;
    await s.start();
    const live = await s.tab(9);

    // Leave about 300 KB: a few batches fit, then the WAL cannot grow.
    const fs = statfsSync(mountPoint);
    const filler = join(mountPoint, 'filler');
    writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 300 * 1024)));

    const accepted = new Map<number, string>();
    let epoch = '';
    let n = 0;
    const batch = (): SendItem[] => Array.from({ length: 50 }, () => {
      const k = n++;
      return { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: `m${k} ${'x'.repeat(200)}` }, ttl: 3600, idempotencyKey: `k${k}` };
    });
    const record = (items: readonly SendItem[], results: readonly SendResult[]): void => {
      items.forEach((m, i) => accepted.set(results[i]!.results[0]!.seq!, m.message.TEXT as string));
      epoch = results[0]!.results[0]!.epoch!;
    };
    let full: { code: string; message: string } | undefined;
    for (let i = 0; i < 100 && !full; i++) {
      const items = batch();
      const r = await s.sendBatch(items);
      if (r.status === 200) record(items, r.body.results!);
      else {
        assert.equal(r.status, 503, JSON.stringify(r.body));
        full = r.body.error;
      }
    }
    assert.ok(full, 'the disk filled up');
    assert.equal(full.code, 'HERALD_ERR_UNAVAILABLE');
    assert.match(full.message, /disk is full/);
    assert.ok(accepted.size > 0, 'some were stored before');

    // Live-only: nothing to store, delivered to the tab open now.
    const r = await s.sendBatch([{ to: { aid: 9 }, message: { TYPE: 'MESSAGE', TEXT: 'live while full' }, ttl: 0 }]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await live.until(() => live.live.length > 0, 5000, 'the live send');
    live.close();

    rmSync(filler);
    for (let i = 0; i < 5; i++) {
      const items = batch();
      const again = await s.sendBatch(items);
      assert.equal(again.status, 200, `stores again once space is freed, without a restart: ${JSON.stringify(again.body)}`);
      record(items, again.body.results!);
    }
    assert.equal(s.child?.exitCode, null, 'still running');
    assert.doesNotMatch(s.output, /\n\s+at /, 'no stack trace');

    await s.kill();
    await s.start();
    const tab = await s.tab(1, { seq: 0, epoch });
    await tab.until(() => tab.frames.length >= accepted.size, 10_000, `${accepted.size} notifications`);
    tab.close();
    const want = [...accepted].sort((a, b) => a[0] - b[0]);
    assert.deepEqual(tab.frames.map((f) => [f.SEQ, f.TEXT]), want, 'every accepted notification once, in order, no RESET');
  });
});

