/**
 * A cursor ahead of its stream (connection.ts, #replayStream): the tab says
 * it has a SEQ the stream never reached, so the stream's history was lost
 * without its knowing (a restore from an older backup, a memory store that
 * restarted). It is told RESET, starts over from what nobody acknowledged,
 * and the next notification still reaches it. One ahead is the boundary: a
 * tab that took it for "up to date" set its position past the stream's head
 * and silently dropped the next notification, whose SEQ it thought it had.
 * The cursor equal to the head is up to date: no RESET, nothing sent again.
 * (Mutation review rA: `cursor.seq > head.lastSeq` → `> head.lastSeq + 1`.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const message = (text: string) => ({ TYPE: 'MESSAGE', TITLE: 'order', TEXT: text });

describe('a resume cursor exactly one ahead of its stream', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60_000 });
  });
  after(() => s.close());

  /** Sends `text` to admin `aid`, stored; returns its message id. */
  async function send(aid: number, text: string): Promise<string> {
    const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: message(text) });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.results[0].messageId as string;
  }

  test('on connect (?seq=): RESET, what nobody acknowledged again, and the next notification arrives', async () => {
    await send(91, 'a');
    await send(91, 'b');
    const first = await s.tab('admin', 91);
    const welcome = await first.nextOfType('WELCOME');
    assert.equal(welcome.SEQ, 2);
    first.close();
    await first.closed;

    const tab = await s.tab('admin', 91, { query: { seq: String(welcome.SEQ + 1), epoch: welcome.EPOCH } });
    await tab.nextOfType('WELCOME');
    const reset = await tab.nextOfType('RESET');
    assert.deepEqual(reset, { TYPE: 'RESET', EPOCH: welcome.EPOCH, SEQ: 0, REASON: 'epoch changed' });
    assert.deepEqual([(await tab.nextOfType('MESSAGE')).TEXT, (await tab.nextOfType('MESSAGE')).TEXT], ['a', 'b']);
    await send(91, 'c');
    const next = await tab.nextOfType('MESSAGE');
    assert.equal(next.TEXT, 'c');
    assert.equal(next.SEQ, welcome.SEQ + 1);
  });

  test('by RESUME on a live tab: RESET, and the next notification arrives', async () => {
    const id = await send(92, 'a');
    const tab = await s.tab('admin', 92);
    const welcome = await tab.nextOfType('WELCOME');
    const n = await tab.nextOfType('MESSAGE');
    tab.send({ TYPE: 'RESPONSE', SEQ: n.SEQ, EPOCH: n.EPOCH });
    await until(async () => (await s.api('GET', `/api/v1/messages/${id}`)).body.acknowledged === true, 5000, 'the ack to be recorded');

    tab.send({ TYPE: 'RESUME', SEQ: n.SEQ + 1, EPOCH: welcome.EPOCH });
    const reset = await tab.nextOfType('RESET');
    assert.deepEqual(reset, { TYPE: 'RESET', EPOCH: welcome.EPOCH, SEQ: n.SEQ, REASON: 'epoch changed' });
    await send(92, 'b');
    const next = await tab.nextOfType('MESSAGE');
    assert.equal(next.TEXT, 'b');
    assert.equal(next.SEQ, n.SEQ + 1);
  });

  test('a cursor equal to the head is up to date: no RESET, nothing sent again, the next notification arrives', async () => {
    await send(93, 'a');
    const first = await s.tab('admin', 93);
    const welcome = await first.nextOfType('WELCOME');
    first.close();
    await first.closed;

    const tab = await s.tab('admin', 93, { query: { seq: String(welcome.SEQ), epoch: welcome.EPOCH } });
    await tab.nextOfType('WELCOME');
    await send(93, 'b');
    const next = await tab.nextOfType('MESSAGE');
    assert.equal(next.TEXT, 'b');
    assert.equal(next.SEQ, welcome.SEQ + 1);
    assert.deepEqual(tab.frames.filter((f) => f.TYPE !== 'WELCOME' && f.TYPE !== 'PING').map((f) => f.TEXT ?? f.TYPE), ['b']);
  });
});
