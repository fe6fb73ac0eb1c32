/**
 * What Herald does while its SQLite store cannot write (the disk full): it
 * says so (a warning when writes start failing, each refused write logged,
 * bounded, an info line when they work again), /healthz answers 503 and
 * /api/v1/status counts them; acks made meanwhile are written once it can;
 * a stop meanwhile keeps every EPOCH; a first start that cannot write its
 * secrets leaves no empty secrets.json behind.
 *
 * Writes are made to fail with a file size limit on this test's own process
 * (`prlimit --fsize`, soft limit only, raised back after): a write past it
 * fails with EFBIG (node ignores SIGXFSZ), as one past a full disk fails
 * with ENOSPC, and it is deterministic where filling a disk is not.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AckBuffer } from '../src/server/gateway/ack-buffer.js';
import { createHerald } from '../src/server/herald.js';
import { loadOptions } from '../src/server/options.js';
import { ensureSecrets } from '../src/server/secrets.js';
import { SqliteStore } from '../src/server/store/sqlite-store.js';
import { startHerald } from './helpers/server.js';
import { capturedLog } from './helpers/captured-log.js';
import { TestTab } from './helpers/ws-client.js';

const probe = spawnSync('prlimit', ['--pid', String(process.pid), '--fsize']);
const noPrlimit = probe.status === 0 ? undefined : `prlimit cannot set this process's file size limit here: ${probe.error?.message ?? probe.stderr.toString().trim()}`;
if (noPrlimit) console.log(`# skipped: ${noPrlimit}`);

/** Sets this process's soft RLIMIT_FSIZE: writes at or past `bytes` fail with EFBIG. */
function limitFileSize(bytes: number | 'unlimited'): void {
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--fsize=${bytes}:unlimited`]);
  assert.equal(r.status, 0, `prlimit: ${r.stderr.toString()}`);
}

/** Runs `body` with every write of this process failing, then lifts the limit whatever happened. */
async function whileWritesFail<T>(body: () => Promise<T>): Promise<T> {
  limitFileSize(0);
  try {
    return await body();
  } finally {
    limitFileSize('unlimited');
  }
}


/** Resolves once `check` holds, polling each turn of the event loop; fails after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'herald-storefail-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const HOUR = 3_600_000;

describe('the SQLite store while its writes fail', { skip: noPrlimit }, () => {
  test('says so in the log, bounded, and when they work again; /healthz 503 and the status counts them; a SILENT legacy send refused is logged', async () => {
    const { logger, lines } = capturedLog();
    const dir = tempDir();
    const file = join(dir, 'herald.sqlite');
    const store = new SqliteStore({ file, maxPerStream: 1000, logger });
    const server = await startHerald({}, { store, dataDir: dir });
    try {
      const health = async (): Promise<number> => {
        const r = await fetch(`${server.url}/healthz`);
        await r.arrayBuffer();
        return r.status;
      };
      const send = { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TEXT: 'stored' }, ttl: 3600 };
      assert.equal((await server.api('POST', '/api/v1/send', send)).status, 200);
      assert.equal(await health(), 200);

      const refused = await whileWritesFail(async () => {
        const statuses: number[] = [];
        for (let i = 0; i < 30; i++) statuses.push((await server.api('POST', '/api/v1/send', send)).status);
        // Abills::Sender::Browser's NON_SAFE send: over TCP no answer, so nothing but the log can
        // tell; over HTTP its refusal is answered (docs/legacy.md, "The HTTP door"), and logged too.
        const silent = await server.api('POST', '/api/v1/legacy', { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 2, DATA: { TEXT: 'silent' }, SILENT: 1 });
        assert.equal(silent.body.TYPE, 'ERROR', JSON.stringify(silent.body));
        return { statuses, healthz: await health(), counts: (await server.api('GET', '/api/v1/status')).body.storeCounts };
      });
      assert.deepEqual(new Set(refused.statuses), new Set([503]));
      assert.equal(refused.healthz, 503, '/healthz while writes fail');
      assert.equal(refused.counts.writesFailing, true);
      assert.equal(refused.counts.writeFailures, 31);

      const log = lines();
      const started = log.filter((l) => /writes are failing/.test(l.msg));
      assert.equal(started.length, 1, 'one warning when writes start failing');
      assert.equal(started[0]!.level, 40);
      assert.equal(started[0]!.file, file);
      assert.ok(started[0]!.err, 'with SQLite\'s error');
      const each = log.filter((l) => /write refused/.test(l.msg));
      assert.ok(each.length >= 1 && each.length <= 20, `each refused write logged, 20 a window at most: ${each.length}`);

      // The first write that commits ends it. The wall clock is stepped back an hour first
      // (an NTP step): how long writes failed is still measured, not negative.
      const wallNow = Date.now;
      Date.now = () => wallNow() - HOUR;
      try {
        assert.equal((await server.api('POST', '/api/v1/send', send)).status, 200);
      } finally {
        Date.now = wallNow;
      }
      assert.equal(await health(), 200);
      const after = lines();
      // The ones past the window's 20 lines are said in one line, before the recovery's.
      const summary = after.find((l) => /more writes refused/.test(l.msg));
      assert.equal(each.length + (summary?.refused ?? 0), 31, 'every refused write is in the log, the SILENT one included');
      assert.ok(after.some((l) => l.stream === 'admin:2' && /write refused/.test(l.msg)) || summary !== undefined, 'the SILENT send to admin 2');
      const back = after.find((l) => /writes work again/.test(l.msg));
      assert.ok(back, 'an info line when writes work again');
      assert.equal(back.level, 30);
      assert.equal(back.refused, 31);
      assert.ok(back.failedMs >= 0 && back.failedMs < HOUR / 2, `failedMs ${back.failedMs}: the time writes failed, whatever the wall clock did`);
      const counts = (await server.api('GET', '/api/v1/status')).body.storeCounts;
      assert.equal(counts.writesFailing, false);
      assert.equal(counts.writeFailures, 31);
    } finally {
      await server.close();
    }
  });

  test('a SILENT legacy send refused alone is logged with its stream', async () => {
    const { logger, lines } = capturedLog();
    const dir = tempDir();
    const store = new SqliteStore({ file: join(dir, 'herald.sqlite'), maxPerStream: 1000, logger });
    const server = await startHerald({}, { store, dataDir: dir });
    try {
      await whileWritesFail(async () => {
        const silent = await server.api('POST', '/api/v1/legacy', { MESSAGE: { TYPE: 'MESSAGE', TO: 'ADMIN', ID: 2, DATA: { TEXT: 'silent' } }, SILENT: 1 });
        assert.equal(silent.body.TYPE, 'ERROR', 'over HTTP a SILENT send refused is answered with its error');
      });
      const line = lines().find((l) => /write refused/.test(l.msg));
      assert.ok(line, 'the refused SILENT send is in the log');
      assert.equal(line.stream, 'admin:2');
      assert.equal(line.notifications, 1);
    } finally {
      await server.close();
    }
  });

  test('a stop while the clean mark cannot be written keeps every EPOCH (no rotation at the next start)', async () => {
    const file = join(tempDir(), 'herald.sqlite');
    let store = new SqliteStore({ file, maxPerStream: 1000 });
    let last = { seq: 0, epoch: '' };
    // Commits one by one: the WAL grows well past what the file needs, so the close's checkpoint
    // fits under a limit set at the WAL's size, while the clean mark's commit, which grows the WAL, does not.
    for (let i = 0; i < 100; i++) {
      const { seq, epoch } = await store.append({ stream: 'admin:1', json: `{"TEXT":"m${i}"}`, expiresAt: Date.now() + HOUR }, Date.now());
      last = { seq, epoch };
    }
    const wal = statSync(`${file}-wal`).size;
    assert.ok(wal > statSync(file).size * 4, 'the WAL is larger than the file will be');
    limitFileSize(wal);
    try {
      await assert.rejects(store.close(), 'the clean mark could not be written');
    } finally {
      limitFileSize('unlimited');
    }
    store = new SqliteStore({ file, maxPerStream: 1000 });
    try {
      assert.equal(store.rotatedEpochs, false, `rotated: ${store.rotation}`);
      assert.deepEqual({ seq: store.head('admin:1').lastSeq, epoch: store.head('admin:1').epoch }, last);
    } finally {
      await store.close();
    }
  });

  test('acks made while writes fail are written once they work again', async () => {
    const { logger } = capturedLog();
    const file = join(tempDir(), 'herald.sqlite');
    let store = new SqliteStore({ file, maxPerStream: 1000, ackDelayMs: 0 });
    const sent = await store.append({ stream: 'admin:1', json: '{"TEXT":"read"}', expiresAt: Date.now() + HOUR }, Date.now());
    const acks = new AckBuffer(store, logger, { retryMs: 20 });
    await whileWritesFail(async () => {
      acks.record('admin:1', sent.seq);
      await acks.flush();
      assert.equal((await store.status(sent.id, Date.now()))?.acknowledged, false, 'not written while writes fail');
      assert.equal(acks.pending('admin:1'), sent.seq, 'still counted by a head read meanwhile');
    });
    await until(async () => (await store.status(sent.id, Date.now()))?.acknowledged === true, 5000, 'the ack written after writes work again');
    await acks.settle();
    await store.close();
    store = new SqliteStore({ file, maxPerStream: 1000 });
    try {
      assert.equal(store.head('admin:1').ackedSeq, sent.seq, 'a new tab is not replayed what was read');
    } finally {
      await store.close();
    }
  });
});

describe('acknowledgements that cannot be written, at shutdown', { skip: noPrlimit }, () => {
  test('every failed write of acknowledgements is in the log, one by one or counted, once Herald has closed', async () => {
    const { logger, lines } = capturedLog();
    const dir = tempDir();
    const store = new SqliteStore({ file: join(dir, 'herald.sqlite'), maxPerStream: 1000, ackDelayMs: 0 });
    const options = loadOptions({ env: {}, overrides: { host: '127.0.0.1', port: 0, legacyEnabled: false, dataDir: dir, secret: 's'.repeat(40), apiToken: 'a'.repeat(24), commandsEnabled: false, acksPerSecond: 0 } });
    const herald = await createHerald(options, { logger, store });
    try {
      const urls = await herald.listen();
      const tab = await TestTab.open(`${urls.ws}/ws/admin`, { query: { token: (await herald.mintToken({ kind: 'admin', id: 1 })).token } });
      for (let i = 1; i <= 40; i++) await herald.notifier.send({ kind: 'admin', id: 1 }, { TYPE: 'MESSAGE', TEXT: `n${i}` });
      const last = await tab.next((f: { SEQ?: number }) => f.SEQ === 40) as { EPOCH: string };
      await whileWritesFail(async () => {
        // One ack a turn or so: each a store write of its own, each refused. More than the
        // AckBuffer's 20 lines a window, so the rest are counted for its summary.
        for (let seq = 1; seq <= 40; seq++) {
          tab.ws.send(JSON.stringify({ TYPE: 'RESPONSE', SEQ: seq, EPOCH: last.EPOCH }));
          await until(() => (store.counts().writeFailures ?? 0) >= seq, 5000, `ack ${seq} refused`);
        }
        tab.terminate();
      });
      // Stopped within the summary's 10 s window, as a `herald start` stopped at once.
    } finally {
      await herald.close();
    }
    const failures = lines().filter((l) => l.msg.startsWith('could not record acknowledgements'));
    const logged = failures.filter((l) => l.failed === undefined).length + failures.reduce((n, l) => n + (typeof l.failed === 'number' ? l.failed : 0), 0);
    const refused = store.counts().writeFailures ?? 0;
    assert.ok(refused > 20, `${refused} writes refused`);
    assert.equal(logged, refused, `${refused} writes of acknowledgements refused; the log says ${logged} of them`);
  });
});

describe('secrets.json on a first start that cannot write it', { skip: noPrlimit }, () => {
  test('leaves no secrets.json (nor a temporary file), and the next start with room writes it', async () => {
    const dataDir = join(tempDir(), 'data');
    const options = loadOptions({ env: {}, overrides: { dataDir, secret: '', apiToken: '' } });
    // The data dir is made first, as by a start that got that far: only the file's write fails.
    mkdirSync(dataDir, { mode: 0o700 });
    await whileWritesFail(async () => {
      assert.throws(() => ensureSecrets(options), /EFBIG|too large/);
    });
    assert.deepEqual(readdirSync(dataDir), [], 'no empty secrets.json, no temporary file, no notice owed');
    const next = ensureSecrets(options);
    assert.equal(next.generated, true);
    assert.equal(statSync(next.file).mode & 0o777, 0o600);
    assert.deepEqual(ensureSecrets(options).options.secret, next.options.secret, 'the start after reads it');
  });
});
