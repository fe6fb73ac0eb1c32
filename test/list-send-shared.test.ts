/**
 * A send to a list of people through the HTTP API keeps its JSON once: in
 * the store's memory (the arena's one copy, counted by references) and in the
 * SQLite journal, which a restart reads back into one copy again. Each person
 * still has a notification of their own: their SEQ, their ack, their replay.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startHerald } from './helpers/server.js';

const PEOPLE = 2000;
const MB = 1 << 20;
// 3.2 KB a copy as UTF-16: 2,000 copies would fill seven of the arena's 1 MiB chunks.
const message = { TYPE: 'MESSAGE', TITLE: 'Плановые работы', TEXT: 'В ночь на субботу сеть будет недоступна с 2:00 до 4:00. '.repeat(28) };

type Counts = { retained: number; retainedBytes: number; retainedMemoryBytes: number };

for (const store of ['memory', 'sqlite'] as const) {
  describe(`a list send, ${store} store`, () => {
    test('stores one copy of its JSON for everyone on the list; each person gets their own notification', async () => {
      // A data dir of the test's own: the restart below reads the same file.
      const dataDir = mkdtempSync(join(tmpdir(), 'herald-list-send-'));
      try {
        const s = await startHerald({ store }, { dataDir });
        const json = JSON.stringify(message);
        try {
          const tab = await s.tab('user', 1777);
          await tab.nextOfType('WELCOME');
          const uids = Array.from({ length: PEOPLE }, (_, i) => i + 1);
          const sent = await s.api('POST', '/api/v1/send', { to: { uids }, message });
          assert.equal(sent.status, 200, JSON.stringify(sent.body).slice(0, 500));
          assert.equal(sent.body.results.length, PEOPLE);
          assert.equal(new Set(sent.body.results.map((r: { messageId: string }) => r.messageId)).size, PEOPLE, 'a message id each');
          const got = await tab.nextOfType('MESSAGE');
          assert.equal(got.TEXT, message.TEXT);
          assert.equal(got.SEQ, 1, 'the person\'s own stream');
          const counts = (await s.api('GET', '/api/v1/status')).body.storeCounts as Counts;
          assert.equal(counts.retained, PEOPLE);
          assert.equal(counts.retainedBytes, PEOPLE * json.length, 'the cap counts each person\'s copy');
          assert.equal(counts.retainedMemoryBytes, MB, `one chunk holds it, not ${Math.ceil((PEOPLE * 2 * json.length) / MB)}`);
        } finally {
          await s.close();
        }
        if (store === 'memory') return;
        const db = new Database(join(dataDir, 'herald.sqlite'), { readonly: true });
        const bodies = db.prepare<[], string>('SELECT body FROM journal').pluck().all();
        db.close();
        assert.equal(bodies.join('').split(json).length, 2, 'the journal holds the JSON once');
        // A restart reads the journal back: everyone's notification, in one copy again.
        const again = await startHerald({ store }, { dataDir, secret: s.secret, apiToken: s.apiToken });
        try {
          const counts = (await again.api('GET', '/api/v1/status')).body.storeCounts as Counts;
          assert.deepEqual([counts.retained, counts.retainedMemoryBytes], [PEOPLE, MB]);
          const late = await again.tab('user', 2000);
          const replayed = await late.nextOfType('MESSAGE');
          assert.deepEqual([replayed.TEXT, replayed.SEQ], [message.TEXT, 1]);
        } finally {
          await again.close();
        }
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}
