/**
 * Whom a `herald send` reached, said so that a script can act on it: a
 * live-only send that reached nobody keeps no idempotency key (the resend
 * once the person is online is delivered), a repeat of a live-only send is
 * not "done", the recipients of a list it did not reach are named, and
 * `--print-json` gives the server's answer. A real Herald, real `ws` tabs,
 * the CLI as a child process.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';
import { runCli } from './helpers/cli.js';

/** Sends a live marker without a key and waits for it: every frame sent before it has arrived by then (one broker, in order). */
async function texts(s: TestServer, tab: TestTab, to: { aid: number } | { uid: number }, marker: string): Promise<unknown[]> {
  const r = await s.api('POST', '/api/v1/send', { to, message: { TYPE: 'MESSAGE', TEXT: marker }, ttl: 0 });
  assert.equal(r.body.delivered, 1, JSON.stringify(r.body));
  await tab.next((f) => f?.TEXT === marker);
  return tab.notifications().map((f) => (typeof f === 'string' ? f : f.TEXT));
}

describe('a keyed live-only send that reached nobody', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000 });
  });
  after(() => s.close());

  for (const [name, body] of [
    ['ttl 0', { message: { TYPE: 'MESSAGE', TEXT: 'late' }, ttl: 0 }],
    ['a plain string', { message: 'late' }],
  ] as const) {
    test(`${name}: keeps no key, so the same send once the admin is online is delivered, and only then is a repeat a duplicate`, async () => {
      const aid = name === 'ttl 0' ? 301 : 302;
      const send = { to: { aid }, ...body, idempotencyKey: `offline-${aid}` };
      const first = await s.api('POST', '/api/v1/send', send);
      assert.deepEqual(first.body.results, [{ kind: 'admin', id: aid, delivered: 0, queued: false, duplicate: false, dropped: 0 }]);
      const tab = await s.tab('admin', aid);
      try {
        await tab.nextOfType('WELCOME');
        const again = await s.api('POST', '/api/v1/send', send);
        assert.deepEqual(again.body.results, [{ kind: 'admin', id: aid, delivered: 1, queued: false, duplicate: false, dropped: 0 }]);
        const third = await s.api('POST', '/api/v1/send', send);
        assert.equal(third.body.results[0].duplicate, true);
        assert.deepEqual(await texts(s, tab, { aid }, 'm'), ['late', 'm']);
      } finally {
        tab.close();
      }
    });
  }

  test('a live broadcast that reached nobody keeps no key either', async () => {
    const send = { to: { all: 'users' }, message: { TYPE: 'EVENT', TEXT: 'all' }, ttl: 0, idempotencyKey: 'bc-offline' };
    assert.deepEqual((await s.api('POST', '/api/v1/send', send)).body, { delivered: 0, queued: false, duplicate: false, dropped: 0 });
    const tab = await s.tab('user', 310);
    try {
      await tab.nextOfType('WELCOME');
      assert.deepEqual((await s.api('POST', '/api/v1/send', send)).body, { delivered: 1, queued: false, duplicate: false, dropped: 0 });
      assert.equal((await s.api('POST', '/api/v1/send', send)).body.duplicate, true);
      assert.deepEqual(await texts(s, tab, { uid: 310 }, 'm'), ['all', 'm']);
    } finally {
      tab.close();
    }
  });

  test('sends of one key that cross each other while nobody is online: none is taken for a repeat; once online, exactly one goes out', async () => {
    const send = { to: { aid: 320 }, message: { TYPE: 'MESSAGE', TEXT: 'x' }, ttl: 0, idempotencyKey: 'crossing-offline' };
    const offline = await Promise.all(Array.from({ length: 8 }, () => s.api('POST', '/api/v1/send', send)));
    assert.deepEqual(offline.map((r) => r.body.results[0].duplicate), Array(8).fill(false));
    const tab = await s.tab('admin', 320);
    try {
      await tab.nextOfType('WELCOME');
      const online = await Promise.all(Array.from({ length: 8 }, () => s.api('POST', '/api/v1/send', send)));
      assert.equal(online.filter((r) => r.body.results[0].delivered === 1).length, 1, JSON.stringify(online.map((r) => r.body)));
      assert.equal(online.filter((r) => r.body.results[0].duplicate).length, 7);
      assert.deepEqual(await texts(s, tab, { aid: 320 }, 'm'), ['x', 'm']);
    } finally {
      tab.close();
    }
  });

  test('herald send --ttl 0 --idempotency-key: exit 1 while offline, delivered (exit 0) with the same key once online, and a repeat is not "done" (exit 4)', async () => {
    const env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
    const args = ['send', '--aid', '330', '--text', 'retry me', '--ttl', '0', '--idempotency-key', 'cli-offline'];
    const offline = await runCli(args, { env });
    assert.equal(offline.code, 1, offline.stderr);
    assert.match(offline.stderr, /not delivered: admin 330 has no tab open and the message was not kept \(--ttl 0\)/);
    const tab = await s.tab('admin', 330);
    try {
      await tab.nextOfType('WELCOME');
      const online = await runCli(args, { env });
      assert.equal(online.code, 0, online.stderr);
      assert.match(online.stdout, /^admin 330: delivered to 1 tab\n$/);
      const repeat = await runCli(args, { env });
      assert.equal(repeat.code, 4, repeat.stderr);
      assert.equal(repeat.stdout, '');
      assert.match(repeat.stderr, /^herald: admin 330: not sent again: .*cannot tell whether that send reached anyone/);
      assert.deepEqual(await texts(s, tab, { aid: 330 }, 'm'), ['retry me', 'm']);
    } finally {
      tab.close();
    }
  });
});

