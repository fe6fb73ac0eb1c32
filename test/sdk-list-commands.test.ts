/**
 * The SDK's listCommands() against a server with default settings: eleven
 * recent commands whose output is binary (a NUL byte is `\u0000` in JSON, six
 * characters) made GET /api/v1/commands answer 69 MB, past the SDK's default
 * maxAnswerBytes (64 MiB), and the call failed for good with
 * HERALD_ERR_BAD_RESPONSE. It now asks for the list without outputs
 * (`?output=false`); commandStatus still gives each one's (docs/sdk.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './helpers/server.js';
import { BrowserSender } from '../src/sdk/index.js';

test('listCommands() with default options reads a default server\'s list, without outputs; GET /commands keeps them unless asked', async () => {
  const s = await startHerald({ store: 'memory', commandsAllow: ['head'], commandsConcurrency: 4, commandsPerAdminConcurrency: 4 });
  try {
    const sdk = new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs: 30_000 });
    const ids: string[] = [];
    for (let i = 0; i < 11; i++) ids.push(await sdk.runInBackground('head', { aid: 1, args: ['-c', '1048576', '/dev/zero'] }) as string);
    for (const id of ids) assert.equal((await sdk.commandStatus(id, { wait: 30 }))?.state, 'succeeded');

    const listed = await sdk.listCommands();
    assert.deepEqual(listed.map((c) => c.id), [...ids].reverse());
    for (const c of listed) {
      assert.equal('output' in c, false, 'no output in the list');
      assert.equal(c.state, 'succeeded');
    }
    assert.equal((await sdk.listCommands(2)).length, 2);
    // The output is one commandStatus away.
    assert.equal((await sdk.commandStatus(ids[0]!))?.output.length, 1048576);

    // The route's default is unchanged: with outputs.
    const whole = await s.api('GET', '/api/v1/commands?limit=1');
    assert.equal(whole.status, 200);
    assert.equal(whole.body.commands[0].output.length, 1048576);
    const without = await s.api('GET', '/api/v1/commands?limit=1&output=false');
    assert.equal('output' in without.body.commands[0], false);
    assert.equal(without.body.commands[0].id, ids.at(-1));
  } finally {
    await s.close();
  }
});
