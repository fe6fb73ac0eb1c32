/**
 * One browser context shared by the tests of a file, each test opening its
 * own pages in it: a context costs Chromium about twice what a page in an
 * existing one does (a context and a page per test was most of a browser
 * test file's CPU time). Made as helpers/browser.ts's newPage() makes one.
 *
 * For tests that do not need storage of their own: pages of one origin share
 * localStorage and cookies here, so tests use distinct people (the library's
 * "shown" record is kept per person) or origins (a proxy port of their own).
 * A test that changes the context itself (permissions, offline) takes a
 * context of its own from newPage().
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';

export async function sharedContext(browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  // tsx compiles page.evaluate callbacks with esbuild's keepNames, which
  // calls a `__name` helper that only exists in Node: give the page one.
  await context.addInitScript('globalThis.__name = (target) => target;');
  return context;
}

/** A new page in `context`; console messages are echoed when HERALD_TEST_LOG is set. */
export async function newTab(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  if (process.env.HERALD_TEST_LOG) page.on('console', (m) => console.log(`[page ${m.type()}] ${m.text()}`));
  return page;
}
