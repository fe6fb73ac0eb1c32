/**
 * maxFramesPer10s and maxErrorsPer10s (README "Limits": more than 1000 frames
 * or 50 bad frames in the last 10 s close a tab with 4429) are counted over a
 * sliding 10 s, not a window emptied as a whole 10 s after its first frame:
 * across such a window's edge a tab sent twice the limit in a moment and
 * stayed open. A real Connection and a real socket, on a clock the test sets
 * (ConnectionDeps.monotonicNow), so that no test waits 10 s.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../src/server/store/memory-store.js';
import { openBareConnection } from './helpers/bare-connection.js';
import type { TestTab } from './helpers/ws-client.js';

/** Sends `frames` frames, the last a PING, and waits until the tab has its PONG (frames are handled in order) or has closed. */
function burst(tab: TestTab, frames: number, frame = '{"TYPE":"PONG"}'): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const done = (outcome: 'open' | number): void => {
      clearTimeout(timer);
      tab.ws.off('message', onMessage).off('close', onClose);
      resolve(outcome);
    };
    const onMessage = (data: Buffer): void => {
      if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE === 'PONG') done('open');
    };
    const onClose = (code: number): void => done(code);
    const timer = setTimeout(() => reject(new Error(`neither a PONG nor a close within 10 s of ${frames} frames`)), 10_000);
    tab.ws.on('message', onMessage).on('close', onClose);
    for (let i = 1; i < frames; i++) tab.ws.send(frame);
    tab.send({ TYPE: 'PING' });
  });
}

async function connected(now: () => number): Promise<Awaited<ReturnType<typeof openBareConnection>>> {
  const bare = await openBareConnection(new MemoryStore({ maxPerStream: 100 }), {}, now);
  await bare.tab.nextOfType('WELCOME');
  return bare;
}

test('1000 frames just before a 10 s window ends and 1000 just after it close the tab with 4429', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 1), 'open');
    now = 9_800;
    assert.equal(await burst(tab, 999), 'open', '1000 frames in 10 s are allowed');
    // 0.4 s later, 10 s after the first frame: 1,998 frames within the last 10 s.
    now = 10_200;
    assert.equal(await burst(tab, 999), 4429);
  } finally {
    close();
  }
});

test('51 bad frames across a 10 s window\'s edge close the tab with 4429', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 1), 'open');
    now = 9_900;
    for (let i = 0; i < 50; i++) tab.ws.send('not json');
    assert.equal(await burst(tab, 1), 'open', '50 bad frames in 10 s are allowed');
    now = 10_100;
    assert.equal(await burst(tab, 50, 'not json'), 4429);
  } finally {
    close();
  }
});

test('a tab at 90% of the limit, a second at a time for 35 s, stays open', async () => {
  // What left the last 10 s no longer counts: any 10 s hold at most 11 of these bursts, 990 frames.
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    for (let second = 0; second < 35; second++) {
      now = second * 1000;
      assert.equal(await burst(tab, 90), 'open', `closed at ${second} s`);
    }
  } finally {
    close();
  }
});
