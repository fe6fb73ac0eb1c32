/**
 * While the server closes a tab (a kick's ack wait), an ack the tab sends is
 * still recorded (test/gateway-closing-acks.test.ts), but only within the
 * limits every frame has (connection.ts, #onMessageWhileClosing): one frame
 * past maxFrameBytes, or past maxFramesPer10s in the window, is read and
 * dropped, ack or not. Otherwise a closing tab had no bound at all on what
 * it made the server parse. (Mutation review rA: the check reduced to
 * `isBinary` survived the suite.) The tab sends its frames the moment the
 * close notice reaches it, before it answers the close frame.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/** herald.ts: a tab may send this many frames in 10 s. */
const MAX_FRAMES_PER_10S = 1000;
const MAX_FRAME_BYTES = 256;

describe('frames a tab sends while it is being closed', () => {
  let s: TestServer;
  beforeEach(async () => {
    s = await startHerald({ heartbeatMs: 60_000, maxFrameBytes: MAX_FRAME_BYTES });
  });
  afterEach(() => s.close());

  /**
   * Sends one notification to admin `aid` and waits for it in a new tab; then kicks the tab, which
   * sends `frames(SEQ, EPOCH)` the moment the close notice reaches it. Returns how the tab was
   * closed and whether the notification is acknowledged after.
   */
  async function kickAndAnswer(aid: number, frames: (seq: number, epoch: string) => string[]): Promise<{ code: number; acknowledged: boolean }> {
    // Not answering the heartbeat's PING, which a new tab may be sent at once (each tab is checked
    // in its slice of the heartbeat): the answer was one more frame in the window, the control
    // case's ack the 1,001st, and it failed whenever the PING came in time.
    const tab: TestTab = await s.tab('admin', aid, { autoPong: false });
    await tab.nextOfType('WELCOME');
    const sent = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const n = await tab.nextOfType('MESSAGE');
    tab.ws.on('message', (data) => {
      if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE !== 'close') return;
      for (const f of frames(n.SEQ, n.EPOCH)) tab.ws.send(f);
    });
    const kicked = await s.api('POST', '/api/v1/disconnect', { to: { aid }, reason: 'logged out' });
    assert.equal(kicked.body.tabs, 1, JSON.stringify(kicked.body));
    const { code } = await tab.closed;
    const status = await s.api('GET', `/api/v1/messages/${sent.body.results[0].messageId}`);
    assert.equal(status.status, 200, JSON.stringify(status.body));
    return { code, acknowledged: status.body.acknowledged as boolean };
  }

  const ack = (seq: number, epoch: string, padTo = 0): string => JSON.stringify({ TYPE: 'RESPONSE', SEQ: seq, EPOCH: epoch }).padEnd(padTo, ' ');

  test('an ack within the limits is recorded (the case the two below depart from)', async () => {
    const r = await kickAndAnswer(61, (seq, epoch) => [...Array.from({ length: MAX_FRAMES_PER_10S - 1 }, () => '{"TYPE":"PONG"}'), ack(seq, epoch, MAX_FRAME_BYTES)]);
    assert.deepEqual(r, { code: 4403, acknowledged: true });
  });

  test('an ack in a frame larger than maxFrameBytes is not recorded; the tab is closed as kicked', async () => {
    // Past maxFrameBytes but within what ws reads (twice it): the server reads it, and drops it.
    const r = await kickAndAnswer(62, (seq, epoch) => [ack(seq, epoch, MAX_FRAME_BYTES + 1)]);
    assert.deepEqual(r, { code: 4403, acknowledged: false });
  });

  test(`an ack past ${MAX_FRAMES_PER_10S} frames in 10 s is not recorded; the tab is closed as kicked`, async () => {
    const r = await kickAndAnswer(63, (seq, epoch) => [...Array.from({ length: MAX_FRAMES_PER_10S }, () => '{"TYPE":"PONG"}'), ack(seq, epoch)]);
    assert.deepEqual(r, { code: 4403, acknowledged: false });
  });
});
