/**
 * What the configuration lets through, checked at its edges: the modes of the files Herald
 * creates, secrets.json's values, the values and keys an error message repeats, and the ways an
 * option can be left empty or written so that it means something else. `herald` runs as a real
 * child process where the behaviour is the command's (exit status, stderr, files).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv, cliBundle, exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { skipUnlessCI } from './helpers/capability.js';
import { loadOptions } from '../src/server/options.js';

const SECRET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const API_TOKEN = 'api-token-0123456789';
const mode = (path: string) => statSync(path).mode & 0o777;

/** The message loadOptions refuses `input` with (fails the test when it is accepted). */
function refusal(input: Parameters<typeof loadOptions>[0]): string {
  try {
    loadOptions(input);
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('the options were accepted');
}

/** `herald start` on port 0 in `dataDir` until it listens; returns its log lines (stdout) and stops it. */
async function startOnce(dataDir: string, env: Record<string, string> = {}): Promise<string> {
  const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--log-level', 'info'], { env });
  const out = new LineReader(child.stdout);
  try {
    await out.next((l) => l.includes('Herald is listening'));
    return out.text();
  } finally {
    child.kill('SIGTERM');
    await exited(child);
  }
}

describe('the files Herald creates are its user\'s alone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  // The child inherits the umask: 022 is the common default, under which SQLite made its files 0644.
  let umask = 0;
  before(() => { umask = process.umask(0o022); });
  after(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  test('with the secrets configured (none generated), the data dir is 0700 and the store, its -wal, -shm, -lock and the audit file 0600', async () => {
    const dataDir = join(dir, 'configured');
    const logs = await startOnce(dataDir, { HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN });
    assert.ok(!existsSync(join(dataDir, 'secrets.json')), 'nothing generated');
    assert.equal(mode(dataDir), 0o700);
    for (const name of ['herald.sqlite', 'herald.sqlite-lock', 'commands-audit.sqlite']) assert.equal(mode(join(dataDir, name)), 0o600, name);
    assert.doesNotMatch(logs, /open to other users/);
  });

  test('the -wal and -shm SQLite creates while Herald runs are 0600 too', async () => {
    const dataDir = join(dir, 'running');
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy'], { env: { HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN } });
    try {
      await new LineReader(child.stdout).next((l) => l.includes('Herald is listening'));
      for (const name of ['herald.sqlite-wal', 'herald.sqlite-shm']) assert.equal(mode(join(dataDir, name)), 0o600, name);
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
  });

  test('a data dir and a secrets.json that others may read keep their modes, and each is one warning', async () => {
    const dataDir = join(dir, 'open');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    writeFileSync(join(dataDir, 'secrets.json'), JSON.stringify({ secret: SECRET, apiToken: API_TOKEN }));
    chmodSync(join(dataDir, 'secrets.json'), 0o644);
    const logs = await startOnce(dataDir);
    const warnings = logs.split('\n').filter((l) => /open to other users|readable by other users/.test(l));
    assert.equal(warnings.length, 2, logs);
    assert.match(warnings.join('\n'), /"level":40.*the data dir [^"]*open is open to other users \(mode 0755\)/);
    assert.match(warnings.join('\n'), /"level":40.*secrets\.json is readable by other users \(mode 0644\): chmod 600 it/);
    assert.equal(mode(dataDir), 0o755, 'the operator\'s directory is left as it is');
    // What Herald creates inside it is still its own.
    assert.equal(mode(join(dataDir, 'herald.sqlite')), 0o600);
  });
});

describe('secrets.json is held to the rules of a configured secret', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a short secret or apiToken in the file stops start and token with exit 2, naming the file and the key', async () => {
    const cases = [
      [{ secret: 'x', apiToken: 'y' }, /"secret" must be at least 32 characters/],
      [{ secret: SECRET, apiToken: 'y' }, /"apiToken" must be at least 16 characters/],
      [{ secret: SECRET, apiToken: 'a token with spaces' }, /"apiToken" must be printable ASCII/],
    ] as const;
    for (const [i, [stored, why]] of cases.entries()) {
      const dataDir = join(dir, `weak-${i}`);
      mkdirSync(dataDir, { mode: 0o700 });
      writeFileSync(join(dataDir, 'secrets.json'), JSON.stringify(stored), { mode: 0o600 });
      const [start, token] = await Promise.all([
        runCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy', '--store', 'memory']),
        runCli(['token', '--aid', '1', '--data-dir', dataDir]),
      ]);
      for (const r of [start, token]) {
        assert.equal(r.code, 2, r.stdout + r.stderr);
        assert.match(r.stderr, /^herald: invalid configuration: .*weak-\d\/secrets\.json: /);
        assert.match(r.stderr, why);
        assert.equal(r.stdout, '');
      }
    }
  });
});

describe('values refused without repeating a secret', () => {
  test('a legacyToken of spaces on a listener that is not loopback is refused as an empty one', () => {
    for (const token of [' ', '\t  ']) {
      assert.match(refusal({ env: { HERALD_LEGACY_HOST: '10.255.255.1', HERALD_LEGACY_TOKEN: token } }), /"legacyToken" is blank: set a token/);
    }
  });

  // ' 127.0.0.1' read as "legacyHost is  127.0.0.1 (not loopback) …: bind to 127.0.0.1".
  test('a legacyHost with white space around it is quoted and said to have it', () => {
    assert.match(refusal({ env: { HERALD_LEGACY_HOST: ' 127.0.0.1' } }), /option "legacyHost" is " 127\.0\.0\.1" \(not loopback: it has white space around it\)/);
  });

  test('an httpResolverUrl of the wrong type is refused showing the kind of value, not its query', () => {
    const fromOverride = refusal({ env: {}, overrides: { httpResolverUrl: ['http://h/?key=hunter2'] } });
    assert.match(fromOverride, /option "httpResolverUrl" \(command line\): .*got a list \(not shown: it may hold a secret\)$/);
    assert.ok(!fromOverride.includes('hunter2'), fromOverride);
  });

  test('tokenTtlMs is at most 31 days, as an explicit lifetime', () => {
    const max = 31 * 86_400_000;
    assert.equal(loadOptions({ env: { HERALD_TOKEN_TTL_MS: String(max) } }).tokenTtlMs, max);
    for (const ttl of [max + 1, Number.MAX_SAFE_INTEGER]) {
      assert.match(refusal({ env: { HERALD_TOKEN_TTL_MS: String(ttl) } }), new RegExp(`option "tokenTtlMs" \\(environment HERALD_TOKEN_TTL_MS\\): .*≤ ${max}, got ${ttl}`));
    }
  });
});

describe('a first start that fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  let taken: Server;
  before(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    await new Promise((resolve) => taken.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts Herald on a free port until it listens, stops it; its stderr. */
  async function startStop(dataDir: string): Promise<string> {
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy']);
    const stderr = new LineReader(child.stderr);
    try {
      await new LineReader(child.stdout).next((l) => l.includes('Herald is listening'));
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    return stderr.text();
  }

  const keys = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, 'secrets.json'), 'utf8')) as { secret: string; apiToken: string };

  test('keeps the secrets it generated, and the next start says where they are; the one after does not', async () => {
    // It once removed them, so that the next start would generate new ones and say so; but a
    // start beside it may have read them by then, and ran on with keys that no file held.
    const dataDir = join(dir, 'data');
    const port = (taken.address() as AddressInfo).port;
    const failed = await runCli(['start', '--data-dir', dataDir, '--port', String(port), '--no-legacy']);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    assert.match(failed.stderr, /^herald: cannot listen: .*EADDRINUSE/);
    assert.doesNotMatch(failed.stderr, /Herald generated/, 'the notice is printed once Herald listens');
    const kept = keys(dataDir);
    assert.equal(kept.secret.length, 43);
    assert.equal(readFileSync(join(dataDir, 'secrets.json.notice'), 'utf8'), 'secret\napiToken\n');
    assert.match(await startStop(dataDir), /Herald generated its token-signing secret and API token in /);
    assert.deepEqual(keys(dataDir), kept, 'the same keys');
    assert.ok(!existsSync(join(dataDir, 'secrets.json.notice')));
    assert.doesNotMatch(await startStop(dataDir), /Herald generated/);
  });

  test('a secrets.json it completed keeps what it completed, and the next start says so', async () => {
    const dataDir = join(dir, 'half');
    mkdirSync(dataDir, { mode: 0o700 });
    writeFileSync(join(dataDir, 'secrets.json'), `${JSON.stringify({ secret: SECRET })}\n`, { mode: 0o600 });
    const port = (taken.address() as AddressInfo).port;
    const failed = await runCli(['start', '--data-dir', dataDir, '--port', String(port), '--no-legacy']);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const kept = keys(dataDir);
    assert.equal(kept.secret, SECRET);
    assert.equal(kept.apiToken.length, 32);
    const notice = await startStop(dataDir);
    assert.match(notice, /Herald generated its API token in /);
    assert.deepEqual(keys(dataDir), kept);
  });

  test('a notice owed of a key that is now configured is not printed: the file does not hold the key in use', async () => {
    const dataDir = join(dir, 'configured');
    const port = (taken.address() as AddressInfo).port;
    assert.equal((await runCli(['start', '--data-dir', dataDir, '--port', String(port), '--no-legacy'])).code, 1);
    const child = spawnCli(['start', '--data-dir', dataDir, '--port', '0', '--no-legacy'], { env: { HERALD_API_TOKEN: 'a-configured-api-token-0123' } });
    const stderr = new LineReader(child.stderr);
    try {
      await new LineReader(child.stdout).next((l) => l.includes('Herald is listening'));
      await stderr.next((l) => l.includes('Herald generated its token-signing secret in '));
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    assert.doesNotMatch(stderr.text(), /API token in|HERALD_API_TOKEN=/);
  });
});

describe('configuration errors on the terminal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  // ESC (C0) and CSI (C1, U+009B): either starts a sequence the terminal acts on.
  const noControl = (text: string) => assert.ok(!/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(text), JSON.stringify(text));

  test('a config file key, a --set key and a value with control characters are shown escaped', async () => {
    const file = join(dir, 'escape.json');
    writeFileSync(file, '{"port\\u001b[2J": 1}');
    const [fromFile, fromSet, fromEnv] = await Promise.all([
      runCli(['config', '--config', file]),
      runCli(['start', '--set', 'x\u001b[31mRED=1', '--data-dir', join(dir, 'data')]),
      runCli(['config', '--data-dir', join(dir, 'data')], { env: { HERALD_PORT: '\u009b31m' } }),
    ]);
    for (const r of [fromFile, fromSet, fromEnv]) {
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /^herald: invalid configuration: /);
      noControl(r.stderr);
    }
    assert.match(fromFile.stderr, /unknown option "port\\u001b\[2J"/);
    assert.match(fromSet.stderr, /unknown option "x\\u001b\[31mRED"/);
    assert.match(fromEnv.stderr, /option "port" \(environment HERALD_PORT\): .*got "\\x9b31m"/);
  });
});

