/**
 * The `herald` client commands as child processes against a running Herald
 * (test/helpers/server.ts): exit statuses, what they print, and that they
 * read the URL and API token from the environment like the server does.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { optionsMarkdownTable } from '../src/server/options.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab } from './helpers/ws-client.js';
import { runCli } from './helpers/cli.js';

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('herald client commands', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken, HERALD_DATA_DIR: s.dataDir };
  });
  after(() => s.close());

  test('send --json to a list, --all-admins, and a user; each prints what happened', async () => {
    const a = await s.tab('admin', 5);
    const u = await s.tab('user', 6);
    await Promise.all([a.nextOfType('WELCOME'), u.nextOfType('WELCOME')]);
    let r = await runCli(['send', '--aids', '5,7', '--json', '{"TYPE":"EVENT","TITLE":"Новый платёж","MODULE":"Paysys"}'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^admins 5,7: delivered to 1 tab; queued/);
    const ev = await a.nextOfType('EVENT');
    assert.deepEqual([ev.TITLE, ev.MODULE], ['Новый платёж', 'Paysys']);
    r = await runCli(['send', '--all-admins', '--text', 'to everyone', '--ttl', '0'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /every admin: delivered to 1 person online/);
    await a.next((f) => f?.TEXT === 'to everyone');
    r = await runCli(['send', '--uid', '6', '--title', 'T', '--text', 'X', '--type', 'EVENT'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([(await u.nextOfType('EVENT')).TEXT], ['X']);
    a.close();
    u.close();
  });

  test('send to nobody with --ttl 0 exits 1 saying it was not delivered; with a ttl it is queued and exits 0', async () => {
    const [dropped, queued] = await Promise.all([
      runCli(['send', '--aid', '404', '--title', 'x', '--text', 'y', '--ttl', '0'], { env }),
      runCli(['send', '--aid', '404', '--text', 'later', '--ttl', '1h'], { env }),
    ]);
    assert.equal(dropped.code, 1);
    assert.match(dropped.stderr, /not delivered: admin 404 has no tab open and the message was not kept \(--ttl 0\)/);
    assert.equal(dropped.stdout, '');
    assert.equal(queued.code, 0, queued.stderr);
    assert.match(queued.stdout, /admin 404: delivered to 0 tabs; queued for tabs that connect later \(message \S+\)/);
  });

  test('send usage errors exit 2 before the network', async () => {
    const bad = { ...env, HERALD_URL: `http://127.0.0.1:${await closedPort()}` };
    const cases = [
      [['send', '--text', 'x'], /exactly one of --aid/],
      [['send', '--aid', '1', '--uid', '2', '--text', 'x'], /exactly one of --aid/],
      [['send', '--aid', '1'], /--title and\/or --text, or --json/],
      [['send', '--aid', '1', '--json', '{nope'], /--json is not valid JSON/],
      [['send', '--aid', '1', '--json', '[1]'], /--json must be a JSON object/],
      [['send', '--aid', 'one', '--text', 'x'], /--aid must be a positive integer/],
      [['send', '--aid', '1', '--text', 'x', '--ttl', 'soon'], /--ttl must be a duration/],
      [['send', '--aid', '1', '--text', 'x', '--idempotency-key', ''], /--idempotency-key must be 1 to 200 characters, got 0/],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => runCli(args, { env: bad })));
    cases.forEach(([args, pattern], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    });
  });

  test('online lists ids one a line, or JSON; --users for users', async () => {
    const tabs = [await s.tab('admin', 11), await s.tab('admin', 12), await s.tab('user', 13)];
    await Promise.all(tabs.map((t) => t.nextOfType('WELCOME')));
    const [admins, users] = await Promise.all([runCli(['online'], { env }), runCli(['online', '--users', '--json'], { env })]);
    assert.equal(admins.code, 0, admins.stderr);
    assert.deepEqual(admins.stdout.trim().split('\n').map(Number).sort((x, y) => x - y), [11, 12]);
    assert.deepEqual(JSON.parse(users.stdout), { kind: 'user', ids: [13] });
    for (const t of tabs) t.close();
  });

  test('token --uid prints only a token the server admits; without a secret it exits 2', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'herald-cli-nosecret-'));
    try {
      const [r, none, both] = await Promise.all([
        runCli(['token', '--uid', '77', '--ttl', '10m'], { env: { ...env, HERALD_SECRET: s.secret } }),
        runCli(['token', '--aid', '1', '--data-dir', empty]),
        runCli(['token', '--data-dir', empty]),
      ]);
      assert.equal(r.code, 0, r.stderr);
      const tab = await TestTab.open(`${s.wsUrl}/ws/user`, { query: { token: r.stdout.trim() } });
      assert.equal((await tab.nextOfType('WELCOME')).ID, 77);
      tab.close();
      assert.equal(none.code, 2);
      assert.match(none.stderr, /no token-signing secret/);
      assert.equal(both.code, 2);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  test('token --ttl above 31 days exits 2, as the SDK and POST /api/v1/tokens refuse it; 31d is taken', async () => {
    const withSecret = { ...env, HERALD_SECRET: s.secret };
    const [long, longest] = await Promise.all([
      runCli(['token', '--aid', '1', '--ttl', '400d'], { env: withSecret }),
      runCli(['token', '--aid', '1', '--ttl', '31d'], { env: withSecret }),
    ]);
    assert.equal(long.code, 2, long.stderr);
    assert.match(long.stderr, /--ttl must be at most 31d \(2678400s\), got "400d"/);
    assert.equal(long.stdout, '');
    assert.equal(longest.code, 0, longest.stderr);
    assert.equal(longest.stdout.trim().split('.').length, 3);
  });

  test('ping and status; an unreachable server or a wrong API token exit 1 with a clear message', async () => {
    const port = await closedPort();
    const [status, refused, unreachable] = await Promise.all([
      runCli(['status'], { env }),
      runCli(['ping'], { env: { ...env, HERALD_API_TOKEN: 'a-wrong-api-token-of-length' } }),
      runCli(['ping', '--url', `http://127.0.0.1:${port}`], { env }),
    ]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^Herald \S+ at http:\/\/127\.0\.0\.1:\d+\n {2}uptime/);
    assert.match(status.stdout, /\n {2}connections {2}\d+ admin tabs, \d+ user tabs \(at most \d+ in all\)\n/);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /refused the API token \(HERALD_ERR_UNAUTHORIZED\)/);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, new RegExp(`cannot reach Herald at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
  });

  test('config --markdown prints the option table; config prints the effective options with secrets masked', async () => {
    const [markdown, r] = await Promise.all([
      runCli(['config', '--markdown']),
      runCli(['config'], { env: { HERALD_SECRET: s.secret, HERALD_PORT: '20001' } }),
    ]);
    assert.equal(markdown.code, 0, markdown.stderr);
    assert.equal(markdown.stdout, `${optionsMarkdownTable()}\n`);
    const shown = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(shown.port, 20001);
    assert.equal(shown.secret, '(set)');
    assert.ok(!r.stdout.includes(s.secret));
  });

  test('with only a config file, the client commands find the server by its host and port and use its apiToken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-conf-'));
    try {
      const file = join(dir, 'herald.json');
      writeFileSync(file, JSON.stringify({ host: '127.0.0.1', port: Number(new URL(s.url).port), apiToken: s.apiToken, dataDir: dir }));
      const r = await runCli(['ping', '--config', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`at ${s.url.replace(/\./g, '\\.')} in`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a publicUrl (the proxy browsers go through) does not lead the client commands away from the server\'s own listener', async () => {
    // Behind a reverse proxy the public URL serves the library and the tabs, not the API
    // (deploy/nginx.conf answers 404 there): the CLI on the server's machine asks the listener.
    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-conf-'));
    try {
      const file = join(dir, 'herald.json');
      writeFileSync(file, JSON.stringify({ host: '127.0.0.1', port: Number(new URL(s.url).port), publicUrl: 'https://127.0.0.1:1/herald', apiToken: s.apiToken, dataDir: dir }));
      const r = await runCli(['ping', '--config', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`at ${s.url.replace(/\./g, '\\.')} in`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--help and unknown commands', async () => {
    const [help, unknown] = await Promise.all([runCli(['--help']), runCli(['frobnicate'])]);
    assert.equal(help.code, 0);
    for (const c of ['start', 'token', 'send', 'online', 'ping', 'status', 'run', 'config']) assert.match(help.stdout, new RegExp(`\\n  ${c}\\b`));
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });
});

/** A node:http server on 127.0.0.1 (port 0) that is not Herald, answering every request with `answer`. */
async function impostor(answer: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('herald client commands against something that is not Herald', () => {
  test('send and status given {} exit 1 naming the bad answer: no "delivered to undefined tabs", no TypeError', async () => {
    const server = await impostor((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    try {
      const env = { HERALD_URL: server.url, HERALD_API_TOKEN: 'whatever-token-123' };
      const [send, status, ping] = await Promise.all([
        runCli(['send', '--aid', '1', '--text', 'x'], { env }),
        runCli(['status'], { env }),
        runCli(['ping'], { env }),
      ]);
      for (const [name, r] of [['send', send], ['status', status], ['ping', ping]] as const) {
        assert.equal(r.code, 1, `${name}: ${r.stderr}`);
        assert.match(r.stderr, /not Herald's answer .*\(HERALD_ERR_BAD_RESPONSE, HTTP 200\)/, name);
        assert.equal(r.stdout, '', name);
        assert.doesNotMatch(r.stderr, /undefined|TypeError|\n\s+at /, name);
      }
    } finally {
      await server.close();
    }
  });

  test('a server\'s message reaches the terminal without its control characters, and cut', async () => {
    // Retitles the window, clears the screen and overwrites the line: then 5 MB of text.
    const hostile = '\x1b]0;pwned\x07\x1b[2J\rherald: all good\u009b31m\x7f';
    let nonJson = false;
    const server = await impostor((_req, res) => {
      if (nonJson) res.writeHead(502, { 'content-type': 'text/html' }).end(`<h1>${hostile}</h1>`);
      else res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'HERALD_ERR_VALIDATION', message: hostile + 'x'.repeat(5_000_000) } }));
    });
    try {
      const env = { HERALD_URL: server.url, HERALD_API_TOKEN: 'whatever-token-123' };
      const long = await runCli(['send', '--aid', '1', '--text', 'x'], { env });
      nonJson = true;
      const html = await runCli(['ping'], { env });
      for (const [name, r] of [['error message', long], ['a body that is not JSON', html]] as const) {
        assert.equal(r.code, 1, `${name}: ${r.stderr.slice(0, 300)}`);
        // One line, ending in a newline, and nothing in it a terminal acts on.
        assert.doesNotMatch(r.stderr.slice(0, -1), /[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/, name);
        assert.ok(r.stderr.includes('\\x1b]0;pwned\\x07\\x1b[2J\\x0dherald: all good\\x9b31m\\x7f'), `${name}: ${r.stderr.slice(0, 300)}`);
      }
      assert.ok(long.stderr.length < 2000, `${long.stderr.length} characters printed`);
      assert.match(long.stderr, /… \(\d+ more characters\) \(HERALD_ERR_VALIDATION, HTTP 400\)\n$/);
    } finally {
      await server.close();
    }
  });

  test('online, online --json and send to a list print the ids and kinds of a Herald-shaped answer without their control characters', async () => {
    // An answer that passes the SDK's checks, with text where Herald has numbers and kinds.
    const hostile = '\x1b]0;pwned\x07\x1b[2J\rRED\u009b31m\x7f';
    const server = await impostor((req, res) => {
      const answer = req.url?.startsWith('/api/v1/online')
        ? { ids: [hostile, 7] }
        : { delivered: 0, queued: false, results: [{ kind: hostile, id: 1, delivered: 0, queued: false }, { kind: 'admin', id: `2${hostile}`, delivered: 0, queued: false }] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
    try {
      const env = { HERALD_URL: server.url, HERALD_API_TOKEN: 'whatever-token-123' };
      const [online, json, send] = await Promise.all([
        runCli(['online'], { env }),
        runCli(['online', '--json'], { env }),
        runCli(['send', '--aids', '1,2', '--text', 'x'], { env }),
      ]);
      const shown = '\\x1b]0;pwned\\x07\\x1b[2J\\x0dRED\\x9b31m\\x7f';
      assert.equal(online.code, 0, online.stderr);
      assert.equal(online.stdout, `${shown}\n7\n`);
      assert.equal(json.code, 0, json.stderr);
      // Still JSON that reads back as the answer, with DEL and C1 escaped as JSON escapes C0.
      assert.deepEqual(JSON.parse(json.stdout), { kind: 'admin', ids: [hostile, 7] });
      assert.ok(json.stdout.includes('\\u001b]0;pwned\\u0007\\u001b[2J\\rRED\\u009b31m\\u007f'), json.stdout);
      assert.equal(send.code, 1, send.stderr);
      assert.deepEqual(send.stderr.split('\n'), [
        `herald: ${shown} 1: not delivered: no tab open, and the message was not kept`,
        `herald: admin 2${shown}: not delivered: no tab open, and the message was not kept`,
        'herald: not delivered: nobody of admins 1,2 was reached and the message was not kept',
        '',
      ]);
      for (const [name, r] of [['online', online], ['online --json', json], ['send', send]] as const) {
        assert.doesNotMatch(r.stdout + r.stderr, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, name);
      }
    } finally {
      await server.close();
    }
  });

  test('herald config prints a value with DEL or C1 characters escaped, as JSON that reads back the same', async () => {
    const file = 'a\u009b31m\x7fb.sqlite';
    const r = await runCli(['config', '--data-dir', tmpdir()], { env: { HERALD_SQLITE_FILE: file } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { sqliteFile: string }).sqliteFile, file);
    assert.ok(r.stdout.includes('"sqliteFile": "a\\u009b31m\\u007fb.sqlite"'), r.stdout);
    assert.doesNotMatch(r.stdout, /[\u007f-\u009f]/);
  });
});
