/**
 * Both of a tab's streams are placed (EPOCH, where the replay starts) in the
 * turn WELCOME is sent, before the own stream's replay reads anything. The
 * broadcast stream was placed only once the own stream's replay had ended:
 * - a new tab's broadcast start then took in acks other tabs gave meanwhile,
 *   so a broadcast published after its WELCOME, held for it during the own
 *   replay, was dropped as already sent: lost, with no RESET;
 * - a reconnecting tab's broadcast ack, which the browser library sends as
 *   soon as it reads WELCOME, was dropped (no EPOCH yet to take it in), and
 *   the broadcast stayed unacknowledged.
 * The tab here reads only when the test says: its own replay waits for the
 * link (maxBufferedBytes 64 KiB) while the test does the rest.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';
import { openRawSocket, RawTab } from './helpers/raw-tab.js';

class LinkTab extends RawTab {
  static async open(s: TestServer, id: number, query: Record<string, string> = {}): Promise<LinkTab> {
    const tab = new LinkTab(await openRawSocket(s, id, query));
    tab.socket.on('data', (b: Buffer) => tab.take(b));
    return tab;
  }
}

const TEXT = 'x'.repeat(10_000);

async function ownBacklog(s: TestServer, id: number, count: number): Promise<void> {
  for (let i = 0; i < count; i += 50) {
    const messages = Array.from({ length: 50 }, () => ({ to: { aid: id }, message: { TYPE: 'MESSAGE', TEXT } }));
    const r = await s.api('POST', '/api/v1/send/batch', { messages });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
}

async function acknowledged(s: TestServer, messageId: string): Promise<boolean> {
  return (await s.api('GET', `/api/v1/messages/${encodeURIComponent(messageId)}`)).body.acknowledged;
}

describe('a tab whose own stream is being replayed', () => {
  let s: TestServer;
  const tabs: LinkTab[] = [];
  before(async () => {
    s = await startHerald({ maxBufferedBytes: 65_536 });
  });
  after(async () => {
    for (const t of tabs) t.socket.destroy();
    await s.close();
  });

  test('a new tab is sent a broadcast published after its WELCOME, though another tab acknowledged it during the replay', async () => {
    const other = await s.tab('admin', 100);
    await other.nextOfType('WELCOME');
    await ownBacklog(s, 1, 300);
    const tab = await LinkTab.open(s, 1);
    tabs.push(tab);
    tab.socket.resume();
    await until(() => tab.messages.some((m) => m.TYPE === 'WELCOME'), 5000, 'WELCOME');
    tab.socket.pause(); // a slow link: the own replay waits for it
    const welcome = tab.messages.find((m) => m.TYPE === 'WELCOME');
    const sent = await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'to all' } });
    assert.equal(sent.status, 200);
    const seen = await other.next((f) => f?.TEXT === 'to all');
    assert.ok(seen.SEQ > welcome.BROADCAST.SEQ, 'published after the WELCOME');
    other.send({ TYPE: 'RESPONSE', SEQ: seen.SEQ, STREAM: '*', EPOCH: seen.EPOCH });
    await until(() => acknowledged(s, sent.body.messageId), 5000, 'the other tab\'s ack');
    assert.ok(tab.messages.filter((m) => m.TEXT === TEXT).length < 300, 'the own replay is still under way');
    tab.socket.resume();
    await until(() => tab.messages.filter((m) => m.TEXT === TEXT).length === 300, 10_000, 'the own replay');
    // A PING answered: everything before it was written.
    tab.sendText(JSON.stringify({ TYPE: 'PING' }));
    await until(() => tab.messages.some((m) => m.TYPE === 'PONG'), 5000, 'PONG');
    assert.deepEqual(tab.messages.filter((m) => m.STREAM === '*').map((m) => m.TEXT), ['to all']);
    assert.deepEqual(tab.messages.filter((m) => m.TYPE === 'RESET'), []);
  });

  test('a reconnecting tab\'s broadcast ack, sent as it reads WELCOME, is taken', async () => {
    const first = await s.tab('admin', 2);
    const welcome = await first.nextOfType('WELCOME');
    const sent = await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'seen, not yet acked' } });
    const seen = await first.next((f) => f?.TEXT === 'seen, not yet acked');
    // Gone before its (batched) ack went out; its own notifications wait meanwhile.
    first.terminate();
    await first.closed;
    await ownBacklog(s, 2, 300);
    const tab = await LinkTab.open(s, 2, { seq: String(welcome.ACKED), epoch: welcome.EPOCH, bseq: String(seen.SEQ), bepoch: seen.EPOCH });
    tabs.push(tab);
    tab.socket.resume();
    await until(() => tab.messages.some((m) => m.TYPE === 'WELCOME'), 5000, 'WELCOME');
    tab.socket.pause();
    // As the library does: its pending ack goes out as soon as WELCOME is read.
    tab.sendText(JSON.stringify({ TYPE: 'RESPONSE', SEQ: seen.SEQ, STREAM: '*', EPOCH: seen.EPOCH }));
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(tab.messages.filter((m) => m.TEXT === TEXT).length < 300, 'the own replay is still under way');
    tab.socket.resume();
    await until(() => tab.messages.filter((m) => m.TEXT === TEXT).length === 300, 10_000, 'the own replay');
    await until(() => acknowledged(s, sent.body.messageId), 5000, 'the broadcast acknowledged');
  });
});
