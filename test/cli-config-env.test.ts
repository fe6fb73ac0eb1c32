/**
 * `herald start` and the environment: a HERALD_* variable that is not an
 * option is named in a warning (with the option it most likely meant), never
 * with its value, and changes nothing.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, LineReader, spawnCli } from './helpers/cli.js';

describe('herald start with a misspelt environment variable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-env-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('warns naming the variable and the option it meant, never its value', async () => {
    const child = spawnCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data')], {
      env: { HERALD_APITOKEN: 'misspelt-api-token-value-0123', HERALD_DEMO_ENABLED: 'false', HERALD_HEARTBEAT_MSS: '60000', HERALD_URL: 'http://127.0.0.1:1' },
    });
    try {
      const stdout = new LineReader(child.stdout);
      await stdout.next((l) => l.includes('Herald is listening'));
      const warnings = stdout.lines.map((l) => JSON.parse(l) as { level: number; variable?: string; meant?: string; msg: string }).filter((l) => l.variable !== undefined);
      assert.deepEqual(warnings.map((w) => [w.level, w.variable, w.meant]), [
        [40, 'HERALD_APITOKEN', 'HERALD_API_TOKEN'],
        [40, 'HERALD_DEMO_ENABLED', undefined],
        [40, 'HERALD_HEARTBEAT_MSS', 'HERALD_HEARTBEAT_MS'],
      ]);
      assert.equal(warnings[0]!.msg, 'environment variable HERALD_APITOKEN is not an option and is ignored (did you mean HERALD_API_TOKEN?)');
      assert.ok(!stdout.text().includes('misspelt-api-token-value'), 'the value of a variable is never logged');
      child.kill('SIGTERM');
      assert.equal((await exited(child)).code, 0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
