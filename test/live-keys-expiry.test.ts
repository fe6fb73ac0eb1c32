/**
 * The keys of live-only sends are forgotten when their window ends, whether
 * or not another keyed send comes. Pruning used to run only inside the next
 * claim: a burst of 50,000 keys followed by silence held ~9 MB past the
 * 5-minute window, until one more keyed send arrived.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LiveKeys } from '../src/server/live-keys.js';
import { runModule } from './helpers/node-child.js';

/** Resolves once `check()` holds; fails after `ms`, saying what it waited for. */
async function until(check: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('LiveKeys: keys expire without another claim', () => {
  test('a burst of keys is forgotten when its window ends, with no claim after it', async () => {
    const keys = new LiveKeys({ windowMs: 1000 });
    for (let i = 0; i < 50_000; i++) keys.claim(`user:${1 + (i % 50)}`, `burst-${i}`);
    assert.equal(keys.size, 50_000);
    await until(() => keys.size === 0, 'the burst is forgotten');
  });

  test('each key goes at the end of its own window, oldest first', async () => {
    const keys = new LiveKeys({ windowMs: 300 });
    keys.claim('admin:1', 'early');
    await new Promise((resolve) => setTimeout(resolve, 150));
    keys.claim('admin:1', 'late');
    await until(() => keys.size === 1, 'the early key is forgotten');
    assert.equal(keys.claim('admin:1', 'late'), false, 'the late key is still remembered, its window still open');
    await until(() => keys.size === 0, 'the late key is forgotten in turn');
  });

  test('a released key does not stop the others from expiring', async () => {
    let now = 0;
    const keys = new LiveKeys({ windowMs: 30, now: () => now });
    keys.claim('s', 'a');
    now = 20;
    keys.claim('s', 'b');
    now = 60;
    keys.release('s', 'a');
    await until(() => keys.size === 0, 'b is forgotten after a was released');
  });

  test('close forgets the keys', () => {
    const keys = new LiveKeys();
    keys.claim('s', 'a');
    keys.close();
    assert.equal(keys.size, 0);
  });

  test('the timer never keeps the process alive: a process with a key remembered for 5 minutes exits at once', { timeout: 20_000 }, async () => {
    const module = new URL('../src/server/live-keys.ts', import.meta.url).href;
    const out = await runModule(`
      import { LiveKeys } from ${JSON.stringify(module)};
      const keys = new LiveKeys();
      keys.claim('admin:1', 'k');
      console.log(keys.size);
      // Fires only if something else keeps the process up (unref'd, it does not itself):
      // the child then ends with a reason in seconds instead of holding the test run for the 5 minutes.
      setTimeout(() => {
        console.log('still alive after 10 s: the timer of the key keeps the process up');
        process.exit(3);
      }, 10_000).unref();
    `);
    assert.equal(out.trim(), '1');
  });
});
