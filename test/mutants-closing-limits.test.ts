/**
 * While the server closes a tab (a kick's ack wait), an ack the tab sends is
 * still recorded (test/gateway-closing-acks.test.ts), but only within the
 * limits every frame has (connection.ts, #onMessageWhileClosing): one frame
 * past maxFrameBytes, or past maxFramesPer10s in the window, is read and
 * dropped, ack or not. Otherwise a closing tab had no bound at all on what
 * it made the server parse. (Mutation review rA: the check reduced to
 * `isBinary` survived the suite.) The tab sends all its frames but the last
 * while it is open, and a PING whose PONG says the server read them (they
 * count in the same 10 s window); then the last, the ack, the moment the close
 * notice reaches it, before it answers the close frame. So the server has one
 * frame to read within the kick's fixed 1 s ack wait: with all thousand sent
 * at the notice, the control case failed twice under the suite's load, the
 * wait over before the server had read them.
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
   * Sends one notification to admin `aid` and waits for it in a new tab, which then sends `before`
   * frames while open (PONGs, and a PING whose answer it waits for); then kicks the tab, which
   * sends `answer(SEQ, EPOCH)` the moment the close notice reaches it. Returns how the tab was
   * closed and whether the notification is acknowledged after.
   */
  async function kickAndAnswer(aid: number, before: number, answer: (seq: number, epoch: string) => string): Promise<{ code: number; acknowledged: boolean }> {
    const tab: TestTab = await s.tab('admin', aid);
    await tab.nextOfType('WELCOME');
    const sent = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const n = await tab.nextOfType('MESSAGE');
    for (let i = 0; i < before - 1; i++) tab.ws.send('{"TYPE":"PONG"}');
    tab.ws.send('{"TYPE":"PING"}');
    await tab.nextOfType('PONG');
    tab.ws.on('message', (data) => {
      if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE === 'close') tab.ws.send(answer(n.SEQ, n.EPOCH));
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
    // The ack is the window's last allowed frame, as large as a frame may be.
    const r = await kickAndAnswer(61, MAX_FRAMES_PER_10S - 1, (seq, epoch) => ack(seq, epoch, MAX_FRAME_BYTES));
    assert.deepEqual(r, { code: 4403, acknowledged: true });
  });

  test('an ack in a frame larger than maxFrameBytes is not recorded; the tab is closed as kicked', async () => {
    // Past maxFrameBytes but within what ws reads (twice it): the server reads it, and drops it.
    const r = await kickAndAnswer(62, 1, (seq, epoch) => ack(seq, epoch, MAX_FRAME_BYTES + 1));
    assert.deepEqual(r, { code: 4403, acknowledged: false });
  });

  test(`an ack past ${MAX_FRAMES_PER_10S} frames in 10 s is not recorded; the tab is closed as kicked`, async () => {
    const r = await kickAndAnswer(63, MAX_FRAMES_PER_10S, (seq, epoch) => ack(seq, epoch));
    assert.deepEqual(r, { code: 4403, acknowledged: false });
  });
});
