/**
 * The demo page of a Herald of its own, in a page of a browser of its own:
 * what the tests of the browser library's display (the sanitizer, toasts)
 * need, where no test sends through the server. Closing closes both, and
 * what did open when the other part failed (openAll).
 */
import type { Page } from 'playwright-core';
import { launchBrowser, newPage } from './browser.js';
import { openAll } from './open-all.js';
import { startHerald } from './server.js';

export interface DemoPage {
  page: Page;
  close(): Promise<void>;
}

export async function openDemoPage(): Promise<DemoPage> {
  const [server, browser] = await openAll([startHerald(), launchBrowser()]);
  const close = async (): Promise<void> => {
    await browser.close();
    await server.close();
  };
  try {
    const { page } = await newPage(browser);
    await page.goto(`${server.url}/demo`);
    return { page, close };
  } catch (err) {
    await close();
    throw err;
  }
}
