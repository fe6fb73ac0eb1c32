/**
 * A start that fails halfway gives back what it took: the ports already
 * listening, the store's file lock, the command audit file. So the same
 * process can try again (a test, an embedding program) and the CLI exits.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createHerald } from '../src/server/herald.js';
import { loadOptions, type OptionKey } from '../src/server/options.js';

function options(dataDir: string, overrides: Partial<Record<OptionKey, unknown>> = {}) {
  return loadOptions({
    env: {},
    overrides: {
      host: '127.0.0.1', port: 0, legacyPort: 0, dataDir, logLevel: 'silent',
      secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url'), ...overrides,
    },
  });
}

/** Files under `dir` this process has open. */
function openFilesUnder(dir: string): string[] {
  const files: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) files.push(target);
    } catch {
      // closed meanwhile (the readdir's own descriptor)
    }
  }
  return files;
}

async function listening(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

describe('a start that fails halfway', () => {
  test('a bad setting found after the command audit file was opened: the file is closed again', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    try {
      // commandsCwd is checked by the command runner, built after the audit file is open.
      await assert.rejects(createHerald(options(dir, { commandsCwd: join(dir, 'missing') })), { code: 'HERALD_ERR_CONFIG', message: /commandsCwd/ });
      assert.deepEqual(openFilesUnder(dir), [], 'nothing under the data dir is left open');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a bad allowedOrigins entry or publicUrl is a configuration error naming the option, found before anything is opened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    try {
      await assert.rejects(createHerald(options(dir, { allowedOrigins: ['panel.example.net'] })), { code: 'HERALD_ERR_CONFIG', message: /^option "allowedOrigins": "panel\.example\.net" is not an origin/ });
      await assert.rejects(createHerald(options(dir, { publicUrl: 'panel.example.net' })), { code: 'HERALD_ERR_CONFIG', message: /^option "publicUrl": "panel\.example\.net" is not a URL/ });
      assert.deepEqual(readdirSync(dir), [], 'no store file was created');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an IPv6 host (::1) starts and answers on http://[::1]:PORT instead of failing with "Invalid URL"', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    try {
      const herald = await createHerald(options(dir, { host: '::1', legacyEnabled: false }));
      try {
        const urls = await herald.listen();
        assert.match(urls.http, /^http:\/\/\[::1\]:\d+$/);
        const ping = await fetch(`${urls.http}/healthz`);
        assert.equal(ping.status, 200);
      } finally {
        await herald.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the legacy port in use after HTTP listens: close() gives back the HTTP port and the store, and a retry in the same process starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    const busy = await listening();
    try {
      const herald = await createHerald(options(dir, { legacyPort: busy.port }));
      await assert.rejects(herald.listen(), { code: 'EADDRINUSE' });
      const httpPort = (herald.app.server.address() as { port: number }).port;
      await herald.close();
      // The retry takes the same HTTP port and the same store file.
      const retry = await createHerald(options(dir, { port: httpPort }));
      try {
        const urls = await retry.listen();
        assert.equal(new URL(urls.http).port, String(httpPort));
        assert.ok(urls.legacy);
      } finally {
        await retry.close();
      }
      const refused = connect(httpPort, '127.0.0.1');
      await assert.rejects(once(refused, 'connect'), { code: 'ECONNREFUSED' }, 'nothing listens once both are closed');
    } finally {
      busy.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the store locked by another Herald: refused with a clear error, and the first goes on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    const first = await createHerald(options(dir));
    try {
      await assert.rejects(createHerald(options(dir)), { code: 'HERALD_ERR_UNAVAILABLE', message: /in use by another process/ });
      await first.listen();
    } finally {
      await first.close();
    }
    // Once the first is closed, the lock is free.
    const second = await createHerald(options(dir));
    await second.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('close() twice, and close() of a Herald that never listened, both end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-start-fail-'));
    try {
      const herald = await createHerald(options(dir));
      const a = herald.close();
      const b = herald.close();
      assert.equal(a, b, 'the same close');
      await a;
      await herald.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
