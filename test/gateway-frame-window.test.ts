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

// Counted in seconds, not estimated from two windows as if each window's frames were spread evenly
// over it: a window began at a tab's first frame, so a burst sat at its start, counted long after it left.

test('950 frames at 0 s, then 100 at 10.5 s (100 in the last 10 s) keep the tab open', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 950), 'open', '950 frames at 0 s');
    now = 10_500;
    assert.equal(await burst(tab, 100), 'open', 'the 950 are older than 10 s');
  } finally {
    close();
  }
});

test('1000 frames at 0 s and 401 at 14 s (never more than 1000 in any 10 s) keep the tab open', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 1000), 'open', '1000 frames at 0 s');
    now = 14_000;
    assert.equal(await burst(tab, 401), 'open', '401 frames in the last 10 s');
  } finally {
    close();
  }
});

test('950 frames at 0 s, 1 at 5 s and 99 at 10.5 s keep the tab open: the 950 leave the last 10 s, the one at 5 s does not', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 950), 'open');
    now = 5_000;
    assert.equal(await burst(tab, 1), 'open');
    now = 10_500;
    assert.equal(await burst(tab, 99), 'open', '100 frames in the last 10 s');
    now = 14_900;
    assert.equal(await burst(tab, 900), 'open', '1000 frames in the last 10 s');
    assert.equal(await burst(tab, 1), 4429, '1001 frames in the last 10 s');
  } finally {
    close();
  }
});

test('50 bad frames at 0 s, then 5 at 10.5 s (5 in the last 10 s) keep the tab open', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 51, 'not json'), 'open', '50 bad frames at 0 s');
    now = 5_000;
    assert.equal(await burst(tab, 1), 'open');
    now = 10_500;
    assert.equal(await burst(tab, 6, 'not json'), 'open', 'the 50 are older than 10 s');
  } finally {
    close();
  }
});

test('1001 frames within 10 s close the tab with 4429, however they fall across seconds', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    // 100 a second for 10 s (0 s to 9 s), then one more at 9.999 s.
    for (let second = 0; second < 10; second++) {
      now = second * 1000;
      assert.equal(await burst(tab, 100), 'open', `closed at ${second} s`);
    }
    now = 9_999;
    assert.equal(await burst(tab, 1), 4429);
  } finally {
    close();
  }
});

test('500 frames at 0.9 s, 500 at 5 s and 1 at 10.5 s (1001 within 9.6 s) close the tab with 4429', async () => {
  // The last 10 s at 10.5 s reach back into the second from 0 s to 1 s, ten seconds before the
  // one now: its frames at 0.9 s still count.
  let now = 900;
  const { tab, close } = await connected(() => now);
  try {
    assert.equal(await burst(tab, 500), 'open');
    now = 5_000;
    assert.equal(await burst(tab, 500), 'open', '1000 frames in 10 s are allowed');
    now = 10_500;
    assert.equal(await burst(tab, 1), 4429, '1001 frames within 9.6 s');
  } finally {
    close();
  }
});

test('a tab at 99.9% of the limit, 999 frames every 10.001 s for 60 s, stays open', async () => {
  let now = 0;
  const { tab, close } = await connected(() => now);
  try {
    for (let i = 0; i < 6; i++) {
      now = i * 10_001;
      assert.equal(await burst(tab, 999), 'open', `closed at burst ${i}`);
    }
  } finally {
    close();
  }
});
