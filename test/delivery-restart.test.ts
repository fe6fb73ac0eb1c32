/**
 * What survives a restart of Herald on the same data dir (SQLite store), and
 * what a tab is told when the store's history was lost (file deleted).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sqlitePath } from '../src/server/store/index.js';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

const msg = (n: number | string) => ({ TYPE: 'MESSAGE', TITLE: `n${n}` });

async function settle(tab: TestTab): Promise<void> {
  tab.send({ TYPE: 'PING' });
  await tab.nextOfType('PONG');
}

describe('restarts on the same data dir', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'herald-restart-'));
  const fixed = { dataDir, secret: randomBytes(32).toString('base64url'), apiToken: randomBytes(24).toString('base64url') };
  let s: TestServer | undefined;
  after(async () => {
    await s?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('streams, epochs, queued messages, acks and idempotency keys survive a restart', async () => {
    s = await startHerald({}, fixed);
    const tab = await s.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const first = (await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg(1), idempotencyKey: 'k' })).body.results[0];
    const got = await tab.nextOfType('MESSAGE');
    tab.send({ TYPE: 'RESPONSE', SEQ: got.SEQ });
    await settle(tab);
    await s.close();

    s = await startHerald({}, fixed);
    const dup = (await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg(1), idempotencyKey: 'k' })).body.results[0];
    assert.deepEqual([dup.duplicate, dup.messageId, dup.epoch], [true, first.messageId, first.epoch]);
    const second = (await s.api('POST', '/api/v1/send', { to: { aid: 1 }, message: msg(2) })).body.results[0];
    assert.deepEqual([second.seq, second.epoch], [2, first.epoch], 'SEQ continues in the same epoch');
    const status = await s.api('GET', `/api/v1/messages/${encodeURIComponent(first.messageId)}`);
    assert.equal(status.body.acknowledged, true);
    const back = await s.tab('admin', 1, { query: { seq: String(got.SEQ), epoch: got.EPOCH } });
    const welcome = await back.nextOfType('WELCOME');
    assert.deepEqual([welcome.SEQ, welcome.EPOCH], [2, first.epoch]);
    await settle(back);
    assert.deepEqual(back.frames.filter((f) => f.TYPE === 'RESET'), []);
    assert.deepEqual(back.notifications().map((f) => f.TITLE), ['n2']);
    await s.close();
    s = undefined;
  });

  test('a deleted store file gives new epochs, and a returning tab gets RESET, then the new history', async () => {
    s = await startHerald({}, fixed);
    const tab = await s.tab('admin', 2);
    await tab.nextOfType('WELCOME');
    await s.api('POST', '/api/v1/send', { to: { all: 'admins' }, message: msg('b') });
    await s.api('POST', '/api/v1/send', { to: { aid: 2 }, message: msg(1) });
    const b = await tab.next((f) => f.STREAM === '*');
    const own = await tab.next((f) => f.TITLE === 'n1');
    await s.close();
    const file = sqlitePath(s.options);
    rmSync(file);
    rmSync(`${file}-wal`, { force: true });
    rmSync(`${file}-shm`, { force: true });

    s = await startHerald({}, fixed);
    const after1 = (await s.api('POST', '/api/v1/send', { to: { aid: 2 }, message: msg('new') })).body.results[0];
    assert.notEqual(after1.epoch, own.EPOCH);
    assert.equal(after1.seq, 1);
    const back = await s.tab('admin', 2, { query: { seq: String(own.SEQ), epoch: own.EPOCH, bseq: String(b.SEQ), bepoch: b.EPOCH } });
    const welcome = await back.nextOfType('WELCOME');
    assert.equal(welcome.EPOCH, after1.epoch);
    await settle(back);
    const resets = back.frames.filter((f) => f.TYPE === 'RESET');
    assert.deepEqual(resets.map((r) => [r.STREAM ?? 'own', r.REASON, r.SEQ]), [['own', 'epoch changed', 0], ['*', 'epoch changed', 0]]);
    assert.equal(resets[0].EPOCH, after1.epoch);
    assert.deepEqual(back.notifications().map((f) => [f.TITLE, f.SEQ, f.EPOCH]), [['nnew', 1, after1.epoch]]);
    // The old message id belongs to the lost history.
    assert.equal((await s.api('GET', `/api/v1/messages/${encodeURIComponent(`${own.EPOCH}.${own.SEQ}.admin:2`)}`)).status, 404);
  });

  test('an idempotency key that is not Unicode text (a lone surrogate) is refused, and cannot keep the store from opening', async () => {
    await s?.close();
    s = await startHerald({}, fixed);
    // JSON can carry "\ud800" alone; SQLite's TEXT cannot (it comes back as three U+FFFD, which broke the journal row's lengths).
    const sent = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: msg(1), idempotencyKey: 'retry-\ud800' });
    const fine = await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: msg(2), idempotencyKey: 'retry-😀' });
    await s.close();
    s = await startHerald({}, fixed);
    assert.equal(sent.status, 400);
    assert.equal(sent.body.error.code, 'HERALD_ERR_VALIDATION');
    const again = (await s.api('POST', '/api/v1/send', { to: { aid: 3 }, message: msg(2), idempotencyKey: 'retry-😀' })).body.results[0];
    assert.deepEqual([again.duplicate, again.messageId], [true, fine.body.results[0].messageId]);
  });
});
