/**
 * The `herald` client commands, as child processes, against a Herald that
 * shuts down under them: the operator is told what became of the request.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gatedStore } from './helpers/gated-store.js';
import { within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';
import { runCli } from './helpers/cli.js';

describe('herald CLI: a server that shuts down', () => {
  test('herald send cut off by the shutdown: exit 1, "may or may not have been sent", and how to resend safely', async () => {
    const gated = gatedStore();
    const s = await startHerald({ shutdownGraceMs: 300, legacyEnabled: false }, { store: gated.store });
    const env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
    try {
      const sending = runCli(['send', '--aid', '1', '--title', 'deploy', '--text', 'in flight', '--ttl', '1h'], { env });
      await within(gated.written(1), 15_000, 'the send to reach the store');
      const closing = s.herald.close();
      const r = await sending;
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /ended before its answer \(is it restarting\?\): the notification to admin 1 may or may not have been sent/);
      assert.match(r.stderr, /give --idempotency-key to make a resend safe/);
      gated.open();
      await within(closing, 10_000, 'close() to end');
    } finally {
      gated.open();
      await s.close();
    }
  });
});
