/**
 * How `herald start` refuses a configuration, as the operator reads it: a
 * data dir that is a file is said to be one (the SQLite store's start ended
 * in a stack trace), and every refused value names where it came from — the
 * config file, the environment variable, the command line — as the schema's
 * own errors do (README: "naming the key, where it came from, and what was
 * expected"), for the checks of options against each other and for those
 * the parts of Herald make once the options are loaded.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createHerald } from '../src/server/herald.js';
import { loadOptions } from '../src/server/options.js';
import { runCli } from './helpers/cli.js';

const SECRET = 'x'.repeat(40);
const API_TOKEN = 'ops-start-errors-token-0123';
/** The secrets configured, so that nothing but the store (and the audit trail) touches the data dir. */
const SECRETS = { HERALD_SECRET: SECRET, HERALD_API_TOKEN: API_TOKEN };

const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('a data dir that is a regular file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-ops-start-'));
  const file = join(dir, 'afile');
  writeFileSync(file, 'x\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const start = (args: string[], env: Record<string, string> = SECRETS) =>
    runCli(['start', '--port', '0', '--no-legacy', ...args], { env, cwd: dir });

  test('herald start, with either store, the secrets configured or not, or the data dir below the file: one line saying so, naming where the value came from; exit 1 as other failed starts, no stack trace', async () => {
    const cases = [
      { args: ['--data-dir', file], env: SECRETS, from: 'set on the command line' },
      { args: ['--data-dir', file, '--store', 'memory'], env: SECRETS, from: 'set on the command line' },
      { args: [], env: { ...SECRETS, HERALD_DATA_DIR: file }, from: 'set in environment HERALD_DATA_DIR' },
      { args: ['--data-dir', file], env: {}, from: 'set on the command line' },
      { args: ['--data-dir', join(file, 'data')], env: SECRETS, from: 'set on the command line', under: true },
    ];
    const results = await Promise.all(cases.map((c) => start(c.args, c.env)));
    for (const [i, r] of results.entries()) {
      const c = cases[i]!;
      const what = JSON.stringify(c);
      assert.equal(r.code, 1, `${what}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
      assert.match(r.stderr, new RegExp(`^herald: cannot start: the data dir ${escaped(file)} is a file, not a directory${c.under ? ', and .* would be under it' : ''} \\(option "dataDir", ${escaped(c.from)}\\): name a directory; Herald creates it when it is missing\\n$`), what);
    }
  });

  test('createHerald (Herald embedded in a program) refuses it as a configuration error naming dataDir, or sqliteFile when its own path runs through the file', async () => {
    const options = (overrides: Record<string, unknown>) => loadOptions({ env: {}, overrides: { host: '127.0.0.1', port: 0, legacyEnabled: false, secret: SECRET, apiToken: API_TOKEN, logLevel: 'silent', ...overrides } });
    await assert.rejects(createHerald(options({ dataDir: file })), {
      code: 'HERALD_ERR_CONFIG', message: new RegExp(`^option "dataDir": ${escaped(file)} is a file, not a directory: name a directory`),
    });
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    await assert.rejects(createHerald(options({ dataDir, sqliteFile: join(file, 'herald.sqlite') })), {
      code: 'HERALD_ERR_CONFIG', message: new RegExp(`^option "sqliteFile": ${escaped(join(file, 'herald.sqlite'))} cannot be made: ${escaped(file)} is a file, not a directory \\(set on the command line\\)$`),
    });
  });
});

describe('where a refused value came from', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-ops-sources-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('options that are wrong alone or together, checked as they are loaded: each message ends naming the source of every value in it', () => {
    const config = join(dir, 'herald.json');
    writeFileSync(config, JSON.stringify({ apiToken: 'short', defaultTtlMs: 5000 }));
    const cases = [
      [{ env: { HERALD_SECRET: 'too-short' } }, /^option "secret" must be at least 32 characters \(set in environment HERALD_SECRET\)$/],
      [{ env: {}, file: config }, new RegExp(`^option "apiToken" must be at least 16 characters \\(set in config file ${escaped(config)}\\)$`)],
      [{ env: { HERALD_HOST: ' ' } }, /^option "host" is empty: .* \(set in environment HERALD_HOST\)$/],
      [{ env: {}, overrides: { dataDir: '' } }, /^option "dataDir" is empty: .* \(set on the command line\)$/],
      [{ env: { HERALD_MAX_TTL_MS: '1000', HERALD_SECRET: SECRET }, file: config, overrides: { apiToken: API_TOKEN } },
        new RegExp(`^option "defaultTtlMs" \\(5000\\) exceeds "maxTtlMs" \\(1000\\) \\("defaultTtlMs" set in config file ${escaped(config)}, "maxTtlMs" set in environment HERALD_MAX_TTL_MS\\)$`)],
      [{ env: { HERALD_ADMIN_PORT: '19443' } }, /^options "port" and "adminPort" are both 19443 on 127\.0\.0\.1: each listener needs a port of its own \("port" its default, "adminPort" set in environment HERALD_ADMIN_PORT\)$/],
      [{ env: { HERALD_AUTH_RESOLVER: 'http' } }, /^option "authResolver" is http but "httpResolverUrl" is not .* \("authResolver" set in environment HERALD_AUTH_RESOLVER, "httpResolverUrl" its default\)$/],
    ] as const;
    for (const [input, message] of cases) {
      assert.throws(() => loadOptions(input as Parameters<typeof loadOptions>[0]), { code: 'HERALD_ERR_CONFIG', message }, JSON.stringify(input));
    }
  });

  test('herald start: a value a part of Herald refuses once loaded (publicUrl, allowedOrigins, commandsArgRules, commandsNotes) names its source too', async () => {
    const config = join(dir, 'rules.json');
    writeFileSync(config, JSON.stringify({ commandsAllow: ['ping'], commandsArgRules: ['ping=('] }));
    const run = (args: string[], env: Record<string, string> = {}) =>
      runCli(['start', '--port', '0', '--no-legacy', '--data-dir', join(dir, 'data'), ...args], { env: { ...SECRETS, ...env } });
    const [publicUrl, origins, rules, notes] = await Promise.all([
      run(['--public-url', 'ftp://panel.example.net/herald']),
      run([], { HERALD_ALLOWED_ORIGINS: 'panel.example.net' }),
      run(['--config', config]),
      run([], { HERALD_COMMANDS_NOTES: '["exitStatus=[код {cdoe}]"]' }),
    ]);
    assert.equal(publicUrl.code, 2, publicUrl.stderr);
    assert.match(publicUrl.stderr, /^herald: invalid configuration: option "publicUrl": "ftp:\/\/panel\.example\.net\/herald" is not a URL like .* \(set on the command line\)\n$/);
    assert.equal(origins.code, 2, origins.stderr);
    assert.match(origins.stderr, /^herald: invalid configuration: option "allowedOrigins": "panel\.example\.net" is not an origin .* \(set in environment HERALD_ALLOWED_ORIGINS\)\n$/);
    assert.equal(rules.code, 2, rules.stderr);
    assert.match(rules.stderr, new RegExp(`^herald: invalid configuration: option "commandsArgRules": bad regular expression for "ping": .* \\(set in config file ${escaped(config)}\\)\\n$`));
    assert.equal(notes.code, 2, notes.stderr);
    assert.match(notes.stderr, /^herald: invalid configuration: option "commandsNotes": entry 1 \("exitStatus"\) has the placeholder \{cdoe\}, which it does not fill: it has \{code\} \(set in environment HERALD_COMMANDS_NOTES\)\n$/);
  });
});
