/**
 * Background commands as an attacker who controls an argument would use
 * them (a panel that passes a host name typed into a form): options smuggled
 * in as arguments, shell syntax, new lines. No shell ever sees them; the
 * documented argument rule refuses every option it does not list, through
 * both doors, with an audit record; and a server running as root says so
 * at start, since every command it runs would too.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startAuthHerald, type AuthHerald } from './helpers/auth-herald.js';
import { RawLegacyClient } from './helpers/legacy-client.js';

const PING_RULE = 'ping=-[cqnW]|[0-9]{1,2}|127\\.0\\.0\\.1';

async function api(h: AuthHerald, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${h.wsUrl.replace('ws:', 'http:')}${path}`, {
    method,
    headers: { authorization: `Bearer ${h.herald.options.apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

describe('argument injection', () => {
  let h: AuthHerald;
  let legacy: RawLegacyClient;

  before(async () => {
    h = await startAuthHerald({ commandsAllow: ['ping', 'printf'], commandsArgRules: [PING_RULE] });
    legacy = await RawLegacyClient.connect(h.herald.urls.legacy!.port);
  });
  after(async () => {
    legacy?.destroy();
    await h?.close();
  });

  // Each: the arguments as the legacy door gets them (split on white space there) and as the API does.
  const smuggled: Array<[string, string[]]> = [
    ['flood (-f)', ['-f', '127.0.0.1']],
    ['no interval (-i 0)', ['-i 0', '127.0.0.1']],
    ['huge packets (-s 65000)', ['-s 65000', '127.0.0.1']],
    ['a million pings (-c 1000000)', ['-c 1000000', '127.0.0.1']],
    ['--help as the target', ['--help']],
    ['shell syntax in the target', ['-c 1', '127.0.0.1;id']],
    ['command substitution in the target', ['-c 1', '$(id)']],
    ['a new line in the target', ['-c 1', '127.0.0.1\nid']],
    ['an option glued to the target', ['-c1', '-f127.0.0.1']],
    ['another host', ['-c 1', '10.0.0.1']],
  ];

  for (const [what, args] of smuggled) {
    test(`refused by the rule through both doors: ${what}`, async () => {
      const byLegacy = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping', PROGRAM_ARGS: args }))).answer as any;
      assert.equal(byLegacy?.TYPE, 'ERROR', JSON.stringify(byLegacy));
      assert.equal(byLegacy.CODE, 'HERALD_ERR_COMMAND_FORBIDDEN');
      assert.match(byLegacy.ERROR, /is not allowed by its rule/);
      const apiArgs = args.flatMap((a) => (a.startsWith('-') ? a.split(' ') : [a]));
      const byApi = await api(h, 'POST', '/api/v1/commands', { aid: 1, program: 'ping', args: apiArgs });
      assert.equal(byApi.status, 403, JSON.stringify(byApi.body));
      assert.equal(byApi.body.error.code, 'HERALD_ERR_COMMAND_FORBIDDEN');
    });
  }

  test('none of them ran, and every refusal is in the audit trail', async () => {
    assert.deepEqual((await api(h, 'GET', '/api/v1/commands')).body.commands, []);
    const audit = (await api(h, 'GET', '/api/v1/commands/audit?limit=100')).body.records as any[];
    assert.equal(audit.filter((r) => r.event === 'refused' && /^HERALD_ERR_COMMAND_FORBIDDEN/.test(r.error)).length, smuggled.length * 2);
  });

  test('what the rule allows still runs', async () => {
    const r = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping', PROGRAM_ARGS: ['-c 1', '-W 2', '127.0.0.1'], ID: 'allowed' }))).answer;
    assert.equal(r, 1);
  });

  test('without a rule, every argument reaches the program as written: no shell, no globbing, no splitting by the API', async () => {
    const args = ['[%s]', '127.0.0.1;id', '$(id)', '`id`', 'a\nb', '*', '~', '> /tmp/x', '--help', '-f'];
    const started = await api(h, 'POST', '/api/v1/commands', { aid: 1, program: 'printf', args });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const done = await api(h, 'GET', `/api/v1/commands/${started.body.id}?wait=10`);
    assert.equal(done.body.state, 'succeeded', JSON.stringify(done.body));
    assert.equal(done.body.output, args.slice(1).map((a) => `[${a}]`).join(''));
    // The legacy door splits on white space only; quotes group; nothing else is interpreted.
    const legacyRun = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'printf', PROGRAM_ARGS: ['[%s]', '127.0.0.1;id $(id) "a b"'], ID: 'printf-legacy' }))).answer;
    assert.equal(legacyRun, 1);
    const list = (await api(h, 'GET', '/api/v1/commands')).body.commands as any[];
    const run = list.find((c) => c.taskId === 'printf-legacy' || c.id === 'printf-legacy');
    assert.ok(run, JSON.stringify(list.map((c) => c.taskId)));
    const final = await api(h, 'GET', `/api/v1/commands/${run.id}?wait=10`);
    assert.equal(final.body.output, '[127.0.0.1;id][$(id)][a b]');
  });
});

describe('a server that runs as root', () => {
  test('warns at start that its commands run as root too', async (t) => {
    if (process.getuid?.() !== 0) {
      console.log('# not running as root: only the absence of the warning is checked');
    }
    const h = await startAuthHerald({ commandsAllow: ['ping'] });
    try {
      const warned = h.log().split('\n').some((l) => l.includes('"level":40') && /runs as root/.test(l));
      assert.equal(warned, process.getuid?.() === 0, h.log().split('\n').filter((l) => /root/.test(l)).join('\n'));
    } finally {
      await h.close();
    }
    // With argument rules set, the warning no longer advises setting them.
    const ruled = await startAuthHerald({ commandsAllow: ['ping'], commandsArgRules: ['ping=^[\\w.:-]+$'] });
    try {
      const line = ruled.log().split('\n').find((l) => /runs as root/.test(l));
      assert.equal(line !== undefined, process.getuid?.() === 0, ruled.log());
      if (line) assert.doesNotMatch(line, /set commandsArgRules/, line);
    } finally {
      await ruled.close();
    }
    const off = await startAuthHerald({ commandsEnabled: false });
    try {
      assert.doesNotMatch(off.log(), /runs as root/, 'the warning is about commands: none run with commandsEnabled false');
    } finally {
      await off.close();
    }
    t.diagnostic(`uid ${process.getuid?.()}`);
  });
});
