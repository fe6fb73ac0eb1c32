/**
 * The demo page's endpoints mint a token for any person and send to anyone,
 * so by default (`demo: auto`) they are served only as the quick start runs
 * Herald: a loopback listener, no publicUrl, no allowedOrigins, signed
 * tokens. A server set up to be reached from elsewhere (a publicUrl, an
 * Origin allowlist, a panel's resolver, or a listener that is not loopback)
 * does not serve them unless told to, and when told to, it says so in the
 * log. They used to be on by default wherever Herald listened.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import { createHerald } from '../src/server/herald.js';
import { demoEnabled, loadOptions } from '../src/server/options.js';

/** Starts a real Herald with `overrides`; answers the status of GET /demo and POST /demo/token, and the log. */
async function demoAnswers(overrides: Record<string, unknown>): Promise<{ page: number; token: number; log: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-demo-'));
  const chunks: string[] = [];
  const logger = pino({ level: 'info' }, new Writable({ write(c: Buffer, _e, cb) { chunks.push(c.toString()); cb(); } }));
  const options = loadOptions({ env: {}, overrides: {
    host: '127.0.0.1', port: 0, legacyEnabled: false, dataDir, logLevel: 'info',
    secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url'), ...overrides,
  } });
  const herald = await createHerald(options, { logger });
  try {
    const { http } = await herald.listen();
    const page = (await fetch(`${http}/demo`)).status;
    const token = (await fetch(`${http}/demo/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'admin', id: 1 }) })).status;
    return { page, token, log: chunks.join('') };
  } finally {
    await herald.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('demo: auto', () => {
  test('on for a loopback listener without publicUrl (the quick start)', async () => {
    const r = await demoAnswers({});
    assert.deepEqual([r.page, r.token], [200, 200]);
    assert.doesNotMatch(r.log, /demo is on where others may reach it/);
  });

  test('off once publicUrl says the server is reached from elsewhere', async () => {
    const r = await demoAnswers({ publicUrl: 'https://panel.example.net/herald' });
    assert.deepEqual([r.page, r.token], [404, 404]);
  });

  test('off for a listener that is not loopback', () => {
    // Decided from the options alone: a test must not listen on a public address.
    const quickStart = { host: '127.0.0.1', publicUrl: '', allowedOrigins: [] as string[], authResolver: 'token' as const };
    assert.equal(demoEnabled({ ...quickStart, demo: 'auto', host: '0.0.0.0' }), false);
    assert.equal(demoEnabled({ ...quickStart, demo: 'auto', host: '192.0.2.10' }), false);
    assert.equal(demoEnabled({ ...quickStart, demo: 'auto', host: '::1' }), true);
    assert.equal(demoEnabled({ ...quickStart, demo: false }), false);
    assert.equal(demoEnabled({ ...quickStart, demo: true, host: '0.0.0.0' }), true);
  });

  // Behind a reverse proxy that passes its upstream's address as Host (nginx's proxy_pass
  // without proxy_set_header Host, Apache's ProxyPass), a loopback listener is reached from
  // anywhere with a loopback Host: the demo minted admin tokens for the internet. Such a
  // server names its panel's origin (its browsers could not connect otherwise), or asks a panel.
  test('off once allowedOrigins names the panel, or a panel decides who a tab is', async () => {
    const named = await demoAnswers({ allowedOrigins: ['https://panel.example.net'] });
    assert.deepEqual([named.page, named.token], [404, 404]);
    const quickStart = { demo: 'auto' as const, host: '127.0.0.1', publicUrl: '', allowedOrigins: [] as string[] };
    assert.equal(demoEnabled({ ...quickStart, authResolver: 'sql' }), false);
    assert.equal(demoEnabled({ ...quickStart, authResolver: 'http' }), false);
  });

  test('said in the log whenever it is on', async () => {
    const r = await demoAnswers({});
    assert.match(r.log, /demo is on at \/demo/);
    const off = await demoAnswers({ publicUrl: 'https://panel.example.net/herald' });
    assert.doesNotMatch(off.log, /demo is on/);
  });

  test('true forces it on, with a warning where others may reach it; false turns it off', async () => {
    const forced = await demoAnswers({ demo: true, publicUrl: 'https://panel.example.net/herald' });
    assert.deepEqual([forced.page, forced.token], [200, 200]);
    assert.match(forced.log, /demo is on where others may reach it/);
    const off = await demoAnswers({ demo: false });
    assert.deepEqual([off.page, off.token], [404, 404]);
  });

  test('HERALD_DEMO takes auto, true and false', () => {
    for (const [value, expected] of [['auto', 'auto'], ['true', true], ['false', false]] as const) {
      assert.equal(loadOptions({ env: { HERALD_DEMO: value }, overrides: {} }).demo, expected);
    }
  });
});
