/**
 * The HTTP API in the log (api/http-api.ts).
 * - A backend that fails to authenticate (no API token, or a wrong one: 401)
 *   was logged at level debug only: at the default level info, invisible.
 *   It is a warning now, five of each cause in 10 s one by one, then one
 *   line counting the rest, with the addresses refused most often.
 * - Every answer carries its request's id in `X-Request-Id`, the `reqId` of
 *   that request's log lines: a backend given a 500 can point to the line.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { startAuthHerald } from './helpers/auth-herald.js';

/** One request; resolves with its status and X-Request-Id. */
function ask(url: string, headers: Record<string, string> = {}): Promise<{ status: number; id: string | undefined }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, id: res.headers['x-request-id'] as string | undefined }));
    }).on('error', reject).end();
  });
}

describe('the HTTP API in the log', () => {
  test('401s are warnings: five of each cause one by one, then one line counting the rest, with the addresses', async () => {
    const h = await startAuthHerald({ store: 'memory' });
    try {
      const base = h.wsUrl.replace('ws:', 'http:');
      for (let i = 0; i < 12; i++) assert.equal((await ask(`${base}/api/v1/ping`, { authorization: 'Bearer wrong-token-of-a-backend' })).status, 401);
      for (let i = 0; i < 3; i++) assert.equal((await ask(`${base}/api/v1/ping`)).status, 401);
      const lines = () => h.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      const warned = lines().filter((l) => l.level === 40 && String(l.msg).startsWith('API request refused'));
      assert.equal(warned.filter((l) => l.msg === 'API request refused: wrong API token (Authorization: Bearer …)').length, 5);
      assert.equal(warned.filter((l) => l.msg === 'API request refused: no API token (Authorization: Bearer …)').length, 3);
      assert.deepEqual({ route: warned[0]!.route, status: warned[0]!.status, ip: warned[0]!.ip }, { route: '/api/v1/ping', status: 401, ip: '127.0.0.1' });
      assert.ok(!h.log().includes('wrong-token-of-a-backend'), 'the token given is never logged');
      await h.close();
      const summary = lines().filter((l) => String(l.msg).startsWith('API requests refused for a missing or wrong API token'));
      assert.equal(summary.length, 1, 'said once, at the latest when the server closes');
      assert.equal(summary[0]!.level, 40);
      assert.deepEqual(summary[0]!.byCause, { 'wrong API token': 7 });
      assert.deepEqual(summary[0]!.addresses, { 'wrong API token': { '127.0.0.1': 7 } });
    } finally {
      await h.close().catch(() => undefined);
    }
  });

  test('every answer names its request id, the reqId of its log lines', async () => {
    const h = await startAuthHerald({ store: 'memory' });
    try {
      const base = h.wsUrl.replace('ws:', 'http:');
      const auth = { authorization: `Bearer ${h.herald.options.apiToken}` };
      const answers = [
        await ask(`${base}/api/v1/ping`, auth),
        await ask(`${base}/api/v1/ping`),
        await ask(`${base}/no-such-route`),
        await ask(`${base}/api/v1/messages/%E0%A4%A`, auth),
        await ask(`${base}/api/v1/online/admin/${'1'.repeat(200)}`, auth),
        await ask(`${base}/healthz`),
      ];
      assert.deepEqual(answers.map((a) => a.status), [200, 401, 404, 400, 400, 200]);
      for (const a of answers) assert.match(a.id ?? '', /^req-[0-9a-z]+$/);
      assert.equal(new Set(answers.map((a) => a.id)).size, answers.length, 'one id a request');
      // The 401's warning and the 404's debug line carry the id their answer named.
      const lines = h.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      assert.equal(lines.find((l) => l.status === 401)?.reqId, answers[1]!.id);
      assert.equal(lines.find((l) => l.status === 404)?.reqId, answers[2]!.id);
      // An id the client sends is not taken for its own.
      const given = await ask(`${base}/healthz`, { 'x-request-id': 'forged' });
      assert.notEqual(given.id, 'forged');
    } finally {
      await h.close();
    }
  });
});
