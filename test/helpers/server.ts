/**
 * Starts a real Herald on 127.0.0.1, port 0, with a fresh data dir, and owns
 * its teardown. Every end-to-end test goes through here.
 */
import type { MessageStore } from '../../src/server/store/message-store.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createHerald, type Herald } from '../../src/server/herald.js';
import { loadOptions, type HeraldOptions, type OptionKey } from '../../src/server/options.js';
import type { PrincipalKind } from '../../src/protocol/principal.js';
import { TestTab, type TestTabOptions } from './ws-client.js';

export interface TestServer {
  herald: Herald;
  options: HeraldOptions;
  /** http://127.0.0.1:PORT */
  url: string;
  /** ws://127.0.0.1:PORT */
  wsUrl: string;
  apiToken: string;
  secret: string;
  dataDir: string;
  /** A browser token for a person. */
  token(kind: PrincipalKind, id: number, ttlMs?: number): Promise<string>;
  /** Calls the HTTP API with the bearer token; returns status and parsed JSON (or text). */
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  /** Opens a tab (a real `ws` client) for a person, authenticated with a fresh token. */
  tab(kind: PrincipalKind, id: number, options?: TestTabOptions): Promise<TestTab>;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Reuse a data dir (restart tests); it is then not removed on close. */
  dataDir?: string;
  /** Fixed secrets (restart tests). */
  secret?: string;
  apiToken?: string;
  /** A store of the test's own instead of the configured one (fault injection around a real store). */
  store?: MessageStore;
}

export async function startHerald(overrides: Partial<Record<OptionKey, unknown>> = {}, start: StartOptions = {}): Promise<TestServer> {
  const ownDir = start.dataDir === undefined;
  const dataDir = start.dataDir ?? mkdtempSync(join(tmpdir(), 'herald-test-'));
  const secret = start.secret ?? randomBytes(32).toString('base64url');
  const apiToken = start.apiToken ?? randomBytes(24).toString('base64url');
  let options: HeraldOptions;
  let herald: Herald | undefined;
  let urls: Awaited<ReturnType<Herald['listen']>>;
  try {
    options = loadOptions({
      env: {},
      overrides: {
        host: '127.0.0.1', port: 0, legacyPort: 0, dataDir, secret, apiToken,
        logLevel: process.env.HERALD_TEST_LOG ?? 'silent', logPretty: false, demo: true, ...overrides,
      },
    });
    herald = await createHerald(options, start.store ? { store: start.store } : {});
    urls = await herald.listen();
  } catch (err) {
    // A start the test expects to be refused leaves no data dir behind.
    await herald?.close().catch(() => undefined);
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const opened = new Set<TestTab>();
  const server: TestServer = {
    herald, options, url: urls.http, wsUrl: urls.ws, apiToken, secret, dataDir,
    async token(kind, id, ttlMs) {
      return (await herald.mintToken({ kind, id }, ttlMs)).token;
    },
    async api(method, path, body, headers = {}) {
      const res = await fetch(`${urls.http}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${apiToken}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      return { status: res.status, body: parsed };
    },
    async tab(kind, id, tabOptions = {}) {
      const token = await server.token(kind, id);
      const tab = await TestTab.open(`${urls.ws}/ws/${kind}`, { ...tabOptions, query: { token, ...tabOptions.query } });
      opened.add(tab);
      return tab;
    },
    async close() {
      for (const t of opened) t.terminate();
      await herald.close();
      if (ownDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}