describe('options left empty, or written to mean something else', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('HERALD_CONFIG= (empty or blank) is refused, as --config \'\' is', async () => {
    for (const value of ['', ' ']) {
      const r = await runCli(['config', '--data-dir', join(dir, 'data')], { env: { HERALD_CONFIG: value } });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.stderr, 'herald: invalid configuration: HERALD_CONFIG is empty: unset it, or name the config file\n');
      assert.equal(r.stdout, '');
    }
  });

  test('an integer in the environment is plain decimal: hex, binary, octal and exponents are refused as --port refuses them', () => {
    for (const raw of ['0xA4D2', '0b1', '0o17', '1e3', '1.5']) {
      assert.match(refusal({ env: { HERALD_PORT: raw } }), new RegExp(`option "port" \\(environment HERALD_PORT\\): .*got "${raw.replace('.', '\\.')}"$`));
    }
    // A number option takes a fraction, in decimal only.
    assert.equal(loadOptions({ env: { HERALD_COMMANDS_TIMEOUT_SEC: '1.5' } }).commandsTimeoutSec, 1.5);
    assert.match(refusal({ env: { HERALD_COMMANDS_TIMEOUT_SEC: '0x10' } }), /option "commandsTimeoutSec" .*got "0x10"$/);
  });

  test('an integer in the environment is written as a flag takes it: spaces, a leading zero and -0 are refused naming the variable', () => {
    // `070` was 70 (--port 070 exits 2: octal?), ` 5000 ` was 5000 (--port ' 5000 ' exits 2), `-0` was 0: a random port.
    for (const raw of ['070', ' 5000 ', '5000 ', '-0', '+5000', '00', '']) {
      assert.equal(refusal({ env: { HERALD_PORT: raw } }), `option "port" (environment HERALD_PORT): expected an integer ≥ 0 and ≤ 65535 in plain decimal digits, as a flag takes it (no spaces, leading zero, sign, exponent or hex), got ${JSON.stringify(raw)}`);
    }
    for (const raw of ['00.5', '.5', '1.', '-0.0', ' 1.5']) {
      assert.match(refusal({ env: { HERALD_COMMANDS_TIMEOUT_SEC: raw } }), new RegExp(`^option "commandsTimeoutSec" \\(environment HERALD_COMMANDS_TIMEOUT_SEC\\): expected a number ≥ 0\\.001 and ≤ 604800 in plain decimal digits`), raw);
    }
    // A minus before another number is read as the number: the option's range says why it is refused.
    assert.match(refusal({ env: { HERALD_PORT: '-5' } }), /^option "port" \(environment HERALD_PORT\): Expected integer to be greater or equal to 0; .*got -5$/);
    assert.match(refusal({ env: { HERALD_COMMANDS_TIMEOUT_SEC: '-0.5' } }), /^option "commandsTimeoutSec" \(environment HERALD_COMMANDS_TIMEOUT_SEC\): .*got -0\.5$/);
    // What a flag takes is taken.
    assert.deepEqual(
      [loadOptions({ env: { HERALD_PORT: '0' } }).port, loadOptions({ env: { HERALD_PORT: '8080' } }).port, loadOptions({ env: { HERALD_COMMANDS_TIMEOUT_SEC: '0.25' } }).commandsTimeoutSec],
      [0, 8080, 0.25],
    );
  });

  test('HERALD_PORT=070 stops herald start with exit 2, naming the variable, as --port 070 does', async () => {
    const [env, flag] = await Promise.all([
      runCli(['start', '--no-legacy', '--data-dir', join(dir, 'data')], { env: { HERALD_PORT: '070' } }),
      runCli(['start', '--port', '070', '--no-legacy', '--data-dir', join(dir, 'data')]),
    ]);
    assert.equal(env.code, 2, env.stdout + env.stderr);
    assert.equal(env.stderr, 'herald: invalid configuration: option "port" (environment HERALD_PORT): expected an integer ≥ 0 and ≤ 65535 in plain decimal digits, as a flag takes it (no spaces, leading zero, sign, exponent or hex), got "070"\n');
    assert.equal(flag.code, 2, flag.stdout + flag.stderr);
  });

  test('an empty sqliteFile, or one that is a directory, is a configuration error naming it (exit 2)', async () => {
    const dataDir = join(dir, 'store');
    mkdirSync(join(dataDir, 'a-directory'), { recursive: true });
    const env = { HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN };
    const [blank, directory] = await Promise.all([
      runCli(['start', '--port', '0', '--no-legacy', '--data-dir', dataDir], { env: { ...env, HERALD_SQLITE_FILE: ' ' } }),
      runCli(['start', '--port', '0', '--no-legacy', '--data-dir', dataDir, '--set', 'sqliteFile=a-directory'], { env }),
    ]);
    assert.equal(blank.code, 2, blank.stdout + blank.stderr);
    assert.match(blank.stderr, /^herald: invalid configuration: option "sqliteFile" is empty/);
    assert.equal(directory.code, 2, directory.stdout + directory.stderr);
    assert.match(directory.stderr, /^herald: invalid configuration: option "sqliteFile" names a directory, .*a-directory: name a file/);
    // A memory store never opens it.
    assert.equal(loadOptions({ env: { HERALD_STORE: 'memory', HERALD_SQLITE_FILE: '' } }).sqliteFile, '');
  });

  test('herald help with an unknown command says so, as herald with one does', async () => {
    const r = await runCli(['help', 'nope']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: unknown command 'nope'/);
    const known = await runCli(['help', 'send']);
    assert.equal(known.code, 0, known.stderr);
    assert.match(known.stdout, /^Usage: herald send/);
  });
});

