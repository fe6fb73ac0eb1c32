/**
 * The docs' runnable examples, run: the request of README's curl example
 * against a live Herald, its answer compared with the answer README shows;
 * the legacy TCP examples of docs/legacy.md and docs/commands.md through a
 * real socket; and the configuration README's migration steps give, loaded
 * as `herald start --config` would load it. Each example is read out of the
 * doc, so editing the doc without the code (or the code without the doc)
 * fails here.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startHerald, type TestServer } from './helpers/server.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { loadOptions } from '../src/server/options.js';

const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');

/** The text of a README section, from its `## ` heading to the next one. */
function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a "## ${heading}" section`);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/**
 * Whether `actual` has the shape the doc shows: the same keys in the same
 * order, the same values, where the doc's `…` stands for any value (or, as
 * the last item of an object, for more keys).
 */
function assertShape(actual: unknown, shown: unknown, path = '$'): void {
  if (shown === '…') return;
  if (Array.isArray(shown)) {
    assert.ok(Array.isArray(actual), `${path} is an array`);
    assert.equal(actual.length, shown.length, `${path} has ${shown.length} items`);
    shown.forEach((s, i) => assertShape(actual[i], s, `${path}[${i}]`));
    return;
  }
  if (shown !== null && typeof shown === 'object') {
    assert.ok(actual !== null && typeof actual === 'object' && !Array.isArray(actual), `${path} is an object`);
    const keys = Object.keys(shown);
    const open = keys.at(-1) === '…';
    const shownKeys = open ? keys.slice(0, -1) : keys;
    const actualKeys = Object.keys(actual as object);
    assert.deepEqual(open ? actualKeys.slice(0, shownKeys.length) : actualKeys, shownKeys, `${path}'s keys, in order`);
    for (const k of shownKeys) assertShape((actual as Record<string, unknown>)[k], (shown as Record<string, unknown>)[k], `${path}.${k}`);
    return;
  }
  assert.deepEqual(actual, shown, path);
}

/** A doc's answer line as JSON: a bare `…` becomes the string "…", a trailing `,…` a key "…". */
function shownAnswer(text: string): unknown {
  return JSON.parse(text.replace(/,…([}\]])/g, ',"…":"…"$1').replace(/([:,[])…(?=[,}\]])/g, '$1"…"'));
}

describe('the docs\' examples run as shown', () => {
  let server: TestServer;
  let legacyPort: number;
  before(async () => {
    server = await startHerald();
    legacyPort = server.herald.urls.legacy!.port;
  });
  after(async () => {
    await server?.close();
  });

  test('README\'s curl example: its request is answered as README shows, with admin 1\'s tab open', async () => {
    const api = section(readme, 'The HTTP API');
    const curl = /curl -s [^\n]*\\\n\s+-d '([^']+)' \\\n\s+http:\/\/127\.0\.0\.1:19443(\/api\/v1\/\S+)\n# (.+)\n/.exec(api);
    assert.ok(curl, 'README\'s HTTP API section has a curl example with its answer');
    const [, body, path, answer] = curl as unknown as [string, string, string, string];
    const tab = await server.tab('admin', 1);
    const res = await server.api('POST', path, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assertShape(res.body, shownAnswer(answer));
    const frame = await tab.next((f) => (f as { TYPE?: string }).TYPE === 'MESSAGE');
    assert.deepEqual({ ...(frame as object), SEQ: undefined, EPOCH: undefined }, { ...(JSON.parse(body) as { message: object }).message, SEQ: undefined, EPOCH: undefined });
  });

  for (const [doc, pattern] of [
    ['docs/legacy.md', /\$ printf '([^']+)' \| nc -q1 127\.0\.0\.1 19444\n(.+)\n/],
    ['docs/commands.md', /printf '%s' '([^']+)' \\\n\s+\| nc -q1 127\.0\.0\.1 19444\s+# → (.+)\n/],
  ] as const) {
    test(`${doc}'s legacy TCP example is answered as shown`, async () => {
      const m = pattern.exec(read(doc));
      assert.ok(m, `${doc} has its nc example`);
      const client = await RawLegacyClient.connect(legacyPort);
      try {
        const { answer } = await client.request(m[1]!);
        assert.deepEqual(answer, JSON.parse(m[2]!));
      } finally {
        client.destroy();
      }
    });
  }
});

test('README\'s migration steps give a configuration herald start accepts, on the old daemon\'s ports', () => {
  const steps = section(readme, 'Migrating from the old daemon');
  const m = /start Herald with\s+`(\{[^`]+\})`/i.exec(steps);
  assert.ok(m, 'the migration steps give a configuration');
  const dir = mkdtempSync(join(tmpdir(), 'herald-docs-'));
  try {
    const file = join(dir, 'herald.json');
    // The elided URL, as an operator fills it in.
    writeFileSync(file, m[1]!.replace('mysql://…/abills', 'mysql://herald:pw@127.0.0.1:3306/abills'));
    const o = loadOptions({ file, env: {} });
    assert.equal(o.authResolver, 'sql');
    assert.equal(o.sqlPreset, 'abills', 'the old daemon\'s session look-ups');
    assert.deepEqual([o.adminPort, o.userPort, o.legacyPort], [19443, 19445, 19444], 'the old daemon\'s ports');
    assert.notEqual(o.host, '127.0.0.1', 'the old ports listen on host, where browsers must reach them');
    assert.equal(o.legacyHost, '127.0.0.1', 'the legacy listener stays on loopback, so the old client needs no TOKEN');
    assert.equal(o.demo, false);
    assert.ok(o.allowedOrigins.length > 0, 'a listener reached from elsewhere has an Origin allowlist');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
