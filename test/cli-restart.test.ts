/**
 * The `herald` client commands, as child processes, against a Herald that
 * shuts down under them: the operator is told what became of the request.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gatedStore } from './helpers/gated-store.js';
import { within } from './helpers/legacy-client.js';
import { startHerald } from './helpers/server.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { restartablePort } from './helpers/ports.js';

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

  test('herald run --wait whose command the server\'s shutdown cancelled: exit 1 saying so, not 130 (the Ctrl-C status)', async () => {
    const s = await startHerald({ commandsEnabled: true, commandsAllow: ['ping'], legacyEnabled: false });
    const child = spawnCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-i', '0.2', '-c', '100', '127.0.0.1'], { env: { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken } });
    const out = new LineReader(child.stdout);
    const err = new LineReader(child.stderr);
    try {
      await out.next((l) => l.startsWith('PING 127.0.0.1'));
      const id = (await err.next((l) => l.startsWith('command '))).split(' ')[1]!;
      // The runner's part of a shutdown (Herald.close stops commands while its HTTP server
      // closes): the HTTP API stays up here, so the CLI's next poll sees the final state that
      // a poll in flight during a real shutdown sees.
      await s.herald.commands!.close();
      assert.deepEqual(await exited(child, 20_000), { code: 1, signal: null });
      const said = err.text();
      assert.match(said, new RegExp(`command ${id} cancelled.*: server shutting down`));
      assert.match(said, new RegExp(`command ${id} was stopped by the server's shutdown`));
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await s.close();
    }
  });

  // 'same data dir': a restart as in production, whose audit trail holds the command's end;
  // 'new data dir': a new server with no record of it; 'for good': nothing comes back.
  for (const restart of ['same data dir', 'new data dir', 'for good'] as const) {
    const restarted = restart !== 'for good';
    test(`herald run --wait when the server shuts down${restarted ? ` and a new one starts on its port (${restart})` : ' for good'}: exit 1, saying the command was stopped with it (or, the server out of reach, may have been)`, async () => {
      const port = await restartablePort();
      const dataDir = mkdtempSync(join(tmpdir(), 'herald-cli-restart-'));
      const secrets = { secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url') };
      const commands = { commandsEnabled: true, commandsAllow: ['ping'], legacyEnabled: false };
      const old = await startHerald({ port, ...commands }, { ...secrets, dataDir });
      let fresh: Awaited<ReturnType<typeof startHerald>> | undefined;
      const child = spawnCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-i', '0.2', '-c', '100', '127.0.0.1'], { env: { HERALD_URL: old.url, HERALD_API_TOKEN: secrets.apiToken } });
      const out = new LineReader(child.stdout);
      const err = new LineReader(child.stderr);
      try {
        await out.next((l) => l.startsWith('PING 127.0.0.1'));
        const id = (await err.next((l) => l.startsWith('command '))).split(' ')[1]!;
        await old.herald.close();
        if (restarted) fresh = await startHerald({ port, ...commands }, restart === 'same data dir' ? { ...secrets, dataDir } : secrets);
        assert.deepEqual(await exited(child, 20_000), { code: 1, signal: null });
        const said = err.text();
        if (restart === 'same data dir') {
          // The new server answers from the audit trail: the final state, not a guess.
          assert.match(said, new RegExp(`command ${id} cancelled, signal SIGTERM after \\d+ ms: server shutting down`));
          assert.match(said, /restarted: this is the command's final record from its audit trail, which does not keep output/);
          assert.match(said, new RegExp(`command ${id} was stopped by the server's shutdown`));
          assert.doesNotMatch(said, /no longer known/);
        } else if (restart === 'new data dir') {
          assert.match(said, new RegExp(`command ${id} is no longer known to Herald at .*: the server restarted, which stops every command it ran.*nor does its audit trail`));
        } else {
          // Stopped, said only when the server answered that it is shutting down; a server out of
          // reach may be one behind a cut network, still running the command.
          assert.match(said, new RegExp(`Herald at .* is shutting down \\(HERALD_ERR_SHUTTING_DOWN[^)]*attempts in \\d+ ms\\)\\), which stops every command it runs: command ${id} was stopped with it|lost Herald at .* while following command ${id} \\(HERALD_ERR_UNREACHABLE[^)]*attempts in \\d+ ms\\)\\): the command may still be running there \\(unless that server shut down`));
        }
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await old.close();
        await fresh?.close();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }
});
