/**
 * The numbers of `herald`'s flags are read one way: decimal digits, within
 * what the flag can use. Number() also read `0x10`, `1e3`, `1.5`, ` 5000 `
 * and `070` (as 70); a --poll-ms past a timer's bound polled every 1 ms. Each
 * is a usage error (exit 2) naming the flag, before anything is attempted.
 * The CLI as a child process; an address where nothing listens, so that a
 * value let through shows as an attempt (exit 1), not a usage error.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const NOT_DECIMAL = ['0x10', '1e3', '1.5', ' 5000 ', '070', '+5', '-5', ''];

describe('herald flags that take a number', () => {
  let env: Record<string, string>;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'herald-cli-flags-'));
    env = { HERALD_URL: `http://127.0.0.1:${await closedPort()}`, HERALD_API_TOKEN: 'a-token-of-sixteen-or-more', HERALD_DATA_DIR: dataDir };
  });
  after(() => rmSync(dataDir, { recursive: true, force: true }));

  test('--timeout-ms: anything but decimal digits exits 2 naming the flag', async () => {
    const results = await Promise.all(NOT_DECIMAL.map((v) => runCli(['ping', '--timeout-ms', v], { env })));
    NOT_DECIMAL.forEach((v, i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${JSON.stringify(v)}: ${r.stderr}`);
      assert.equal(r.stderr, `herald: --timeout-ms must be a positive number of milliseconds up to 2147483647, written in decimal digits (no sign, fraction, exponent, leading zero or spaces), got ${JSON.stringify(v)}\n`);
    });
    const zero = await runCli(['ping', '--timeout-ms', '0'], { env });
    assert.equal(zero.code, 2, zero.stderr);
    assert.equal(zero.stderr, 'herald: --timeout-ms must be a positive number of milliseconds up to 2147483647, got "0"\n');
  });

  test('--poll-ms: past 2147483647 (a timer then fires after 1 ms), under 10, or not decimal digits exits 2', async () => {
    const cases = ['2147483648', '3000000000', '9', ...NOT_DECIMAL];
    const results = await Promise.all(cases.map((v) => runCli(['run', '--aid', '1', '--wait', '--poll-ms', v, '--', 'ping', '-c', '1', '127.0.0.1'], { env })));
    cases.forEach((v, i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${JSON.stringify(v)}: ${r.stderr}`);
      assert.match(r.stderr, /^herald: --poll-ms must be a number of milliseconds (from 10 )?up to 2147483647, /, v);
    });
    // The bound itself is a value: the run is attempted (and fails: nothing listens).
    const most = await runCli(['run', '--aid', '1', '--wait', '--poll-ms', '2147483647', '--', 'ping', '-c', '1', '127.0.0.1'], { env });
    assert.equal(most.code, 1, most.stderr);
    assert.match(most.stderr, /cannot reach Herald/);
  });

  test('start --port and --legacy-port: decimal digits only (00, " 0 " and 0x10 are refused before anything starts)', async () => {
    for (const [flag, value] of [['--port', '00'], ['--port', ' 0 '], ['--port', '0x10'], ['-p', '1e3'], ['--legacy-port', '070']] as const) {
      const r = await runCli(['start', '--data-dir', dataDir, flag, value, '--store', 'memory'], { env, timeoutMs: 10000 });
      assert.equal(r.code, 2, `${flag} ${JSON.stringify(value)}: ${r.stderr}`);
      const named = flag === '-p' ? '--port' : flag;
      assert.equal(r.stderr, `herald: ${named} must be a port number, written in decimal digits (no sign, fraction, exponent, leading zero or spaces), got ${JSON.stringify(value)}\n`);
    }
  });

  // The server keeps a TTL in whole milliseconds, rounded: 0.4ms became 0, a live-only send, while
  // the CLI said and advised as for a stored one.
  test('send --ttl: a non-zero duration under a millisecond exits 2 naming the flag; 0 and 1ms are sent', async () => {
    for (const value of ['0.4ms', '0.0004', '0.9ms']) {
      const r = await runCli(['send', '--aid', '1', '--text', 'hi', '--ttl', value], { env });
      assert.equal(r.code, 2, `${value}: ${r.stderr}`);
      assert.equal(r.stderr, `herald: --ttl ${value} is under a millisecond, the unit Herald keeps a TTL in: it would be taken as 0, a send to the tabs open now only; give --ttl 0 for that, or at least 1ms\n`);
    }
    for (const value of ['0', '1ms', '0.001', '1.5ms']) {
      const r = await runCli(['send', '--aid', '1', '--text', 'hi', '--ttl', value], { env });
      assert.equal(r.code, 1, `${value}: ${r.stderr}`);
      assert.match(r.stderr, /cannot reach Herald/);
    }
  });

  test('token --ttl: its message does not offer 0, which it refuses', async () => {
    const r = await runCli(['token', '--aid', '1', '--ttl', 'soon'], { env: { ...env, HERALD_SECRET: 'a'.repeat(32) } });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'herald: --ttl must be a duration such as 90s, 15m, 1h or 2d; got "soon"\n');
  });
});
