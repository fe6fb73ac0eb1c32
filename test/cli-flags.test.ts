/**
 * How the `herald` client commands read their flags, as child processes
 * against a real Herald (test/helpers/server.ts): numbers an operator types
 * work, and values the SDK cannot use are usage errors (exit 2) naming the
 * flag, never a stack trace.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import { runCli } from './helpers/cli.js';

describe('herald client command flags', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken, HERALD_DATA_DIR: s.dataDir };
  });
  after(() => s.close());

  test('--timeout-ms takes decimal digits; a fraction, or one past what a timer holds, exits 2 naming the flag', async () => {
    let r = await runCli(['ping', '--timeout-ms', '5000'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^pong from Herald/);
    r = await runCli(['ping', '--timeout-ms', '5000.5'], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^herald: --timeout-ms must be a positive number of milliseconds up to 2147483647, written in decimal digits/);
    r = await runCli(['ping', '--timeout-ms', '3000000000'], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^herald: --timeout-ms must be a positive number of milliseconds up to 2147483647, got "3000000000"\n$/);
  });

  test('a --url with user:password@ exits 2 as a usage error and never prints the password', async () => {
    const withCredentials = s.url.replace('http://', 'http://backend:S3cr3t-pass@');
    for (const r of [await runCli(['ping', '--url', withCredentials], { env }), await runCli(['ping'], { env: { ...env, HERALD_URL: withCredentials } })]) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^herald: --url \/ HERALD_URL must not carry a user name or password/);
      assert.ok(!(r.stdout + r.stderr).includes('S3cr3t-pass'), r.stderr);
    }
  });
  test('an empty --url is a usage error, not a fall back to the configured server', async () => {
    const r = await runCli(['ping', '--url', ''], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^herald: --url must not be empty\n$/);
  });
});
