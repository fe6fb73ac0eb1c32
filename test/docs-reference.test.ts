/**
 * The reference docs name every CLI flag, every HTTP route and every SDK
 * method that exists, and nothing that does not: an operator follows them
 * literally. The CLI is asked through its own `--help` (a real child
 * process), the routes through the OpenAPI document of a real server.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { runCli } from './helpers/cli.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { BrowserSender } from '../src/sdk/index.js';
import { envName, loadOptions, OptionsSchema } from '../src/server/options.js';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');
const cliDoc = read('docs/cli.md');
const httpDoc = read('docs/http-api.md');
const sdkDoc = read('docs/sdk.md');

const COMMANDS = ['start', 'token', 'send', 'online', 'ping', 'status', 'run', 'config'] as const;
/** commander's own: not Herald's to document. */
const BUILT_IN = new Set(['--help', '--version']);

/** The long flags `herald [command] --help` lists, split into the command's own and the global ones. */
async function helpFlags(command?: string): Promise<{ own: Set<string>; global: Set<string> }> {
  const r = await runCli(command === undefined ? ['--help'] : [command, '--help']);
  assert.equal(r.code, 0, r.stderr);
  const own = new Set<string>();
  const global = new Set<string>();
  let section: Set<string> | undefined;
  for (const line of r.stdout.split('\n')) {
    if (/^Options:/.test(line)) section = command === undefined ? global : own;
    else if (/^Global Options:/.test(line)) section = global;
    else if (/^\S/.test(line)) section = undefined;
    const flag = /^\s{2}(?:-\w, )?(--[a-z][a-z-]*)/.exec(line)?.[1];
    if (section && flag && !BUILT_IN.has(flag)) section.add(flag);
  }
  return { own, global };
}

/** Every `--flag` in a text. */
const flagsIn = (text: string) => new Set([...text.matchAll(/(?<![\w-])--[a-z][a-z-]*[a-z]/g)].map((m) => m[0]));

/** The row of docs/cli.md's command table for `herald COMMAND`. */
function tableRow(command: string): string {
  const row = cliDoc.split('\n').find((l) => l.startsWith(`| \`herald ${command}`));
  assert.ok(row, `docs/cli.md has no table row for herald ${command}`);
  return row;
}

/** The `herald COMMAND …` lines of README's CLI block and of docs/cli.md's examples. */
function exampleLines(command: string): string[] {
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g), ...cliDoc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks.flatMap((b) => b.split('\n')).flatMap((l) => [...l.matchAll(new RegExp(`herald ${command}\\b([^#|)]*)`, 'g'))].map((m) => m[1]!));
}

describe('docs/cli.md and README name every flag of the herald command, and only real ones', () => {
  test('each command\'s table row lists its flags; the global ones are listed once', async () => {
    // The nine children at once: each waits on its own process start, none on another's.
    const [top, ...perCommand] = await Promise.all([helpFlags(), ...COMMANDS.map((command) => helpFlags(command))]);
    const globalSentence = /Options every command takes:([\s\S]*?)\n\n/.exec(cliDoc)?.[1] ?? '';
    for (const flag of top!.global) assert.ok(flagsIn(globalSentence).has(flag), `docs/cli.md's "Options every command takes" misses ${flag}`);
    for (const [i, command] of COMMANDS.entries()) {
      const { own, global } = perCommand[i]!;
      assert.deepEqual([...global].sort(), [...top!.global].sort(), `herald ${command} --help: global options`);
      const documented = flagsIn(tableRow(command));
      for (const flag of own) assert.ok(documented.has(flag), `docs/cli.md's row for herald ${command} misses ${flag}`);
      for (const flag of documented) assert.ok(own.has(flag) || global.has(flag), `docs/cli.md's row for herald ${command} names ${flag}, which it does not take`);
      for (const line of exampleLines(command)) {
        for (const flag of flagsIn(line)) assert.ok(own.has(flag) || top!.global.has(flag), `example "herald ${command}${line}" uses ${flag}, which it does not take`);
      }
    }
  });
});

