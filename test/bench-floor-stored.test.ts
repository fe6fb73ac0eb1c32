// The bench's floor-stored server (bench/servers/floor-stored.mjs): the floor
// plus what storing needs. Its figures are read as the ceiling of a storing
// server, so it must really store, number, take acks and replay, over real
// sockets, as Herald's protocol says for the parts the bench's clients use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import WebSocket from 'ws';

const root = new URL('..', import.meta.url).pathname;

interface Stored { own: { frames: number; acked: number }; broadcast: { frames: number; acked: number } }
interface Frame { TYPE?: string; SEQ?: number; EPOCH?: string; STREAM?: string; ACK_MS?: number; BROADCAST?: { SEQ: number; ACK_MS: number }; n?: number }

async function startServer(): Promise<{ child: ChildProcess; http: string; ws: string; stored: (id: number) => Promise<Stored> }> {
  const child = fork(`${root}bench/servers/floor-stored.mjs`, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [ready] = (await once(child, 'message')) as [{ event: string; http: string; ws: string }];
  assert.equal(ready.event, 'ready');
  let next = 1;
  const stored = (id: number): Promise<Stored> => new Promise((resolve) => {
    const callId = next++;
    const onMessage = (m: { id?: number; result?: Stored }): void => {
      if (m.id !== callId) return;
      child.off('message', onMessage);
      resolve(m.result!);
    };
    child.on('message', onMessage);
    child.send({ id: callId, cmd: 'stored', args: { id } });
  });
  return { child, http: ready.http, ws: ready.ws, stored };
}

/** A tab: its frames as they arrive, and a way to wait for the n-th. */
async function openTab(url: string): Promise<{ ws: WebSocket; frames: Frame[]; until: (n: number) => Promise<void> }> {
  const ws = new WebSocket(url);
  const frames: Frame[] = [];
  let waiting: { n: number; resolve: () => void } | undefined;
  ws.on('message', (d) => {
    frames.push(JSON.parse(String(d)) as Frame);
    if (waiting && frames.length >= waiting.n) waiting.resolve();
  });
  await once(ws, 'open');
  const until = (n: number): Promise<void> => (frames.length >= n ? Promise.resolve() : new Promise((resolve) => { waiting = { n, resolve }; }));
  return { ws, frames, until };
}

async function post(base: string, path: string, body: unknown): Promise<{ delivered: number }> {
  const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return (await res.json()) as { delivered: number };
}

test('floor-stored numbers every notification in its person\'s stream, takes acks and replays after a cursor', async () => {
  const srv = await startServer();
  try {
    const tab = await openTab(`${srv.ws}/?id=7`);
    await tab.until(1);
    assert.equal(tab.frames[0]!.TYPE, 'WELCOME');
    assert.equal(tab.frames[0]!.SEQ, 0);
    assert.equal(tab.frames[0]!.ACK_MS, 1000, 'one tab: the library\'s own wait');
    // Person 8 has no tab: stored all the same.
    const sent = await post(srv.http, '/send', [{ to: 7, msg: { n: 1 } }, { to: 8, msg: { n: 2 } }, { to: 7, msg: { n: 3 } }]);
    assert.equal(sent.delivered, 2);
    await tab.until(3);
    assert.deepEqual(tab.frames.slice(1).map((f) => [f.n, f.SEQ]), [[1, 1], [3, 2]]);
    assert.equal(tab.frames[1]!.EPOCH, tab.frames[0]!.EPOCH);
    await post(srv.http, '/broadcast', { msg: { n: 4 } });
    await tab.until(4);
    assert.equal(tab.frames[3]!.STREAM, '*');
    assert.equal(tab.frames[3]!.SEQ, 1);
    tab.ws.send('{"TYPE":"RESPONSE","SEQ":2}');
    tab.ws.send('{"TYPE":"RESPONSE","SEQ":1,"STREAM":"*"}');
    tab.ws.send('{"TYPE":"RESPONSE","SEQ":99}'); // past the head: ignored
    tab.ws.send('not json');
    let stored = await srv.stored(7);
    for (let i = 0; i < 50 && (stored.own.acked < 2 || stored.broadcast.acked < 1); i++) {
      await new Promise((r) => setTimeout(r, 20));
      stored = await srv.stored(7);
    }
    assert.deepEqual(stored, { own: { frames: 2, acked: 2 }, broadcast: { frames: 1, acked: 1 } });
    assert.deepEqual((await srv.stored(8)).own, { frames: 1, acked: 0 });
    tab.ws.close();

    // Person 8 comes: WELCOME names the head; from cursor 0 it gets what was kept.
    const late = await openTab(`${srv.ws}/?id=8&seq=0&bseq=0`);
    await late.until(3);
    assert.equal(late.frames[0]!.TYPE, 'WELCOME');
    assert.equal(late.frames[0]!.SEQ, 1);
    assert.equal(late.frames[0]!.BROADCAST!.SEQ, 1);
    assert.deepEqual(late.frames.slice(1).map((f) => [f.n, f.SEQ, f.STREAM]), [[2, 1, undefined], [4, 1, '*']]);
    late.ws.close();
  } finally {
    srv.child.kill('SIGTERM');
  }
});
