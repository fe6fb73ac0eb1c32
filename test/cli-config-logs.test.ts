/**
 * What `herald start` logs, read as an attacker with the logs would: at the
 * most verbose level, with every kind of credential going past (the API token
 * in Authorization, a browser token in ?token=, session cookies, the legacy
 * TOKEN), no secret reaches a line; every line is one JSON object; and what
 * the log says about the configuration is still readable.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { TestTab } from './helpers/ws-client.js';

const SECRETS = {
  HERALD_API_TOKEN: 'api-token-LOGSECRET-0123456789',
  HERALD_SECRET: 'signing-secret-LOGSECRET-0123456789abcdef',
  HERALD_PREVIOUS_SECRET: 'previous-secret-LOGSECRET-0123456789abcdef',
  HERALD_LEGACY_TOKEN: 'legacy-token-LOGSECRET-0123',
};

describe('herald start logs, at trace level', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-cli-logs-'));
  let child: ChildProcessWithoutNullStreams;
  let stdout: LineReader;
  let stderr: LineReader;
  let http = '';
  let legacyPort = 0;

  before(async () => {
    child = spawnCli(['start', '--port', '0', '--legacy-port', '0', '--log-level', 'trace', '--data-dir', join(dir, 'data')], { env: SECRETS });
    stdout = new LineReader(child.stdout);
    stderr = new LineReader(child.stderr);
    const listening = JSON.parse(await stdout.next((l) => l.includes('Herald is listening'))) as { http: string; legacy: { port: number } };
    http = listening.http;
    legacyPort = listening.legacy.port;
  });

  after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited(child);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('the legacy listener says whether legacyToken is set, instead of "[redacted]"', async () => {
    const line = JSON.parse(await stdout.next((l) => l.includes('legacy TCP protocol listening'))) as Record<string, unknown>;
    assert.equal(line.tokenSet, true);
    assert.ok(!JSON.stringify(line).includes('[redacted]'), JSON.stringify(line));
  });

  test('credentials that go past are never written, and every line is one JSON object', async () => {
    const browserToken = (await runCli(['token', '--aid', '1', '--data-dir', join(dir, 'data')], { env: SECRETS })).stdout.trim();
    assert.match(browserToken, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const auth = { authorization: `Bearer ${SECRETS.HERALD_API_TOKEN}`, 'content-type': 'application/json', cookie: 'sid=cookie-LOGSECRET-1' };
    // The API: a good request, a wrong token, a bad body, one in the query string, a 404.
    await (await fetch(`${http}/api/v1/status?token=${browserToken}`, { headers: auth })).text();
    await (await fetch(`${http}/api/v1/status`, { headers: { authorization: 'Bearer wrong-LOGSECRET-api-token' } })).text();
    await (await fetch(`${http}/api/v1/send`, { method: 'POST', headers: auth, body: '{"to":{"aid":1},"message":{"TEXT":"x"},"token":"body-LOGSECRET"}' })).text();
    await (await fetch(`${http}/api/v1/send`, { method: 'POST', headers: auth, body: '{"to":{"aid":1},"message":' })).text();
    await (await fetch(`${http}/nowhere?token=query-LOGSECRET-404`, { headers: auth })).text();
    await (await fetch(`${http}/api/v1/tokens`, { method: 'POST', headers: auth, body: '{"kind":"admin","id":1}' })).text();
    // The browser endpoint: a tab that is admitted, a refused token, a probe with a cookie.
    const tab = await TestTab.open(`${http.replace('http', 'ws')}/ws/admin`, { query: { token: browserToken } });
    await tab.nextOfType('WELCOME');
    tab.close();
    await tab.closed;
    await (await fetch(`${http}/ws/admin?token=${browserToken.slice(0, -4)}LOGS`, { headers: { cookie: 'sid=cookie-LOGSECRET-2' } })).text();
    await (await fetch(`${http}/ws/user?token=${browserToken}`)).text();
    // The legacy door: a message with its TOKEN, one with a wrong TOKEN.
    const legacy = await RawLegacyClient.connect(legacyPort);
    await legacy.request(`${JSON.stringify({ TYPE: 'MESSAGE', TOKEN: SECRETS.HERALD_LEGACY_TOKEN, AID: 1, MESSAGE: { TEXT: 'x' } })}\n`);
    await legacy.request(`${JSON.stringify({ TYPE: 'MESSAGE', TOKEN: 'wrong-legacy-LOGSECRET', AID: 1, MESSAGE: { TEXT: 'x' } })}\n`);
    legacy.socket.destroy();

    child.kill('SIGTERM');
    assert.equal((await exited(child)).code, 0);
    const everything = `${stdout.text()}\n${stderr.text()}`;
    for (const secret of [...Object.values(SECRETS), browserToken, browserToken.split('.')[2]!, 'LOGSECRET']) {
      assert.ok(!everything.includes(secret), `a log line holds ${secret}:\n${everything.split('\n').filter((l) => l.includes(secret)).join('\n')}`);
    }
    assert.ok(stdout.lines.length > 5, stdout.text());
    for (const line of stdout.lines) assert.doesNotThrow(() => JSON.parse(line), `not one JSON object: ${line}`);
  });
});
