/**
 * For the tests of an orderly close (the close notice, then the close frame
 * once the tab has acked): a notification the tab then owes an ack for, and
 * a client's answer to the notice.
 */
import assert from 'node:assert/strict';
import type { TestServer } from './server.js';
import type { TestTab } from './ws-client.js';

/** Sends one MESSAGE to admin `aid`; its message id once `tab` has it (it then owes an ack), with its SEQ and EPOCH. */
export async function notify(s: TestServer, tab: TestTab, aid: number): Promise<{ id: string; SEQ: number; EPOCH: string }> {
  const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const n = await tab.nextOfType('MESSAGE');
  return { id: r.body.results[0].messageId, SEQ: n.SEQ, EPOCH: n.EPOCH };
}

/** Calls `answer` when `tab` receives the close notice (`{"TYPE":"close"}`). */
export function onCloseNotice(tab: TestTab, answer: () => void): void {
  tab.ws.on('message', (data) => {
    if ((JSON.parse(data.toString()) as { TYPE?: string }).TYPE === 'close') answer();
  });
}
