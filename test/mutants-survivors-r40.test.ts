/**
 * Behaviour a mutation audit found unchecked: a re-check that finds a session
 * gone forgets the cached admission even when refusals are not cached; only
 * the owner of a command that has left the history learns that it ended; and
 * an envelope's TOKEN never overrides the TOKEN of the request inside it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseLegacyRequest } from '../src/server/api/legacy-request.js';
import { CachedResolver } from '../src/server/auth/cached-resolver.js';
import { parseCookies, type CredentialResolver, type Handshake } from '../src/server/auth/session-resolver.js';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import { isHeraldError, type ErrorCode } from '../src/server/errors.js';
import { makeRig } from './commands-fixture.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

const refusedWith = (code: ErrorCode, text?: RegExp) => (e: unknown) =>
  isHeraldError(e) && e.code === code && (text === undefined || text.test(e.message));

describe('a session found gone by a re-check', () => {
  it('is asked about again on the next handshake, though refusals are not cached (authNegativeCacheMs 0)', async () => {
    const valid = new Set(['s']);
    let lookups = 0;
    const inner: CredentialResolver = {
      name: 'table',
      credentialOf: (hs) => hs.cookies.get('sid') ?? { outcome: 'refused', reason: 'no cookie' },
      resolve: async () => ({ outcome: 'refused', reason: 'unused' }),
      recheck: async (kind, credential) => {
        lookups++;
        return valid.has(credential) ? { outcome: 'admitted', principal: { kind, id: 1 }, credential } : { outcome: 'refused', reason: 'session not found' };
      },
      close: async () => {},
    };
    const cache = new CachedResolver(inner, { positiveMs: 60_000, negativeMs: 0, maxEntries: 10 });
    const hs: Handshake = { kind: 'admin', headers: {}, cookies: parseCookies('sid=s'), query: new URLSearchParams(), remoteAddress: undefined };
    try {
      assert.equal((await cache.resolve(hs)).outcome, 'admitted');
      valid.delete('s'); // logged out in the panel
      assert.equal((await cache.recheck('admin', 's')).outcome, 'refused');
      // The tab the watcher closed reconnects with the same cookie: it is asked again, and refused.
      assert.equal((await cache.resolve(hs)).outcome, 'refused', 'the cached admission outlived the refusal');
      assert.equal(lookups, 3);
    } finally {
      await cache.close();
    }
  });
});

describe('cancelling a command that has left the history', () => {
  it('tells only its owner that it has ended; another admin is refused (FORBIDDEN)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-r40-audit-'));
    const audit = new SqliteCommandAudit(join(dir, 'audit.sqlite'), 1000);
    const rig = await makeRig({ commandsAllow: ['echo'], commandsHistory: 1 }, { audit });
    try {
      const first = await rig.runner.start({ aid: 1, program: 'echo', args: ['first'], door: 'http' });
      assert.equal((await rig.runner.wait(first.id))?.state, 'succeeded');
      const second = await rig.runner.start({ aid: 1, program: 'echo', args: ['second'], door: 'http' });
      assert.equal((await rig.runner.wait(second.id))?.state, 'succeeded');
      assert.equal(rig.runner.get(first.id), undefined, 'the first run has left the history');
      assert.equal(rig.runner.recorded(first.id)?.aid, 1, 'the trail knows it');

      await assert.rejects(rig.runner.cancel(first.id, { kind: 'admin', id: 2 }), refusedWith('HERALD_ERR_FORBIDDEN', /only the admin who owns/),
        'another admin learns nothing about the command');
      await assert.rejects(rig.runner.cancel(first.id, { kind: 'user', id: 1 }), refusedWith('HERALD_ERR_FORBIDDEN'),
        'a user with the owner\'s number is not the owner');
      await assert.rejects(rig.runner.cancel(first.id, { kind: 'admin', id: 1 }), refusedWith('HERALD_ERR_CONFLICT', /already ended \(succeeded\)/));
    } finally {
      await rig.close();
      audit.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an envelope\'s TOKEN', () => {
  it('does not override the TOKEN of the request inside it; it stands in only for a missing one', () => {
    const token = (value: unknown) => {
      const parsed = parseLegacyRequest(value);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      return parsed.request.token;
    };
    assert.equal(token({ TOKEN: 'outer', MESSAGE: { TYPE: 'PING', TOKEN: 'inner' } }), 'inner');
    assert.equal(token({ TOKEN: 'outer', MESSAGE: JSON.stringify({ TYPE: 'PING', TOKEN: 'inner' }) }), 'inner');
    assert.equal(token({ TOKEN: 'outer', MESSAGE: { TYPE: 'PING' } }), 'outer');
  });

  describe('through a real legacy connection with a token configured', () => {
    const TOKEN = 'r40-legacy-token-0123456789';
    let server: TestServer;
    let client: RawLegacyClient | undefined;
    before(async () => {
      server = await startHerald({ legacyToken: TOKEN });
    });
    after(async () => {
      client?.destroy();
      await server?.close();
    });

    it('refuses a MESSAGE whose own TOKEN is wrong inside an envelope with the right one, and carries out the reverse', async () => {
      client = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
      const message = (inner: string) => ({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 5, DATA: { TEXT: 'x' }, TOKEN: inner });
      const wrongInside = (await client.request(JSON.stringify({ TOKEN: TOKEN, MESSAGE: message('wrong') }))).answer as { TYPE?: string; ERROR?: string };
      assert.equal(wrongInside.TYPE, 'ERROR', `the outer TOKEN stood in for the request's own: ${JSON.stringify(wrongInside)}`);
      assert.match(wrongInside.ERROR ?? '', /TOKEN/);
      const rightInside = (await client.request(JSON.stringify({ TOKEN: 'wrong', MESSAGE: message(TOKEN) }))).answer;
      assert.equal(rightInside, 0, 'accepted (nobody of admin 5 is connected)');
    });
  });
});