describe('docs/http-api.md lists every route of the API', () => {
  let s: TestServer;
  before(async () => { s = await startHerald({ store: 'memory' }); });
  after(async () => { await s.close(); });

  test('every method and path of the OpenAPI document has a row, and every row is a route', async () => {
    const res = await s.api('GET', '/api/v1/openapi.json');
    assert.equal(res.status, 200);
    const served = new Set<string>();
    for (const [path, methods] of Object.entries(res.body.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(methods)) served.add(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    const rows = new Set([...httpDoc.matchAll(/^\| `(GET|POST|PUT|DELETE|PATCH) (\/api\/v1\/[^`?\s]*)/gm)].map((m) => `${m[1]} ${m[2]}`));
    for (const route of served) assert.ok(rows.has(route), `docs/http-api.md has no row for ${route}`);
    for (const row of rows) assert.ok(served.has(row), `docs/http-api.md has a row for ${row}, which the server does not serve`);
  });
});

describe('README and docs/sdk.md name every method of BrowserSender', () => {
  test('each public method is in docs/sdk.md\'s table and README\'s list', () => {
    const methods = Object.getOwnPropertyNames(BrowserSender.prototype).filter((m) => m !== 'constructor');
    const sdkSection = readme.slice(readme.indexOf('## The Node SDK'), readme.indexOf('## The CLI'));
    for (const m of methods) {
      assert.match(sdkDoc, new RegExp(`^\\| [^|]*\`${m}\\(`, 'm'), `docs/sdk.md's method table misses ${m}`);
      assert.match(sdkSection, new RegExp(`\`${m}\\(`), `README's SDK section misses ${m}`);
    }
  });
});

describe('the docs\' links lead somewhere', () => {
  test('every relative link in README and docs/*.md names a file that exists, and a heading of it', () => {
    const root = new URL('../', import.meta.url);
    const docs = ['README.md', ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const prose = (path: string) => read(path).replace(/```[\s\S]*?```/g, '');
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered.
    const anchors = (path: string) => {
      const seen = new Map<string, number>();
      const out = new Set<string>();
      for (const m of prose(path).matchAll(/^#{1,6} (.+)$/gm)) {
        const slug = m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
        const n = seen.get(slug) ?? 0;
        seen.set(slug, n + 1);
        out.add(n === 0 ? slug : `${slug}-${n}`);
      }
      return out;
    };
    for (const doc of docs) {
      for (const m of prose(doc).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? doc : posix.join(posix.dirname(doc), path);
        assert.ok(existsSync(new URL(file, root)), `${doc} links to ${target}: no such file`);
        if (anchor && file.endsWith('.md')) assert.ok(anchors(file).has(anchor), `${doc} links to ${target}: no such heading`);
      }
    }
  });
});

describe('the option tables of docs/commands.md and docs/delivery.md agree with the schema', () => {
  test('each row names a real option, its environment variable, and its default', () => {
    const defaults = loadOptions({ env: {} }) as unknown as Record<string, unknown>;
    const keys = Object.keys(OptionsSchema.properties);
    for (const doc of ['docs/commands.md', 'docs/delivery.md']) {
      let rows = 0;
      for (const line of read(doc).split('\n')) {
        const m = /^\| `(\w+)` \|(.*)\|$/.exec(line);
        if (!m || !/^(commands|sqlite|store|prune|maxPerStream)/.test(m[1]!)) continue;
        const key = m[1]!;
        assert.ok(keys.includes(key), `${doc}: ${key} is not an option`);
        const cells = m[2]!.split(' | ').map((c) => c.trim());
        const env = cells[0]!.startsWith('`HERALD_') ? cells.shift() : undefined;
        if (env !== undefined) assert.equal(env, `\`${envName(key)}\``, `${doc}: ${key}'s environment variable`);
        const shown = /^`([^`]*)`/.exec(cells[0]!)?.[1];
        assert.ok(shown !== undefined, `${doc}: ${key} has no default`);
        if (shown.includes('…')) continue;
        const value = defaults[key];
        assert.ok(shown === JSON.stringify(value) || shown === String(value), `${doc}: ${key}'s default is ${JSON.stringify(value)}, the table says ${shown}`);
        rows++;
      }
      assert.ok(rows >= 5, `${doc}: found only ${rows} option rows`);
    }
  });
});
