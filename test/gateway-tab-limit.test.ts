/**
 * maxTabsPerPerson: one valid credential cannot hold tabs open without end.
 * A handshake past the limit is refused before the upgrade with 429
 * HERALD_ERR_TOO_MANY_TABS (the browser library retries later); a tab that
 * closes frees a place; other people are not affected; 0 means no limit.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { mintToken } from '../src/server/auth/token-resolver.js';
import { openFileLimit, tabsWithin } from '../src/server/file-limit.js';
import { cleanEnv } from './helpers/cli.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

const DIST_MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

async function refusal(s: TestServer, kind: 'admin' | 'user', id: number): Promise<{ status: number; body: string }> {
  return TestTab.status(`${s.wsUrl}/ws/${kind}`, { query: { token: await s.token(kind, id) } });
}

describe('maxTabsPerPerson', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxTabsPerPerson: 3 });
  });
  after(() => s.close());

  test('the tab past the limit is refused with 429 before the upgrade; a closed tab frees its place', async () => {
    const tabs = [await s.tab('admin', 5), await s.tab('admin', 5), await s.tab('admin', 5)];
    for (const t of tabs) await t.nextOfType('WELCOME');
    const refused = await refusal(s, 'admin', 5);
    assert.equal(refused.status, 429);
    assert.equal(JSON.parse(refused.body).error.code, 'HERALD_ERR_TOO_MANY_TABS');
    assert.match(JSON.parse(refused.body).error.message, /3 tabs open \(maxTabsPerPerson\)/);
    // Others are counted apart: the same id of the other kind, and another admin.
    const user = await s.tab('user', 5);
    await user.nextOfType('WELCOME');
    const other = await s.tab('admin', 6);
    await other.nextOfType('WELCOME');
    const online = await s.api('GET', '/api/v1/online/admin/5');
    assert.equal(online.status, 200);
    tabs[0]!.close();
    await tabs[0]!.closed;
    // Its socket counts until the server has closed it too (gateway-tab-limit-closing.test.ts); then the next handshake is admitted.
    await until(() => s.herald.gateway.connections.size === 4, 5000, 'the closed tab\'s socket closed on the server');
    const again = await s.tab('admin', 5);
    assert.equal((await again.nextOfType('WELCOME')).ID, 5);
    assert.equal((await refusal(s, 'admin', 5)).status, 429, 'three open again: the fourth is refused again');
  });
});

describe('maxTabsPerPerson 0', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxTabsPerPerson: 0 });
  });
  after(() => s.close());

  test('means no limit', async () => {
    const tabs = await Promise.all(Array.from({ length: 120 }, () => s.tab('user', 9)));
    await Promise.all(tabs.map((t) => t.nextOfType('WELCOME')));
    assert.equal(tabs.length, 120);
  });
});

/**
 * maxTabs: the tabs of all people on this node. Each tab is a file
 * descriptor, and past the process's open-file limit the kernel refused the
 * accept: libuv dropped the connection unanswered (the browser saw a
 * hang-up, the log nothing) and the API's connections failed alike. A
 * handshake past maxTabs is refused with 503 instead (the browser library
 * retries later), and 0, the default, is what the open-file limit allows.
 */
describe('maxTabs', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ maxTabs: 3 });
  });
  after(() => s.close());

  test('the tab past it, whoever it is for, is refused with 503 before the upgrade; the API goes on; a closed tab frees a place', async () => {
    const tabs = [await s.tab('admin', 1), await s.tab('admin', 2), await s.tab('user', 3)];
    for (const t of tabs) await t.nextOfType('WELCOME');
    const refused = await refusal(s, 'admin', 4);
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.body).error.code, 'HERALD_ERR_UNAVAILABLE');
    assert.match(JSON.parse(refused.body).error.message, /most tabs \(maxTabs 3\)/);
    const status = await s.api('GET', '/api/v1/status');
    assert.deepEqual([status.body.connections, status.body.maxTabs], [{ admin: 2, user: 1 }, 3]);
    const sent = await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 't', TEXT: 'x' } });
    assert.equal(sent.status, 200);
    assert.equal(sent.body.results[0].delivered, 1);
    assert.equal((await tabs[0]!.nextOfType('MESSAGE')).TITLE, 't');
    tabs[1]!.close();
    await tabs[1]!.closed;
    const again = await s.tab('admin', 4);
    assert.equal((await again.nextOfType('WELCOME')).ID, 4);
    assert.equal((await refusal(s, 'admin', 5)).status, 503, 'three open again: the fourth is refused again');
  });
});

