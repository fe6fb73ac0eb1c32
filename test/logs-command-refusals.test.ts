/**
 * Refused command requests, bounded (commands/runner.ts, #refusals; and
 * commands/audit-sqlite.ts). A refusal costs its caller nothing: on loopback
 * the legacy door asks no token for COMMAND. Each wrote a warning (~330
 * bytes, more with long arguments) and an audit record, without bound, so
 * anyone local wrote the log at hundreds of lines a second, and 100,000 of
 * them pushed every run out of the audit trail (commandsAuditKeep).
 * - The first 20 of each door and error code in 10 s are logged and audited
 *   one by one; the rest are counted, and each door and code's count is one
 *   warning and one audit record (`count`, the programs asked most often).
 * - Refusals are kept under a bound of their own in the audit file (a tenth
 *   of commandsAuditKeep): however many there are, the runs' records stay.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import type { CommandAuditRecord } from '../src/server/commands/outcome.js';
import { REFUSALS_COUNTED_PROGRAM } from '../src/server/commands/runner.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { RawLegacyClient } from './helpers/legacy-client.js';

describe('refused command requests', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-logs-command-refusals-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a flood through the legacy door: 20 lines and records of each code, the rest counted in one line and one record each', async () => {
    const file = join(dir, 'audit.sqlite');
    const h = await startAuthHerald({ store: 'memory', commandsAllow: ['echo'], commandsAuditFile: file });
    try {
      const legacy = await RawLegacyClient.connect(h.herald.urls.legacy!.port);
      for (let i = 0; i < 300; i++) {
        const forbidden = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', AID: 1, PROGRAM: i % 3 === 0 ? 'rm' : `made-up-${i}`, PROGRAM_ARGS: ['-rf', `/x${i}`] }))).answer as { CODE: string };
        assert.equal(forbidden.CODE, 'HERALD_ERR_COMMAND_FORBIDDEN');
        const noAid = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', PROGRAM: 'echo' }))).answer as { CODE: string };
        assert.equal(noAid.CODE, 'HERALD_ERR_BAD_REQUEST');
      }
      legacy.destroy();
      // Through the API: a door of its own, its refusals not hidden by the legacy door's.
      const api = await fetch(`${h.wsUrl.replace('ws:', 'http:')}/api/v1/commands`, {
        method: 'POST',
        headers: { authorization: `Bearer ${h.herald.options.apiToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ aid: 2, program: 'rm', args: ['-rf', '/'] }),
      });
      assert.equal(api.status, 403);
      const lines = () => h.log().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      const refusedLines = lines().filter((l) => l.msg === 'command refused');
      assert.equal(refusedLines.filter((l) => l.door === 'legacy' && /^HERALD_ERR_COMMAND_FORBIDDEN/.test(l.error)).length, 20);
      assert.equal(refusedLines.filter((l) => l.door === 'legacy' && /^HERALD_ERR_BAD_REQUEST/.test(l.error)).length, 20);
      assert.equal(refusedLines.filter((l) => l.door === 'http').length, 1);
      await h.close();

      const summary = lines().filter((l) => String(l.msg).startsWith('command requests refused and not recorded one by one'));
      assert.equal(summary.length, 1, 'said once, at the latest when the runner closes');
      assert.equal(summary[0]!.level, 40);
      assert.deepEqual(summary[0]!.byDoorAndCode, { 'legacy HERALD_ERR_COMMAND_FORBIDDEN': 280, 'legacy HERALD_ERR_BAD_REQUEST': 280 });

      const db = new Database(file, { readonly: true });
      const rows = (db.prepare('SELECT json FROM command_audit ORDER BY row').all() as Array<{ json: string }>).map((r) => JSON.parse(r.json) as CommandAuditRecord & { count?: number; programs?: Record<string, number> });
      db.close();
      assert.equal(rows.length, 20 + 20 + 1 + 2, 'one by one: 20 of each legacy code and the API\'s one; then one record for each code\'s count');
      const counted = rows.filter((r) => r.program === REFUSALS_COUNTED_PROGRAM);
      assert.equal(counted.length, 2);
      const forbidden = counted.find((r) => r.error?.startsWith('HERALD_ERR_COMMAND_FORBIDDEN:'))!;
      assert.equal(forbidden.count, 280);
      assert.equal(forbidden.door, 'legacy');
      assert.equal(forbidden.aid, null);
      assert.match(forbidden.error ?? '', /280 more requests through the legacy door refused with this code, not recorded one by one/);
      // A third of them asked for rm: named first, among at most five programs.
      assert.equal(Object.keys(forbidden.programs ?? {})[0], 'rm');
      assert.ok(Object.keys(forbidden.programs ?? {}).length <= 5);
      assert.equal(counted.find((r) => r.error?.startsWith('HERALD_ERR_BAD_REQUEST:'))?.count, 280);
    } finally {
      await h.close().catch(() => undefined);
    }
  });

  test('refusals cannot push the runs\' records out of the audit file: each kind has its own bound', () => {
    const audit = new SqliteCommandAudit(join(dir, 'bounds.sqlite'), 10);
    try {
      for (let i = 1; i <= 3; i++) {
        audit.record({ event: 'finished', id: `run${i}`, aid: 1, door: 'http', program: 'echo', args: [], queuedAt: i, endedAt: i, state: 'succeeded' });
      }
      for (let i = 0; i < 1200; i++) audit.record({ event: 'refused', aid: 1, door: 'legacy', program: 'rm', args: [String(i)], queuedAt: 10 + i, error: 'HERALD_ERR_COMMAND_FORBIDDEN: no' });
      audit.trim();
      const kept = audit.recent({ limit: 10_000 });
      assert.deepEqual(kept.filter((r) => r.event === 'finished').map((r) => r.id), ['run3', 'run2', 'run1']);
      // A tenth of commandsAuditKeep (10): the newest refusal alone.
      assert.deepEqual(kept.filter((r) => r.event === 'refused').map((r) => r.args[0]), ['1199']);
      for (let i = 4; i <= 14; i++) {
        audit.record({ event: 'finished', id: `run${i}`, aid: 1, door: 'http', program: 'echo', args: [], queuedAt: i, endedAt: i, state: 'succeeded' });
      }
      audit.trim();
      const runs = audit.recent({ limit: 10_000 }).filter((r) => r.event === 'finished').map((r) => r.id);
      assert.equal(runs.length, 10, 'the runs keep their own bound, commandsAuditKeep');
      assert.equal(runs[0], 'run14');
    } finally {
      audit.close();
    }
  });
});
