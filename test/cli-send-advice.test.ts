/**
 * What `herald send` tells the operator when an answer was lost on the way
 * (a real Herald behind a real TCP relay that loses the first answer), and
 * that a client command whose reader went away (`| head -1`) exits quietly.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { exited, runCli, spawnCli } from './helpers/cli.js';
import { answerLosingRelay } from './helpers/answer-losing-relay.js';
import { startHerald, type TestServer } from './helpers/server.js';


describe('herald send after a lost answer', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000 });
  });
  after(() => s.close());

  async function sendThroughRelay(args: readonly string[]) {
    const relay = await answerLosingRelay(Number(new URL(s.url).port));
    try {
      return await runCli(['send', '--aid', '7', ...args], { env: { HERALD_URL: relay.url, HERALD_API_TOKEN: s.apiToken } });
    } finally {
      await relay.close();
    }
  }

  for (const [name, args] of [
    ['--ttl 0', ['--text', 'live only', '--ttl', '0', '--idempotency-key', 'k-live']],
    ['a plain-string message', ['--json', '"just a string"', '--idempotency-key', 'k-string']],
  ] as const) {
    test(`a keyed live-only send (${name}) is not promised "delivered once": its key does not survive a restart`, async () => {
      const r = await sendThroughRelay(args);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /may or may not have been sent/);
      assert.match(r.stderr, /does not survive a restart/);
      assert.match(r.stderr, /only if the server has not restarted since/);
      assert.doesNotMatch(r.stderr, /: it is delivered once/);
    });
  }

  test('a keyed stored send is promised "delivered once" only while the server keeps the key', async () => {
    // Without --ttl the SDK does not repeat it (the server's defaultTtlMs may be 0): the CLI advises.
    const r = await sendThroughRelay(['--text', 'default ttl', '--idempotency-key', 'k-default']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /send it again with the same --idempotency-key: it is delivered once while the server keeps the key \(for the server's defaultTtlMs \(not at all if that is 0\); with the memory store, not across a restart\)/);
  });

  test('a keyed send the SDK repeated by itself says the first attempt sent it, not "delivered to 0 tabs … not sent again"', async () => {
    const tab = await s.tab('admin', 7);
    try {
      await tab.nextOfType('WELCOME');
      const r = await sendThroughRelay(['--title', 'once', '--text', 'repeated', '--ttl', '1h', '--idempotency-key', 'k-repeated']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^admin 7: sent by the first attempt, whose answer was lost \(the automatic repeat was recognised by its --idempotency-key and not delivered again\)/);
      assert.doesNotMatch(r.stdout, /delivered to 0 tabs/);
      assert.equal((await tab.next((f) => f?.TEXT === 'repeated', 10_000)).TITLE, 'once');
    } finally {
      tab.close();
    }
  });
});

describe('a client command whose output nobody reads any more', () => {
  test('herald status with its stdout closed (| head -1) exits 0 without a word, not with an EPIPE stack trace', async () => {
    const s = await startHerald({ legacyEnabled: false });
    try {
      const child = spawnCli(['status'], { env: { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken } });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
      // The reader is gone before the first line is written: every write meets EPIPE.
      child.stdout.destroy();
      assert.deepEqual(await exited(child), { code: 0, signal: null }, stderr);
      assert.equal(stderr, '');
    } finally {
      await s.close();
    }
  });

  test('herald run with its stdout closed exits 0 without a word: the id, and with --wait the output as it comes', async () => {
    const s = await startHerald({ legacyEnabled: false, commandsEnabled: true, commandsAllow: ['ping'] });
    try {
      for (const wait of [[], ['--wait', '--poll-ms', '50']]) {
        const child = spawnCli(['run', '--aid', '1', ...wait, '--', 'ping', '-c', '3', '-i', '0.2', '127.0.0.1'], { env: { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken } });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
        child.stdout.destroy();
        assert.deepEqual(await exited(child), { code: 0, signal: null }, stderr);
        // --wait says on stderr that the command started (not output, so still written).
        assert.doesNotMatch(stderr, /EPIPE|Error/, stderr);
      }
    } finally {
      await s.close();
    }
  });
});
