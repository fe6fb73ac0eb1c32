/**
 * `herald run` as a child process against a real Herald running real
 * programs (ping 127.0.0.1 only): the id at once, or with --wait the output
 * streamed and the program's status as the exit status.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';

describe('herald run', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['ping'] });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.close());

  test('without --wait: prints the command id and returns at once; the admin is told', async () => {
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const r = await runCli(['run', '--aid', '1', '--timeout', '5', '--id', 'seed', '--', 'ping', '-c', '1', '-q', '127.0.0.1'], { env });
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.ok(id.length > 0 && !id.includes('\n'));
    const done = await tab.next((f) => f?.COMMAND_ID === id && f?.TYPE !== 'COMMAND_PROGRESS', 15000);
    assert.equal(done.ID, 'seed');
    // The audit trail says the CLI asked.
    const info = await s.api('GET', `/api/v1/commands/${id}`);
    assert.equal(info.body.door, 'cli');
    assert.deepEqual(info.body.args, ['-c', '1', '-q', '127.0.0.1']);
    tab.close();
  });

  test('--wait streams the output and exits 0 when the program does', async () => {
    const r = await runCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-c', '2', '-i', '0.2', '127.0.0.1'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 packets transmitted, 2 received/);
    assert.match(r.stderr, /command \S+ succeeded, exit code 0/);
  });

  test('--wait exits with the program\'s own status, and 124 on timeout', async () => {
    const failed = await runCli(['run', '--aid', '1', '--wait', '--', 'ping', '-c', '1', '--no-such-option', '127.0.0.1'], { env });
    assert.equal(failed.code, 2, failed.stderr);
    assert.match(failed.stderr, /failed, exit code 2/);
    const slow = await runCli(['run', '--aid', '1', '--timeout', '500ms', '--wait', '--', 'ping', '-i', '0.2', '-c', '100', '127.0.0.1'], { env });
    assert.equal(slow.code, 124, slow.stderr);
    assert.match(slow.stderr, /timed_out/);
  });

  for (const [signal, status, who] of [['SIGINT', 130, 'Ctrl-C'], ['SIGTERM', 143, 'SIGTERM (a service manager stopping it)']] as const) {
    test(`${who} during --wait cancels the command on the server and exits ${status}`, async () => {
      const child = spawnCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-i', '0.2', '-c', '100', '127.0.0.1'], { env });
      const out = new LineReader(child.stdout);
      const err = new LineReader(child.stderr);
      try {
        await out.next((l) => l.startsWith('PING 127.0.0.1'));
        const id = (await err.next((l) => l.startsWith('command '))).split(' ')[1]!;
        child.kill(signal);
        assert.deepEqual(await exited(child), { code: status, signal: null });
        assert.equal((await s.api('GET', `/api/v1/commands/${id}`)).body.state, 'cancelled');
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  }

  test('without --: everything from the program on is the program\'s (-c is ping\'s count, not herald\'s --config)', async () => {
    const waited = await runCli(['run', '--aid', '1', '--wait', '--poll-ms', '50', 'ping', '-c', '1', '-q', '127.0.0.1'], { env });
    assert.equal(waited.code, 0, waited.stderr);
    assert.match(waited.stdout, /1 packets transmitted, 1 received/);
    // Herald's own options before the command and before the program still count.
    const id = await runCli(['--timeout-ms', '10000', 'run', '--id', 'nosep', '--aid', '1', 'ping', '-c', '1', '--timeout-ms', '127.0.0.1'], { env });
    assert.equal(id.code, 0, id.stderr);
    const info = await s.api('GET', `/api/v1/commands/${id.stdout.trim()}`);
    assert.equal(info.body.taskId, 'nosep');
    assert.deepEqual(info.body.args, ['-c', '1', '--timeout-ms', '127.0.0.1']);
    // A `--` later on is the program's own, and so is every option before it: it ran for admin 2 with ['127.0.0.1'].
    const later = await runCli(['run', '--aid', '1', 'ping', '-c', '1', '--aid', '2', '--', '127.0.0.1'], { env });
    assert.equal(later.code, 0, later.stderr);
    const laterInfo = (await s.api('GET', `/api/v1/commands/${later.stdout.trim()}`)).body;
    assert.equal(laterInfo.aid, 1);
    assert.deepEqual(laterInfo.args, ['-c', '1', '--aid', '2', '--', '127.0.0.1']);
  });

  test('a forbidden program exits 1 with the server\'s code; a missing --aid or program exits 2', async () => {
    const forbidden = await runCli(['run', '--aid', '1', '--', 'cat', '/dev/null'], { env });
    assert.equal(forbidden.code, 1);
    assert.match(forbidden.stderr, /HERALD_ERR_COMMAND_FORBIDDEN/);
    const noAid = await runCli(['run', '--', 'ping', '-c', '1', '127.0.0.1'], { env });
    assert.equal(noAid.code, 2);
    assert.match(noAid.stderr, /--aid/);
    const noProgram = await runCli(['run', '--aid', '1'], { env });
    assert.equal(noProgram.code, 2);
  });
});

// A proxy or a network between the CLI and a Herald that goes on running the command: the CLI
// said it "was most likely stopped" (or gave the bare timeout) and exited 1, and a script that
// ran it again on exit 1 ran the program twice.
describe('herald run --wait that loses its polls while Herald goes on', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000, commandsEnabled: true, commandsAllow: ['ping'] });
  });
  after(() => s.close());

  for (const loss of ['cut', 'unanswered'] as const) {
    test(`polls ${loss}: exit 1, saying the command may still be running and how to see and cancel it`, async () => {
      const target = new URL(s.url);
      let polls = 0;
      // Passes everything to Herald but the polls after the first: their connection is cut, or never answered.
      const proxy = createServer((req, res) => {
        if (req.method === 'GET' && /^\/api\/v1\/commands\/[^/?]+/.test(req.url ?? '') && ++polls > 1) {
          if (loss === 'cut') req.socket.destroy();
          return;
        }
        const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      const env = { HERALD_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, HERALD_API_TOKEN: s.apiToken };
      try {
        // The start goes through too, so the deadline is not the least a loaded machine needs: a cut
        // poll fails at once whatever it is, and one never answered takes it.
        const r = await runCli(['--timeout-ms', loss === 'cut' ? '15000' : '3000', 'run', '--aid', '1', '--wait', '--poll-ms', '50', '--', 'ping', '-i', '0.2', '-c', '100', '-q', '127.0.0.1'], { env, timeoutMs: 30000 });
        assert.equal(r.code, 1, r.stderr);
        const id = /^command (\S+) started/m.exec(r.stderr)?.[1];
        assert.ok(id !== undefined, r.stderr);
        assert.match(r.stderr, new RegExp(`lost Herald at .* while following command ${id} \\(HERALD_ERR_${loss === 'cut' ? 'CONNECTION_LOST' : 'TIMEOUT'}[^\n]*: the command may still be running there`));
        assert.ok(r.stderr.includes(`see how it stands with GET /api/v1/commands/${id} and stop it with POST /api/v1/commands/${id}/cancel`), r.stderr);
        assert.doesNotMatch(r.stderr, /stopped with it/);
        // And so it is.
        assert.equal((await s.api('GET', `/api/v1/commands/${id}`)).body.state, 'running');
        await s.api('POST', `/api/v1/commands/${id}/cancel`);
      } finally {
        proxy.closeAllConnections();
        await new Promise<void>((resolve) => proxy.close(() => resolve()));
      }
    });
  }
});

describe('herald run against something that is not Herald', () => {
  test('the id and the error a server gives are printed without their control characters', async () => {
    // Clears the screen in the id, retitles the window in the error.
    const id = 'c\x1b[2J1';
    const server = createServer((req, res) => {
      req.resume();
      const info = req.method === 'POST'
        ? { id, aid: 1, program: 'ping', args: [], state: 'queued', door: 'cli' }
        : { id, aid: 1, program: 'ping', args: [], state: 'failed', door: 'cli', output: '', outputLength: 0, EXIT_CODE: 3, SIGNAL: null, DURATION_MS: 5, TRUNCATED: false, error: '\x1b]0;pwned\x07boom' };
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' }).end(JSON.stringify(info));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const env = { HERALD_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, HERALD_API_TOKEN: 'whatever-token-123' };
      const [started, waited] = await Promise.all([
        runCli(['run', '--aid', '1', '--', 'ping'], { env }),
        runCli(['run', '--aid', '1', '--wait', '--', 'ping'], { env }),
      ]);
      assert.equal(started.code, 0, started.stderr);
      assert.equal(started.stdout, 'c\\x1b[2J1\n');
      assert.equal(waited.code, 3, waited.stderr);
      assert.doesNotMatch(waited.stderr.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/);
      assert.match(waited.stderr, /command c\\x1b\[2J1 started for admin 1\n/);
      assert.match(waited.stderr, /command c\\x1b\[2J1 failed, exit code 3 after 5 ms: \\x1b\]0;pwned\\x07boom\n/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