describe('maxTabs 0 under a low open-file limit (herald start under prlimit --nofile=320)', () => {
  // util-linux's prlimit is part of every Debian system; its absence is a broken machine, not a reason to skip.
  const PRLIMIT = '/usr/bin/prlimit';
  const LIMIT = 320;
  let child: ChildProcessWithoutNullStreams | undefined;
  let dataDir: string;
  after(() => {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('every handshake is answered, 101 up to what the limit allows and 503 past it, and the API still answers', async () => {
    assert.ok(existsSync(PRLIMIT), `${PRLIMIT} is missing (apt-get install util-linux)`);
    dataDir = mkdtempSync(join(tmpdir(), 'herald-fd-'));
    const secret = randomBytes(32).toString('base64url');
    const apiToken = randomBytes(24).toString('base64url');
    const env = cleanEnv({ HERALD_SECRET: secret, HERALD_API_TOKEN: apiToken });
    child = spawn(PRLIMIT, [`--nofile=${LIMIT}:${LIMIT}`, process.execPath, DIST_MAIN, 'start', '--port', '0', '--no-legacy', '--data-dir', dataDir, '--store', 'memory', '--set', 'commandsEnabled=false'], { env, stdio: 'pipe' });
    const lines: Array<Record<string, unknown>> = [];
    let listening: (url: string) => void;
    const url = new Promise<string>((resolve) => (listening = resolve));
    let rest = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      const all = (rest + d).split('\n');
      rest = all.pop()!;
      for (const l of all) {
        if (!l.startsWith('{')) continue;
        const line = JSON.parse(l) as Record<string, unknown>;
        lines.push(line);
        if (line.msg === 'Herald is listening') listening(line.http as string);
      }
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const base = await Promise.race([url, new Promise<never>((_, reject) => child!.once('exit', (code) => reject(new Error(`herald start exited ${code}: ${stderr}`))))]);
    const fit = tabsWithin(LIMIT);
    assert.equal(lines.find((l) => l.msg === 'Herald is listening')?.maxTabs, fit);
    assert.ok(lines.some((l) => l.level === 40 && l.openFileLimit === LIMIT && /open-file limit \(320\) lets this server hold 160 tabs/.test(String(l.msg))), 'the start says how few tabs the limit allows');

    // Twice as many tabs as fit, 20 handshakes at a time (browsers coming back at their own pace).
    const wsUrl = `${base.replace('http', 'ws')}/ws/admin`;
    const outcomes: Array<number | string> = [];
    const tabs: TestTab[] = [];
    for (let i = 0; i < 2 * fit; i += 20) {
      await Promise.all(Array.from({ length: 20 }, async (_, j) => {
        const token = await mintToken(secret, { kind: 'admin', id: i + j + 1 }, 600_000);
        try {
          tabs.push(await TestTab.open(wsUrl, { query: { token } }));
          outcomes.push(101);
        } catch (err) {
          const e = err as { status?: number; message: string };
          outcomes.push(e.status ?? e.message);
        }
      }));
    }
    const count = (o: number | string) => outcomes.filter((x) => x === o).length;
    assert.deepEqual({ admitted: count(101), refused: count(503), other: outcomes.filter((o) => o !== 101 && o !== 503) }, { admitted: fit, refused: fit, other: [] });
    const sent = await fetch(`${base}/api/v1/send`, {
      method: 'POST', headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: { aid: 1 }, message: { TYPE: 'MESSAGE', TITLE: 't', TEXT: 'x' } }),
    });
    assert.equal(sent.status, 200);
    assert.equal(((await sent.json()) as { results: Array<{ delivered: number }> }).results[0]!.delivered, 1);
    await until(() => lines.some((l) => l.msg === 'handshakes refused: this node holds its most tabs (maxTabs)'), 5000, 'the refusals logged');
    for (const t of tabs) t.terminate();
  });
});

describe('the open-file limit', () => {
  test('is read from /proc/self/limits: the soft limit, nothing where unlimited or unreadable', () => {
    const limits = (soft: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax processes             95434                95434                processes\nMax open files            ${soft}                524288               files\n`;
    assert.equal(openFileLimit(() => limits('1024')), 1024);
    assert.equal(openFileLimit(() => limits('unlimited')), undefined);
    assert.equal(openFileLimit(() => { throw new Error('ENOENT'); }), undefined);
    assert.equal(typeof openFileLimit(), 'number', 'this machine has /proc');
  });

  test('keeps a tenth of it, at least 256 and at most half, for all but tabs', () => {
    assert.deepEqual([320, 1024, 20_000, 524_288].map(tabsWithin), [160, 768, 18_000, 471_859]);
  });
});
