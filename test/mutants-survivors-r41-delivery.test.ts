/**
 * Delivery edges a mutation audit found untested: at shutdown, which tabs
 * still owe an ack (a broadcast's; none after acks out of order) and how long
 * the wait for it may last; and the resume cursors a tab gives without their
 * EPOCH or past what a SEQ can be.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { notify, onCloseNotice } from './helpers/close-notice.js';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

/** Stores `count` notifications for admin `aid` (no tab open) and returns their SEQs. */
async function sendToPerson(s: TestServer, aid: number, count: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 1; i <= count; i++) {
    const r = await s.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TEXT: `own ${i}` } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    seqs.push(r.body.results[0].seq);
  }
  return seqs;
}

/** Stores `count` broadcasts to every admin and returns their SEQs (of the admins' broadcast stream). */
async function broadcastToAdmins(s: TestServer, count: number): Promise<number[]> {
  const seqs: number[] = [];
  for (let i = 1; i <= count; i++) {
    const r = await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: `broadcast ${i}` } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // A broadcast's answer is of the stream, not per recipient.
    seqs.push(r.body.seq);
  }
  return seqs;
}

/** The SEQs of the notifications `tab` was sent on one stream, once the last is `upTo`. */
async function seqsUpTo(tab: TestTab, stream: 'own' | 'broadcast', upTo: number): Promise<number[]> {
  const ofStream = (f: any) => f.TYPE === 'MESSAGE' && (stream === 'broadcast') === (f.STREAM === '*');
  await tab.next((f) => ofStream(f) && f.SEQ === upTo);
  return tab.frames.filter(ofStream).map((f) => f.SEQ);
}

describe('a shutdown waits for the acks a tab owes, and only those', () => {
  test('a broadcast the tab was sent and has not acked is waited for: its ack, sent 200 ms after the notice, comes before the close and is kept across a restart', async () => {
    const first = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' });
    let again: TestServer | undefined;
    try {
      const tab = await first.tab('admin', 71);
      await tab.nextOfType('WELCOME');
      const r = await first.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'tariffs change tonight' } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const sent = await tab.next((f) => f.TYPE === 'MESSAGE' && f.STREAM === '*');
      const events: string[] = [];
      onCloseNotice(tab, () => {
        setTimeout(() => {
          if (tab.ws.readyState !== tab.ws.OPEN) return;
          tab.send({ TYPE: 'RESPONSE', SEQ: sent.SEQ, EPOCH: sent.EPOCH, STREAM: '*' });
          events.push('ack');
        }, 200);
      });
      void tab.closed.then(() => events.push('close'));
      await first.herald.close();
      assert.equal((await tab.closed).code, 1001);
      assert.deepEqual(events, ['ack', 'close'], 'the close frame waited for the broadcast\'s ack');
      again = await startHerald({ heartbeatMs: 60_000, store: 'sqlite' }, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
      // A new tab of the kind is not replayed the acknowledged broadcast: the first it gets is a new one.
      const next = await again.tab('admin', 72);
      await next.nextOfType('WELCOME');
      await again.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: { TYPE: 'MESSAGE', TEXT: 'after the restart' } });
      const m = await next.nextOfType('MESSAGE');
      assert.equal(m.TEXT, 'after the restart', 'the acknowledged broadcast was replayed');
    } finally {
      await again?.close();
      await first.close();
    }
  });

  test('a tab that acked SEQ 2 and then SEQ 1 owes nothing: its close frame comes with the notice, not after the ack wait', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const tab = await s.tab('admin', 73);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 73);
      const second = await notify(s, tab, 73);
      tab.send({ TYPE: 'RESPONSE', SEQ: 2, EPOCH: second.EPOCH });
      tab.send({ TYPE: 'RESPONSE', SEQ: 1, EPOCH: second.EPOCH });
      // A ping answered: both acks were read before the shutdown begins.
      tab.send({ TYPE: 'PING' });
      await tab.nextOfType('PONG');
      // Were the tab still waited for (the ack wait is 1 s), this late frame would be
      // sent before its close; the close frame that came with the notice closed it first.
      let lateFrameSent = false;
      onCloseNotice(tab, () => {
        setTimeout(() => {
          if (tab.ws.readyState !== tab.ws.OPEN) return;
          tab.send({ TYPE: 'RESPONSE', SEQ: 2, EPOCH: second.EPOCH });
          lateFrameSent = true;
        }, 700);
      });
      await s.herald.close();
      assert.equal((await tab.closed).code, 1001);
      assert.equal(lateFrameSent, false, 'the tab was still open 700 ms after the notice: it was waited for');
    } finally {
      await s.close();
    }
  });

  test('the ack wait is at most half of the grace: with shutdownGraceMs 1000, a tab that never acks gets its close frame (1001) after 500 ms, not at the grace\'s end', async () => {
    const s = await startHerald({ heartbeatMs: 60_000, shutdownGraceMs: 1000 });
    try {
      const tab = await s.tab('admin', 74);
      await tab.nextOfType('WELCOME');
      await notify(s, tab, 74);
      // Well past half the grace (450 ms of slack for a loaded machine: with 350, once, on a machine
      // whose suite took 500 s, the close frame came later), still before all of it: a tab still
      // open then was waited for the whole grace (its close frame comes as the grace ends).
      const openAt950 = new Promise<boolean>((resolve) => {
        onCloseNotice(tab, () => setTimeout(() => resolve(tab.ws.readyState === tab.ws.OPEN), 950));
      });
      await s.herald.close();
      assert.equal((await tab.closed).code, 1001);
      assert.equal(await openAt950, false, 'the tab was still open 950 ms after the notice: the ack wait was not cut to half the grace');
    } finally {
      await s.close();
    }
  });
});