describe('herald send to several people', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000 });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.close());

  test('names on stderr, one a line, each recipient it did not reach; exit 0 since it reached someone', async () => {
    const tab = await s.tab('admin', 401);
    try {
      await tab.nextOfType('WELCOME');
      const r = await runCli(['send', '--aids', '401,402,403', '--text', 'partial', '--ttl', '0'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'admins 401,402,403: delivered to 1 tab\n');
      assert.equal(r.stderr, [
        'herald: admin 402: not delivered: no tab open, and the message was not kept (--ttl 0)',
        'herald: admin 403: not delivered: no tab open, and the message was not kept (--ttl 0)',
        '',
      ].join('\n'));
      await tab.next((f) => f?.TEXT === 'partial');
    } finally {
      tab.close();
    }
  });

  test('stored for everyone: nothing on stderr', async () => {
    const r = await runCli(['send', '--aids', '411,412', '--text', 'kept', '--ttl', '1h'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('nobody reached: each named, and exit 1', async () => {
    const r = await runCli(['send', '--uids', '421,422', '--text', 'nobody', '--ttl', '0'], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^herald: user 421: not delivered: .*\nherald: user 422: not delivered: .*\nherald: not delivered: nobody of users 421,422 was reached and the message was not kept \(--ttl 0\)\n$/);
  });

  test('--print-json prints the server\'s answer, per recipient, as one line', async () => {
    const tab = await s.tab('admin', 431);
    try {
      await tab.nextOfType('WELCOME');
      const r = await runCli(['send', '--aids', '431,432', '--text', 'json', '--ttl', '0', '--print-json'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.split('\n').length, 2, r.stdout);
      assert.deepEqual(JSON.parse(r.stdout), {
        delivered: 1, queued: false,
        results: [
          { kind: 'admin', id: 431, delivered: 1, queued: false, duplicate: false, dropped: 0 },
          { kind: 'admin', id: 432, delivered: 0, queued: false, duplicate: false, dropped: 0 },
        ],
      });
      assert.match(r.stderr, /^herald: admin 432: not delivered/);
      // Nobody reached: the answer still, and the exit status says so.
      const none = await runCli(['send', '--all-users', '--text', 'json', '--ttl', '0', '--print-json'], { env });
      assert.equal(none.code, 1, none.stderr);
      assert.deepEqual(JSON.parse(none.stdout), { delivered: 0, queued: false, duplicate: false, dropped: 0 });
    } finally {
      tab.close();
    }
  });
});

describe('herald send: flags the server would read otherwise than the operator meant', () => {
  let s: TestServer;
  let env: Record<string, string>;
  before(async () => {
    s = await startHerald({ legacyEnabled: false, heartbeatMs: 60000 });
    env = { HERALD_URL: s.url, HERALD_API_TOKEN: s.apiToken };
  });
  after(() => s.close());

  test('--idempotency-key is counted in characters, as the server counts it: 200 emoji are taken by the server, 201 are refused as 201', async () => {
    const emoji = '\u{1F600}';
    const taken = await s.api('POST', '/api/v1/send', { to: { aid: 501 }, message: { TYPE: 'MESSAGE', TEXT: 'k' }, ttl: 60, idempotencyKey: emoji.repeat(200) });
    assert.equal(taken.status, 200, JSON.stringify(taken.body));
    const refused = await s.api('POST', '/api/v1/send', { to: { aid: 501 }, message: { TYPE: 'MESSAGE', TEXT: 'k' }, ttl: 60, idempotencyKey: emoji.repeat(201) });
    assert.equal(refused.status, 400);
    const r = await runCli(['send', '--aid', '501', '--text', 'k', '--idempotency-key', emoji.repeat(201)], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, 'herald: --idempotency-key must be 1 to 200 characters, got 201\n');
  });

  test('--ttl above 0 with a plain-string message, which is never kept, is refused; --ttl 0 with one is taken', async () => {
    const r = await runCli(['send', '--aid', '502', '--json', '"a string"', '--ttl', '1h'], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^herald: --ttl 1h does not apply to a plain-string message/);
    const live = await runCli(['send', '--aid', '502', '--json', '"a string"', '--ttl', '0'], { env });
    assert.equal(live.code, 1, live.stderr);
    assert.match(live.stderr, /not delivered: admin 502 has no tab open and the message was not kept \(--ttl 0\)/);
  });

  test('a recipient flag given twice is refused, not the last one taken', async () => {
    for (const args of [
      ['send', '--aid', '1', '--aid', '2', '--text', 'x'],
      ['send', '--uids', '1,2', '--uids', '3', '--text', 'x'],
      ['run', '--aid', '1', '--aid', '2', '--', 'ping', '-c', '1', '127.0.0.1'],
      ['token', '--uid', '1', '--uid', '2'],
    ]) {
      const r = await runCli(args, { env: { ...env, HERALD_DATA_DIR: s.dataDir } });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^herald: --(aid|uids|uid) is given twice \("\S+" and "\S+"\): give it once/, args.join(' '));
      assert.equal(r.stdout, '');
    }
  });
});
