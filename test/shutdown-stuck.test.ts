/**
 * A shutdown that something slow must not hold past its grace.
 *
 * A session re-check waiting on a panel that stopped answering: close()
 * waited for its look-up (up to httpResolverTimeoutMs) before the HTTP
 * server, the commands and the store were closed, so `herald start` ran into
 * its own deadline and exited 1 with the acks of the last moments lost.
 *
 * A program that ignores SIGTERM, with a commandsKillGraceMs longer than the
 * shutdown's grace: close() waited the whole kill grace, the CLI's deadline
 * came first, and the run left no audit record and its admin was never told.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { hangingPanel } from './helpers/hanging-panel.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

test('a shutdown while a session re-check waits on a panel that stopped answering ends at once, aborts the look-up, and the store commits the acks', async () => {
  const panel = await hangingPanel();
  const options = {
    authResolver: 'http', httpResolverUrl: panel.url,
    // Far longer than this test may take: a close() that waits for the look-up cannot pass.
    httpResolverTimeoutMs: 30_000, shutdownGraceMs: 10_000,
    authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 200, heartbeatMs: 60_000, store: 'sqlite',
  };
  const first = await startHerald(options);
  let again: TestServer | undefined;
  try {
    const tab = await TestTab.open(`${first.wsUrl}/ws/admin`, { origin: first.url, headers: { cookie: 'panel_session=s61' } });
    await tab.nextOfType('WELCOME');
    const sent = await first.api('POST', '/api/v1/send', { to: { aid: 61 }, message: { TYPE: 'MESSAGE', TEXT: 'payment received' } });
    assert.equal(sent.status, 200, JSON.stringify(sent.body));
    const m = await tab.nextOfType('MESSAGE');
    tab.send({ TYPE: 'RESPONSE', SEQ: m.SEQ, EPOCH: m.EPOCH });
    // Frames are handled in order: once the PING is answered, the ack has been taken.
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    panel.hang();
    await until(() => panel.askedWhileHanging() > 0, 5000, 'a re-check look-up waiting at the panel');

    const started = performance.now();
    await first.herald.close();
    const took = performance.now() - started;
    assert.equal((await tab.closed).code, 1001);
    assert.ok(took < 5000, `close() took ${Math.round(took)} ms with a re-check look-up waiting (resolver timeout 30 s, grace 10 s)`);
    // The look-up itself was ended, not left to run its 30 s (its timer kept an embedding process alive).
    const lookUp = panel.held[0]!;
    if (!lookUp.socket?.destroyed) await once(lookUp, 'close');

    // The store was closed (its file lock released) and had committed the ack: no replay after a restart.
    panel.answerAgain();
    again = await startHerald(options, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
    const status = await again.api('GET', `/api/v1/messages/${sent.body.results[0].messageId}`);
    assert.equal(status.status, 200, JSON.stringify(status.body));
    assert.equal(status.body.acknowledged, true, JSON.stringify(status.body));
  } finally {
    await again?.close();
    await first.close();
    panel.close();
  }
});

test('a program that ignores SIGTERM is killed when the shutdown grace ends, not after a longer commandsKillGraceMs, and its run is recorded and notified', async () => {
  const options = { commandsAllow: ['sh'], commandsKillGraceMs: 10_000, shutdownGraceMs: 500, heartbeatMs: 60_000, store: 'sqlite' };
  const first = await startHerald(options);
  let again: TestServer | undefined;
  let pgid: number | undefined;
  try {
    // `trap "" TERM` ignores SIGTERM in the shell and in the sleep it starts (an ignored signal stays ignored across exec).
    const started = await first.api('POST', '/api/v1/commands', { aid: 62, program: 'sh', args: ['-c', 'trap "" TERM; echo $$; sleep 40'], timeout: 60 });
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const id = started.body.id as string;
    await until(async () => /^\d+\n/.test((await first.api('GET', `/api/v1/commands/${id}`)).body.output ?? ''), 5000, 'the program to start');
    // The shell leads the program's process group (it runs detached).
    pgid = Number.parseInt((await first.api('GET', `/api/v1/commands/${id}`)).body.output, 10);

    const closing = performance.now();
    await first.herald.close();
    const took = performance.now() - closing;
    assert.ok(took < 5000, `close() took ${Math.round(took)} ms (shutdownGraceMs 500, commandsKillGraceMs 10000)`);
    await until(() => !groupAlive(pgid!), 5000, 'the program\'s process group to be gone');

    again = await startHerald(options, { dataDir: first.dataDir, secret: first.secret, apiToken: first.apiToken });
    // Its record is in the audit trail...
    const recorded = await again.api('GET', `/api/v1/commands/${id}`);
    assert.equal(recorded.status, 200, JSON.stringify(recorded.body));
    assert.equal(recorded.body.state, 'cancelled');
    assert.equal(recorded.body.source, 'audit');
    // ...and its admin is told, on the next tab.
    const tab = await again.tab('admin', 62);
    const told = await tab.next((f) => f.TYPE === 'MESSAGE');
    assert.match(JSON.stringify(told), /server shutting down/);
  } finally {
    if (pgid !== undefined && groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
    await again?.close();
    await first.close();
  }
});

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}