// A link's own mode is always 0777: lstat of the config file's directory refused every config
// file reached through a linked directory (/etc/herald leading to a release directory, made by
// configuration management) and every `--config <(…)`, whose /dev/fd is root's link to
// /proc/self/fd, as "in a directory other users may write". docs/cli.md: such a link is judged
// by what it leads to.
describe('a config file in a directory reached through a symbolic link', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-hardening-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  /** A directory `name` (mode `bits`) holding herald.json, and a link `name-link` to it; returns the file's path through the link. */
  const linkedConfig = (name: string, bits: number, options: Record<string, unknown>): string => {
    const real = join(dir, name);
    mkdirSync(real);
    chmodSync(real, bits);
    writeFileSync(join(real, 'herald.json'), JSON.stringify(options), { mode: 0o600 });
    symlinkSync(name, join(dir, `${name}-link`));
    return join(dir, `${name}-link`, 'herald.json');
  };

  test('a link of this user\'s is judged by the directory it leads to: taken when that is this user\'s alone, refused when others may write it', async () => {
    const taken = await runCli(['config', '--config', linkedConfig('mine', 0o700, { port: 29529 })]);
    assert.equal(taken.code, 0, taken.stderr);
    assert.match(taken.stdout, /"port": 29529/);
    const open = linkedConfig('open', 0o777, { port: 0 });
    const refused = await runCli(['config', '--config', open]);
    assert.equal(refused.code, 2, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /which other users may write \(mode 0777\)/);
  });

  test('--config <(…) (process substitution: /dev/fd/N) is taken', async () => {
    const script = `exec "$0" "$1" config --config <(echo '{"port":29530}')`;
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      const child = execFile('bash', ['-c', script, process.execPath, cliBundle()], { env: cleanEnv(), timeout: 20000 }, (error, out, err) => {
        resolve({ stdout: out, stderr: err, code: error === null ? 0 : (child.exitCode ?? -1) });
      });
    });
    assert.equal(code, 0, stderr);
    assert.match(stdout, /"port": 29530/);
  });

  const notRoot = process.getuid?.() === 0 ? false : skipUnlessCI('lchown to another user needs root');
  test('a link of another user\'s is refused (exit 2): that user could point it at a directory of theirs', { skip: notRoot }, async () => {
    const file = linkedConfig('theirs', 0o700, { port: 0 });
    lchownSync(join(dir, 'theirs-link'), 65534, 65534);
    const r = await runCli(['start', '--config', file, '--port', '0', '--no-legacy', '--store', 'memory', '--data-dir', join(dir, 'data')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /is in .*theirs-link, a symbolic link of uid 65534, not of this user or root/);
  });
});
