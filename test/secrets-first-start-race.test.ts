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
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
