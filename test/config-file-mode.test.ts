/**
 * A config file that sets a secret and that users other than Herald's may read is a warning at
 * start, as secrets.json's mode is: docs/deploy.md asks for `root:herald` 0640 and nothing said
 * when the file stayed 0644. Which values count as secrets is what `herald config` masks.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exited, LineReader, runCli, spawnCli } from './helpers/cli.js';
import { skipUnlessCI } from './helpers/capability.js';
import { configFileWarnings, loadOptions } from '../src/server/options.js';

const SECRET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const API_TOKEN = 'api-token-0123456789';

describe('a config file that sets secrets and others may read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-config-mode-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  /** A config file holding `options`, with mode `bits`. */
  const configFile = (options: Record<string, unknown>, bits: number): string => {
    const file = join(dir, `herald-${++n}.json`);
    writeFileSync(file, JSON.stringify(options));
    chmodSync(file, bits);
    return file;
  };
  const warningsFor = (options: Record<string, unknown>, bits: number) => configFileWarnings(loadOptions({ file: configFile(options, bits), env: {} }));

  test('herald start logs one warning naming the file, its secret keys and its mode, never their values', async () => {
    const file = configFile({ apiToken: API_TOKEN, secret: SECRET, port: 0, legacyEnabled: false, dataDir: join(dir, 'data'), logLevel: 'info' }, 0o644);
    const child = spawnCli(['start', '--config', file]);
    const out = new LineReader(child.stdout);
    try {
      await out.next((l) => l.includes('Herald is listening'));
    } finally {
      child.kill('SIGTERM');
      await exited(child);
    }
    const warnings = out.lines.filter((l) => l.includes('sets secrets'));
    assert.equal(warnings.length, 1, out.text());
    assert.match(warnings[0]!, /"level":40/);
    assert.ok(warnings[0]!.includes(`config file ${file} sets secrets (\\"apiToken\\", \\"secret\\") and is readable by other users (mode 0644): chmod 600 it, or 640 with the group Herald runs as`), warnings[0]);
    assert.doesNotMatch(out.text(), new RegExp(`${SECRET}|${API_TOKEN}`));
  });

  test('0600 is quiet, and so is 0640 with Herald\'s own group (deploy.md\'s root:herald)', () => {
    assert.deepEqual(warningsFor({ apiToken: API_TOKEN }, 0o600), []);
    // The file is this process's (mkdtemp, writeFileSync): its group is this process's own.
    assert.deepEqual(warningsFor({ apiToken: API_TOKEN }, 0o640), []);
  });

  const notRoot = process.getuid?.() === 0 ? false : skipUnlessCI('chown to another user or group needs root');
  test('0640 with a group that is not Herald\'s: a warning naming the group', { skip: notRoot }, () => {
    const file = configFile({ legacyToken: 'legacy-token-1' }, 0o640);
    chownSync(file, 0, 65534);
    const [warning, ...rest] = configFileWarnings(loadOptions({ file, env: {} }));
    assert.deepEqual(rest, []);
    assert.match(warning ?? '', /sets secrets \("legacyToken"\) and is readable by other users \(mode 0640, group 65534\): chmod 600 it/);
  });

  // The config file decides what Herald runs and who it lets in (commandsAllow, apiToken,
  // dataDir): a root Herald took one that `nobody` owned and anyone could write, and ran a shell
  // it allowed for the API token it set.
  test('a config file another user owns or may write, or links to, is refused (exit 2), with or without secrets', { skip: notRoot }, async () => {
    const theirs = configFile({ commandsAllow: ['sh'], apiToken: API_TOKEN }, 0o600);
    chownSync(theirs, 65534, 65534);
    const writable = configFile({ commandsAllow: ['sh'] }, 0o666);
    const groupWritable = configFile({ port: 0 }, 0o660);
    chownSync(groupWritable, 0, 65534);
    const link = join(dir, `their-link-${++n}.json`);
    symlinkSync(configFile({ port: 0 }, 0o600), link);
    lchownSync(link, 65534, 65534);
    const openDir = join(dir, `open-${++n}`);
    mkdirSync(openDir);
    chmodSync(openDir, 0o777);
    const inOpenDir = join(openDir, 'herald.json');
    writeFileSync(inOpenDir, '{}', { mode: 0o600 });
    const cases: Array<[string, RegExp]> = [
      [theirs, /is owned by uid 65534, not by this user/],
      [writable, /is writable by other users \(mode 0666/],
      [groupWritable, /is writable by other users \(mode 0660, group 65534\)/],
      [link, /is a symbolic link of uid 65534/],
      [inOpenDir, /which other users may write \(mode 0777\)/],
    ];
    for (const [file, why] of cases) {
      const r = await runCli(['start', '--config', file, '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data-refused')]);
      assert.equal(r.code, 2, `${file}: ${r.stderr}`);
      assert.match(r.stderr, why);
    }
    // A link of this user's to a file of this user's: judged by the file, taken.
    const mine = join(dir, `my-link-${++n}.json`);
    symlinkSync(configFile({ port: 0 }, 0o600), mine);
    assert.equal(loadOptions({ file: mine, env: {} }).port, 0);
  });

  test('each kind of secret counts; what herald config shows as it is does not', () => {
    const secrets: Array<Record<string, unknown>> = [
      { secret: SECRET }, { previousSecret: SECRET }, { apiToken: API_TOKEN }, { legacyToken: 'x' },
      { sqlUrl: 'mysql://herald:PASSWORD@127.0.0.1/abills' }, { sqlUrl: 'postgres://herald@127.0.0.1/panel?password=PASSWORD' },
      { httpResolverUrl: 'https://panel.example.net/session?key=K' }, { httpResolverUrl: 'https://user:PASS@panel.example.net/session' },
      { commandsEnv: ['PATH=/usr/bin', 'PGPASSWORD=P'] },
    ];
    for (const options of secrets) assert.equal(warningsFor(options, 0o644).length, 1, JSON.stringify(options));
    const plain: Array<Record<string, unknown>> = [
      { publicUrl: 'https://panel.example.net/herald', allowedOrigins: ['https://panel.example.net'] },
      { sqlUrl: 'postgres://herald@127.0.0.1/panel' }, { httpResolverUrl: 'https://panel.example.net/session' },
      { commandsEnv: ['PATH=/usr/bin', 'LANG=C.UTF-8', 'LC_ALL=C', 'TZ=UTC'] }, { secret: '' },
    ];
    for (const options of plain) assert.deepEqual(warningsFor(options, 0o644), [], JSON.stringify(options));
  });
});
