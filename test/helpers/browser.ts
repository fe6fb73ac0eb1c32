/**
 * A real Chromium for browser tests: Debian's /usr/bin/chromium driven by
 * playwright-core (never a downloaded browser), with the flags SERVICES.md
 * lists and a fresh profile. One browser per test file keeps the suite fast;
 * each test gets its own context (fresh storage) from it.
 *
 * Also makes sure the browser library is built (dist/client) and no older
 * than its sources, since the server serves it from there.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserServer, type Page } from 'playwright-core';
import type * as HeraldApi from '../../src/client/index.js';

export const CHROMIUM = '/usr/bin/chromium';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Screenshots and other artefacts of browser tests. */
export const TEST_OUTPUT = join(ROOT, 'test-output');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Whether browser tests can run. Under CI=true a missing Chromium is an
 * error (the CI script installs it); elsewhere the tests skip, saying why.
 */
export function browserSkipReason(): string | false {
  if (existsSync(CHROMIUM)) return false;
  const why = `${CHROMIUM} is missing: apt-get update && apt-get install -y chromium`;
  if (process.env.CI === 'true') throw new Error(why);
  console.log(`# skipping browser tests: ${why}`);
  return why;
}

/**
 * Launches Chromium. Playwright gives every launch a new temporary profile
 * (its own --user-data-dir, removed on close); it refuses the flag in `args`.
 * `backForwardCache`: keep Chromium's back/forward cache on (Playwright turns it off).
 *
 * Under the suite's runner (scripts/run-tests.mjs) this connects to the one
 * Chromium the runner started for every file (HERALD_TEST_BROWSER_WS): a
 * launch took about 1.2 s and 1.4 s of CPU, in each of some thirty files. The
 * connection's contexts are its own (fresh storage), and closing it closes
 * them. A browser with other flags (backForwardCache) is launched all the same.
 */
export async function launchBrowser(options: { backForwardCache?: boolean } = {}): Promise<Browser> {
  ensureClientBuilt();
  const shared = process.env.HERALD_TEST_BROWSER_WS;
  if (shared && !options.backForwardCache) return chromium.connect(shared, { timeout: 30_000 });
  const ignoreDefaultArgs = options.backForwardCache ? ['--disable-back-forward-cache'] : undefined;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, ...(ignoreDefaultArgs ? { ignoreDefaultArgs } : {}), timeout: 30_000 });
}

/** The Chromium the suite's runner starts for every test file (launchBrowser connects to it). */
export function launchBrowserServer(): Promise<BrowserServer> {
  return chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 30_000 });
}

/**
 * A fresh context (own storage) with one page; console errors are echoed when HERALD_TEST_LOG is set.
 * `bypassCSP`: for a test that uses the demo page only to host the library and points it at
 * a server of its own on another port, which the demo page's CSP (connect-src 'self') refuses.
 */
export async function newPage(browser: Browser, options: { bypassCSP?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 }, bypassCSP: options.bypassCSP ?? false });
  // tsx, and the suite's bundle (scripts/test-tree.mjs), compile page.evaluate callbacks with
  // esbuild's keepNames, which calls a `__name` helper that only exists in Node: give the page one.
  await context.addInitScript('globalThis.__name = (target) => target;');
  const page = await context.newPage();
  if (process.env.HERALD_TEST_LOG) page.on('console', (m) => console.log(`[page ${m.type()}] ${m.text()}`));
  return { context, page };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

let built = false;
/** Rebuilds dist/client when a source of it is newer than the build (or the build is missing). */
export function ensureClientBuilt(): void {
  if (built) return;
  const out = join(ROOT, 'dist/client/herald.min.js');
  const sources = Math.max(newestMtime(join(ROOT, 'src/client')), newestMtime(join(ROOT, 'src/protocol')), statSync(join(ROOT, 'scripts/build-client.mjs')).mtimeMs);
  if (!existsSync(out) || statSync(out).mtimeMs < sources) {
    throw new Error('dist/client is missing or older than src/client: run `node scripts/build-client.mjs` (npm test builds first)');
  }
  built = true;
}

export function outputPath(file: string): string {
  mkdirSync(TEST_OUTPUT, { recursive: true });
  return join(TEST_OUTPUT, file);
}

// ---- what tests see of a page ------------------------------------------------


/** The script-tag build's globals, as a test's page.evaluate sees them. */
export interface PageGlobals {
  Herald: typeof HeraldApi & { client: HeraldApi.HeraldClient | undefined; dispatcher: HeraldApi.Dispatcher };
  AMessageChecker: {
    extend(e: HeraldApi.LegacyExtension): () => void;
    processData(data: unknown): void;
    on: HeraldApi.Dispatcher['on'];
  };
  /** What a test's recorder collected in the page. */
  rec: Recorder;
}

/** Collected in the page by installRecorder(). */
export interface Recorder {
  frames: unknown[];
  messages: Array<Record<string, unknown>>;
  states: string[];
  events: Array<{ name: string; payload: unknown }>;
}

/** The page's window with the globals (for page.evaluate callbacks). */
export type W = Window & typeof globalThis & PageGlobals;

/**
 * Opens /demo without signing in (it loads /herald.js and the demo script),
 * connects a client with a token and records frames, MESSAGEs, states and
 * connection events into `window.rec`. Resolves when the client is open.
 */
export async function connectPage(
  page: Page,
  baseUrl: string,
  token: string,
  options: { kind?: 'admin' | 'user'; reconnect?: { baseMs: number; capMs: number }; toasts?: { maxToasts: number; timeoutMs: number }; ackDelayMs?: number; waitOpen?: boolean; path?: string } = {},
): Promise<void> {
  await page.goto(`${baseUrl}${options.path ?? '/demo'}`);
  await page.evaluate(
    ({ token, kind, reconnect, toasts, ackDelayMs }) => {
      const w = window as W;
      const rec: Recorder = { frames: [], messages: [], states: [], events: [] };
      w.rec = rec;
      const c = w.Herald.connect({ kind, token, url: location.origin, autoConnect: false, ...(reconnect ? { reconnect } : {}), ...(toasts ? { toasts } : {}), ...(ackDelayMs ? { ackDelayMs } : {}) });
      c.events.on('frame', (f) => rec.frames.push(f));
      c.events.on('state', (s) => rec.states.push(s));
      for (const name of ['connected', 'disconnected', 'reconnecting', 'rejected', 'reset', 'error'] as const) {
        c.events.on(name, (payload: unknown) => rec.events.push({ name, payload: JSON.parse(JSON.stringify(payload ?? null)) as unknown }));
      }
      c.on('MESSAGE', (m) => {
        rec.messages.push(m);
      });
      c.connect();
    },
    { token, kind: options.kind ?? 'admin', reconnect: options.reconnect, toasts: options.toasts, ackDelayMs: options.ackDelayMs },
  );
  if (options.waitOpen !== false) await waitForState(page, 'open');
}

export async function waitForState(page: Page, state: string, timeout = 10_000): Promise<void> {
  await page.waitForFunction((s) => (window as W).Herald.client?.state === s, state, { timeout });
}

/** Waits until the page's recorder holds `n` MESSAGEs. */
export async function waitForMessages(page: Page, n: number, timeout = 10_000): Promise<Array<Record<string, unknown>>> {
  await page.waitForFunction((k) => (window as W).rec.messages.length >= k, n, { timeout });
  return page.evaluate(() => (window as W).rec.messages);
}

export async function recorder(page: Page): Promise<Recorder> {
  return page.evaluate(() => (window as W).rec);
}
