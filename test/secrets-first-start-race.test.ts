/**
 * First starts at once in one data dir (two units of one service, a
 * supervisor restarting in a loop beside an operator's `herald start`): each
 * generated its own secrets and renamed them over the other's, so a Herald
 * ran with keys that secrets.json no longer held, and the backend's tokens
 * signed with the file's secret were refused. Real processes, each calling
 * the built ensureSecrets at the same moment. (A start that failed then
 * removed what it had generated, though the others ran with it: it keeps
 * it now, and each of them owes the notice of where it is.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runModule } from './helpers/node-child.js';

const DIST = fileURLToPath(new URL('../dist/server/', import.meta.url));
const STARTS = 8;
const ROUNDS = 4;

/** One start: loads first, then waits for the moment `go` so that all of them generate at once. */
const start = (dataDir: string, go: number): Promise<string> => runModule(`
  const { loadOptions } = await import(${JSON.stringify(join(DIST, 'options.js'))});
  const { ensureSecrets } = await import(${JSON.stringify(join(DIST, 'secrets.js'))});
  const options = loadOptions({ env: {}, overrides: { dataDir: ${JSON.stringify(dataDir)} } });
  while (Date.now() < ${go});
  const r = ensureSecrets(options);
  console.log(JSON.stringify({ secret: r.options.secret, apiToken: r.options.apiToken, generated: r.generated, noticeKeys: r.noticeKeys }));
`, { tsx: false });

test('first starts at once in one data dir all run with the secrets the file holds; one of them made it', async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const dir = mkdtempSync(join(tmpdir(), 'herald-secrets-race-'));
    try {
      const dataDir = join(dir, 'data');
      const go = Date.now() + 1500;
      const results = (await Promise.all(Array.from({ length: STARTS }, () => start(dataDir, go))))
        .map((out) => JSON.parse(out) as { secret: string; apiToken: string; generated: boolean; noticeKeys: string[] });
      const file = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { secret: string; apiToken: string };
      for (const r of results) assert.deepEqual({ secret: r.secret, apiToken: r.apiToken }, file, `round ${round}`);
      assert.equal(results.filter((r) => r.generated).length, 1, `round ${round}`);
      // Each owes the notice of where they are: the one that made them may fail before it listens,
      // and keeps them (a start beside it runs with them), so whichever listens says so.
      for (const r of results) assert.deepEqual(r.noticeKeys, ['secret', 'apiToken'], `round ${round}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/** What a start with HERALD_SECRET set (and no API token) leaves: `{"secret":"","apiToken":…}`. */
async function startWithSecretSet(dataDir: string): Promise<void> {
  await runModule(`
    const { loadOptions } = await import(${JSON.stringify(join(DIST, 'options.js'))});
    const { ensureSecrets } = await import(${JSON.stringify(join(DIST, 'secrets.js'))});
    ensureSecrets(loadOptions({ env: { HERALD_SECRET: 'x'.repeat(40) }, overrides: { dataDir: ${JSON.stringify(dataDir)} } }));
  `, { tsx: false });
}

test('starts at once over a secrets.json missing one key all run with the secret the file holds; one of them made it', async () => {
  for (let round = 0; round < ROUNDS; round++) {
    const dir = mkdtempSync(join(tmpdir(), 'herald-secrets-fill-race-'));
    try {
      const dataDir = join(dir, 'data');
      // The operator then drops HERALD_SECRET to have Herald keep its own.
      await startWithSecretSet(dataDir);
      const before = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { secret: string; apiToken: string };
      assert.equal(before.secret, '');
      const go = Date.now() + 1500;
      const results = (await Promise.all(Array.from({ length: STARTS }, () => start(dataDir, go))))
        .map((out) => JSON.parse(out) as { secret: string; apiToken: string; generated: boolean; noticeKeys: string[] });
      const file = JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { secret: string; apiToken: string };
      assert.equal(file.apiToken, before.apiToken, 'the key the file held is kept');
      for (const r of results) assert.deepEqual({ secret: r.secret, apiToken: r.apiToken }, file, `round ${round}`);
      assert.equal(results.filter((r) => r.generated).length, 1, `round ${round}`);
      assert.ok(!existsSync(join(dataDir, 'secrets.json.lock')), 'the lock is removed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('a lock left beside secrets.json by a start that died (its process gone, or the lock long past) does not stop the next start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-secrets-stale-lock-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    for (const [what, pid, age] of [['a process that is gone', dead, 0], ['a live process, written a minute ago', process.pid, 60]] as const) {
      const dataDir = join(dir, String(age));
      await startWithSecretSet(dataDir);
      const lock = join(dataDir, 'secrets.json.lock');
      writeFileSync(lock, `${pid}\n`, { mode: 0o600 });
      if (age > 0) utimesSync(lock, new Date(Date.now() - age * 1000), new Date(Date.now() - age * 1000));
      const r = JSON.parse(await start(dataDir, 0)) as { secret: string; generated: boolean };
      assert.ok(r.generated, what);
      assert.equal(r.secret, (JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { secret: string }).secret, what);
      assert.ok(!existsSync(lock), `${what}: the lock is removed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
