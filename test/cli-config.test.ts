import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOptions } from '../src/server/options.js';
import { ensureSecrets, secretsFile } from '../src/server/secrets.js';
import { runCli } from './helpers/cli.js';

describe('herald config', () => {
  test('shows the secrets herald start would take from DATA_DIR/secrets.json as set (masked), and creates none', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-config-'));
    try {
      // Nothing configured, nothing generated yet: empty, and config must not generate them.
      let r = await runCli(['config', '--data-dir', dataDir]);
      assert.equal(r.code, 0, r.stderr);
      let shown = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(shown.secret, '');
      assert.equal(shown.apiToken, '');
      assert.equal(existsSync(secretsFile(dataDir)), false);

      // What a first start writes: the server runs with these, so they are set.
      ensureSecrets(loadOptions({ env: {}, overrides: { dataDir } }));
      const stored = JSON.parse(readFileSync(secretsFile(dataDir), 'utf8')) as { secret: string; apiToken: string };
      r = await runCli(['config', '--data-dir', dataDir]);
      assert.equal(r.code, 0, r.stderr);
      shown = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(shown.secret, '(set)');
      assert.equal(shown.apiToken, '(set)');
      assert.ok(!r.stdout.includes(stored.secret) && !r.stdout.includes(stored.apiToken), 'a stored secret was printed');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('shows httpResolverUrl with its query\'s values masked: a key for the panel may be there', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-config-'));
    try {
      const key = 'panel-callback-key-5f1d9c';
      const r = await runCli(['config', '--data-dir', dataDir], {
        env: { HERALD_AUTH_RESOLVER: 'http', HERALD_HTTP_RESOLVER_URL: `http://127.0.0.1:9/herald/auth?key=${key}&v=2&${key}#${key}` },
      });
      assert.equal(r.code, 0, r.stderr);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(shown.httpResolverUrl, 'http://127.0.0.1:9/herald/auth?key=(set)&v=(set)&(set)');
      assert.ok(!(r.stdout + r.stderr).includes(key), 'the key was printed');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('shows a password in httpResolverUrl\'s user information as (set), the user name and the rest as they are', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-config-'));
    try {
      const password = 'S3cret-p@ss:word';
      const r = await runCli(['config', '--data-dir', dataDir], {
        env: { HERALD_AUTH_RESOLVER: 'http', HERALD_HTTP_RESOLVER_URL: `http://panel:${password}@127.0.0.1:9/herald/auth@x?key=1` },
      });
      assert.equal(r.code, 0, r.stderr);
      const shown = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(shown.httpResolverUrl, 'http://panel:(set)@127.0.0.1:9/herald/auth@x?key=(set)');
      assert.ok(!(r.stdout + r.stderr).includes('S3cret'), 'the password was printed');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
