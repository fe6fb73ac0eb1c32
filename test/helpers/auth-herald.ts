/**
 * A real Herald for the auth tests, with its log captured (so a test can
 * assert that no session id or token ever reaches it) and a way to open raw
 * `ws` tabs with any cookie, header or Origin.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createHerald, type Herald, type HeraldUrls } from '../../src/server/herald.js';
import { REDACT_PATHS } from '../../src/server/logger.js';
import { loadOptions, type OptionKey } from '../../src/server/options.js';
import { TestTab, type TestTabOptions } from './ws-client.js';

export interface AuthHerald {
  herald: Herald;
  wsUrl: string;
  /** Everything Herald logged so far (JSON lines, level trace). */
  log(): string;
  /** Opens a tab on /ws/admin or /ws/user; rejects with `status` when the handshake is refused. */
  open(kind: 'admin' | 'user', options?: TestTabOptions): Promise<TestTab>;
  /** The handshake's HTTP status: 101 when it was accepted. */
  status(kind: 'admin' | 'user', options?: TestTabOptions): Promise<number>;
  close(): Promise<void>;
}

export async function startAuthHerald(overrides: Partial<Record<OptionKey, unknown>>): Promise<AuthHerald> {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-auth-'));
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  // The production logger's redaction, at the most verbose level: whatever could leak, would.
  const logger = pino({ level: 'trace', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, stream);
  // A start that is refused (a configuration error the test expects) leaves no directory behind.
  let herald: Herald;
  let urls: HeraldUrls;
  try {
    const options = loadOptions({
      env: {},
      overrides: {
        host: '127.0.0.1', port: 0, legacyPort: 0, dataDir,
        secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url'),
        ...overrides,
      },
    });
    herald = await createHerald(options, { logger });
    try {
      urls = await herald.listen();
    } catch (err) {
      await herald.close();
      throw err;
    }
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const opened = new Set<TestTab>();
  const open = async (kind: 'admin' | 'user', o: TestTabOptions = {}) => {
    const tab = await TestTab.open(`${urls.ws}/ws/${kind}`, { origin: urls.http, ...o });
    opened.add(tab);
    return tab;
  };
  return {
    herald,
    wsUrl: urls.ws,
    log: () => chunks.join(''),
    open,
    async status(kind, o = {}) {
      return (await TestTab.status(`${urls.ws}/ws/${kind}`, { origin: urls.http, ...o })).status;
    },
    async close() {
      for (const t of opened) t.terminate();
      await herald.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Fails unless `p` settles within `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