describe('a resume cursor without its EPOCH counts in the stream\'s current epoch (docs/delivery.md, "Reconnecting: resume and replay")', () => {
  test('?seq=3 alone: the tab is sent SEQ 4 and 5, and no RESET', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const seqs = await sendToPerson(s, 75, 5);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
      const tab = await s.tab('admin', 75, { query: { seq: '3' } });
      assert.deepEqual(await seqsUpTo(tab, 'own', 5), [4, 5]);
      assert.equal(tab.frames.filter((f) => f.TYPE === 'RESET').length, 0, JSON.stringify(tab.frames));
    } finally {
      await s.close();
    }
  });

  test('?bseq=3 alone: the tab is sent broadcast SEQ 4 and 5, and no RESET', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      const seqs = await broadcastToAdmins(s, 5);
      assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
      const tab = await s.tab('admin', 76, { query: { bseq: '3' } });
      assert.deepEqual(await seqsUpTo(tab, 'broadcast', 5), [4, 5]);
      assert.equal(tab.frames.filter((f) => f.TYPE === 'RESET').length, 0, JSON.stringify(tab.frames));
    } finally {
      await s.close();
    }
  });

  test('a RESUME frame without EPOCH (own and broadcast cursors): the tab is sent what follows them again, and no RESET', async () => {
    const s = await startHerald({ heartbeatMs: 60_000 });
    try {
      await sendToPerson(s, 77, 5);
      await broadcastToAdmins(s, 5);
      const tab = await s.tab('admin', 77, { query: { seq: '5', bseq: '5' } });
      await tab.nextOfType('WELCOME');
      tab.send({ TYPE: 'RESUME', SEQ: 3, BROADCAST: { SEQ: 4 } });
      assert.deepEqual(await seqsUpTo(tab, 'broadcast', 5), [5]);
      assert.deepEqual(tab.frames.filter((f) => f.TYPE === 'MESSAGE' && f.STREAM !== '*').map((f) => f.SEQ), [4, 5]);
      assert.equal(tab.frames.filter((f) => f.TYPE === 'RESET').length, 0, JSON.stringify(tab.frames));
    } finally {
      await s.close();
    }
  });
});

test('a ?seq= of 20 digits (past what a SEQ can be) is ignored: the tab is a new one, replayed its unacked backlog without a RESET', async () => {
  const s = await startHerald({ heartbeatMs: 60_000 });
  try {
    await sendToPerson(s, 78, 2);
    const tab = await s.tab('admin', 78, { query: { seq: '99999999999999999999' } });
    assert.deepEqual(await seqsUpTo(tab, 'own', 2), [1, 2]);
    // Anything sent after the backlog follows it: the tab is live, and nothing else came.
    await s.api('POST', '/api/v1/send', { to: { aid: 78 }, message: { TYPE: 'MESSAGE', TEXT: 'live' } });
    await tab.next((f) => f.TYPE === 'MESSAGE' && f.SEQ === 3);
    assert.equal(tab.frames.filter((f) => f.TYPE === 'RESET').length, 0, JSON.stringify(tab.frames));
  } finally {
    await s.close();
  }
});
