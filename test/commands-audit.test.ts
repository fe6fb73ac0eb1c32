/**
 * The audit trail: one record per run and per refusal, persisted in SQLite
 * and readable through the API, surviving a restart.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { CommandInfoReply } from '../src/server/api/commands-routes.js';
import { SqliteCommandAudit } from '../src/server/commands/audit-sqlite.js';
import { AUDIT_ARG_CHARS, AUDIT_ARGS_CHARS, auditArgs, auditText, type CommandAuditRecord, type StoredAuditRecord } from '../src/server/commands/outcome.js';
import { HeraldError } from '../src/server/errors.js';
import { makeRig } from './commands-fixture.js';
import { startHerald } from './helpers/server.js';

/** One request to the legacy TCP door; resolves with its one-line answer. */
function legacyAsk(host: string, port: number, request: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port }, () => socket.write(`${JSON.stringify(request)}\n`));
    const timer = setTimeout(() => reject(new Error('no legacy answer within 2 s')), 2000);
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString('utf8');
      const end = text.indexOf('\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(JSON.parse(text.slice(0, end)));
    });
    socket.on('error', reject);
  });
}

const record = (aid: number, program: string, n: number): CommandAuditRecord => ({
  event: 'finished', id: `c${n}`, aid, door: 'http', program, args: [String(n)], queuedAt: n, endedAt: n + 1, state: 'succeeded',
});

describe('command audit trail', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'herald-audit-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('stores records, reads them newest first, by admin and page, and keeps them across a reopen', () => {
    const file = join(dir, 'sub', 'audit.sqlite');
    const audit = new SqliteCommandAudit(file, 1000);
    for (let i = 1; i <= 5; i++) audit.record(record(i % 2 === 0 ? 2 : 1, 'ping', i));
    assert.deepEqual(audit.recent().map((r) => r.id), ['c5', 'c4', 'c3', 'c2', 'c1']);
    assert.deepEqual(audit.recent({ aid: 2 }).map((r) => r.id), ['c4', 'c2']);
    const page = audit.recent({ limit: 2 });
    assert.deepEqual(page.map((r) => r.id), ['c5', 'c4']);
    assert.deepEqual(audit.recent({ limit: 2, before: page.at(-1)?.row ?? 0 }).map((r) => r.id), ['c3', 'c2']);
    audit.close();
    const again = new SqliteCommandAudit(file, 1000);
    const first = again.recent({ limit: 1 })[0];
    assert.deepEqual({ ...first, row: 0 }, { ...record(1, 'ping', 5), row: 0 });
    again.close();
  });

  it('finds a run\'s finished record by its id, in a file written before that lookup existed too', () => {
    const file = join(dir, 'by-id.sqlite');
    // A file from before the by-id index: the old schema, rows already in it.
    const old = new Database(file);
    old.exec('CREATE TABLE command_audit (row INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, event TEXT NOT NULL, aid INTEGER, json TEXT NOT NULL)');
    old.prepare('INSERT INTO command_audit (at, event, aid, json) VALUES (?, ?, ?, ?)').run(2, 'finished', 1, JSON.stringify(record(1, 'ping', 1)));
    old.close();
    const audit = new SqliteCommandAudit(file, 1000);
    for (let i = 2; i <= 4; i++) audit.record(record(1, 'ping', i));
    audit.record({ event: 'refused', aid: 1, door: 'http', program: 'rm', args: [], queuedAt: 9, error: 'HERALD_ERR_COMMAND_FORBIDDEN: no' });
    assert.deepEqual({ ...audit.finished('c1'), row: 0 }, { ...record(1, 'ping', 1), row: 0 });
    assert.equal(audit.finished('c3')?.id, 'c3');
    assert.equal(audit.finished('c9'), undefined);
    assert.equal(audit.finished(''), undefined);
    audit.close();
  });

  it('keeps at most the configured number of records, dropping the oldest', () => {
    const audit = new SqliteCommandAudit(':memory:', 10);
    for (let i = 1; i <= 600; i++) audit.record(record(1, 'echo', i));
    audit.trim();
    const kept = audit.recent({ limit: 1000 });
    assert.equal(kept.length, 10);
    assert.equal(kept[0]?.id, 'c600');
    assert.equal(kept.at(-1)?.id, 'c591');
    audit.close();
  });

  it('trims at start-up too, so restarts that each write few records do not grow the file past the bound', () => {
    const file = join(dir, 'restarts.sqlite');
    // Three lifetimes, each ending well before the periodic trim.
    for (let life = 0; life < 3; life++) {
      const audit = new SqliteCommandAudit(file, 5);
      for (let i = 1; i <= 10; i++) audit.record(record(1, 'echo', life * 10 + i));
      audit.close();
    }
    const reopened = new SqliteCommandAudit(file, 5);
    const kept = reopened.recent({ limit: 1000 });
    assert.deepEqual(kept.map((r) => r.id), ['c30', 'c29', 'c28', 'c27', 'c26']);
    reopened.close();
  });

  it('receives a record for every run and every refusal from the runner', async () => {
    const audit = new SqliteCommandAudit(':memory:', 1000);
    const rig = await makeRig({ commandsAllow: ['echo'] }, { audit });
    try {
      const info = await rig.runner.start({ aid: 4, program: 'echo', args: ['hi'], door: 'cli', requestedBy: 'tester', taskId: 't' });
      await rig.runner.wait(info.id);
      await assert.rejects(rig.runner.start({ aid: 4, program: '/bin/sh', args: ['-c', 'id'], door: 'legacy', requestedBy: '127.0.0.1:5000' }));
      const [refused, finished] = rig.runner.audit() ?? [];
      assert.equal(refused?.event, 'refused');
      assert.equal(refused?.program, '/bin/sh');
      assert.equal(refused?.door, 'legacy');
      assert.equal(refused?.requestedBy, '127.0.0.1:5000');
      assert.match(refused?.error ?? '', /HERALD_ERR_COMMAND_FORBIDDEN/);
      assert.equal(finished?.event, 'finished');
      assert.equal(finished?.id, info.id);
      assert.equal(finished?.door, 'cli');
      assert.equal(finished?.requestedBy, 'tester');
      assert.equal(finished?.path, '/usr/bin/echo');
      assert.deepEqual(finished?.args, ['hi']);
      assert.equal(finished?.state, 'succeeded');
      assert.equal(finished?.exitCode, 0);
      assert.equal(finished?.outputBytes, 3);
      assert.ok((finished?.startedAt ?? 0) > 0 && (finished?.endedAt ?? 0) >= (finished?.startedAt ?? 0));
    } finally {
      await rig.close();
    }
  });

  it('records as outputBytes the UTF-8 size of the output kept, as the API describes it: at most the cap, not what the program wrote', async () => {
    const audit = new SqliteCommandAudit(':memory:', 1000);
    const rig = await makeRig({ commandsAllow: ['sh'], commandsOutputCap: 1024 }, { audit });
    try {
      // 200,004 bytes written, 1024 kept; 1000 bytes that are not UTF-8, each kept as U+FFFD (3 bytes): 341 of them.
      for (const [script, kept] of [["head -c 200000 /dev/zero | tr '\\0' x; echo END", 1024], ["head -c 1000 /dev/zero | tr '\\0' '\\377'", 1023]] as const) {
        const info = await rig.runner.start({ aid: 4, program: 'sh', args: ['-c', script], door: 'http' });
        const done = await rig.runner.wait(info.id);
        assert.equal(Buffer.byteLength(done?.output ?? ''), kept);
        assert.equal(rig.runner.audit()?.find((r) => r.id === info.id)?.outputBytes, kept, script);
      }
    } finally {
      await rig.close();
    }
    const described = String((CommandInfoReply.properties.outputBytes as { description?: string }).description);
    assert.match(described, /output Herald kept/);
    assert.match(described, /commandsOutputCap/);
    assert.doesNotMatch(described, /produced/);
  });

  it('bounds a record\'s size: long arguments, many arguments and a long refused program are cut with a note of how much', async () => {
    const audit = new SqliteCommandAudit(':memory:', 1000);
    const rig = await makeRig({ commandsAllow: ['echo'] }, { audit });
    try {
      // Within the runner's own limits (1024 arguments of 4096 characters), about 2 MB of UTF-8.
      const args = ['-n', ...Array.from({ length: 499 }, (_, i) => `${i}:${'я'.repeat(1000)}`)];
      const info = await rig.runner.start({ aid: 4, program: 'echo', args, door: 'legacy', requestedBy: '127.0.0.1:5000' });
      const done = await rig.runner.wait(info.id);
      assert.equal(done?.args.length, 500, 'the program itself got every argument');
      await assert.rejects(rig.runner.start({ aid: 4, program: `/${'x'.repeat(1_000_000)}`, args: Array.from({ length: 100_000 }, () => ''), door: 'legacy' }));
      const [refused, finished] = rig.runner.audit() ?? [];
      for (const rec of [refused, finished]) {
        const size = Buffer.byteLength(JSON.stringify(rec));
        assert.ok(size < 32 * 1024, `${rec?.event} record of ${size} bytes`);
      }
      assert.equal(finished?.args[0], '-n');
      assert.equal(finished?.args[1], `0:${'я'.repeat(AUDIT_ARG_CHARS - 2)}…[${1002 - AUDIT_ARG_CHARS} more characters cut]`);
      assert.equal(finished?.args.at(-1), `…[${500 - finished!.args.length + 1} more arguments cut]`);
      assert.match(refused?.program ?? '', /^\/x+…\[998977 more characters cut\]$/);
      assert.match(refused?.args.at(-1) ?? '', /^…\[\d+ more arguments cut\]$/);
      assert.ok((refused?.args.length ?? Infinity) <= AUDIT_ARGS_CHARS + 1);
      assert.match(refused?.error ?? '', /^HERALD_ERR_VALIDATION/);
      // The log line is the same record.
      const logged = rig.logs.filter((l) => l.audit === 'command');
      assert.ok(logged.every((l) => JSON.stringify(l).length < 32 * 1024));
    } finally {
      await rig.close();
    }
  });

  it('records a request the HTTP API\'s schema or the legacy parser refuses, answered as before, bounded', async () => {
    const server = await startHerald({ commandsAllow: ['echo'] });
    try {
      const many = await server.api('POST', '/api/v1/commands', { aid: 9, program: 'rm', args: Array.from({ length: 1025 }, (_, i) => `/${i}`) });
      assert.equal(many.status, 400);
      assert.deepEqual(many.body, { error: { code: 'HERALD_ERR_VALIDATION', message: 'body/args must NOT have more than 1024 items' } });
      const negative = await server.api('POST', '/api/v1/commands', { aid: 9, program: 'rm', args: ['-rf', '/'], timeout: -1, id: 'task-7', door: 'cli' });
      assert.equal(negative.status, 400);
      assert.equal(negative.body.error.code, 'HERALD_ERR_VALIDATION');
      // Any JSON at all: fields of the wrong kind, one whose toString is no function, a megabyte program name.
      const odd = await server.api('POST', '/api/v1/commands', { aid: 'nine', program: { toString: 0 }, args: 'rm -rf /', id: [1] });
      assert.equal(odd.status, 400);
      const huge = await server.api('POST', '/api/v1/commands', { aid: 9, program: 'x'.repeat(500_000) });
      assert.equal(huge.status, 400);
      const notObject = await server.api('POST', '/api/v1/commands', [1, 2]);
      assert.equal(notObject.status, 400);
      // Not authenticated: nobody's attempt, not recorded.
      const stranger = await server.api('POST', '/api/v1/commands', { aid: 9, program: 'rm', timeout: -1 }, { authorization: 'Bearer wrong' });
      assert.equal(stranger.status, 401);
      const legacy = server.herald.urls.legacy;
      assert.ok(legacy);
      const tcp = await legacyAsk(legacy.host, legacy.port, { TYPE: 'COMMAND', PROGRAM: 'rm', PROGRAM_ARGS: ['-rf /'] });
      assert.deepEqual(tcp, { TYPE: 'ERROR', ERROR: 'COMMAND without AID: say which admin is told the result', CODE: 'HERALD_ERR_BAD_REQUEST' });
      const overHttp = await server.api('POST', '/api/v1/legacy', { TYPE: 'COMMAND', AID: 9, PROGRAM: 'rm', ARGS: { timeout: 'soon' } });
      assert.equal(overHttp.body.CODE, 'HERALD_ERR_BAD_REQUEST');

      const { records } = (await server.api('GET', '/api/v1/commands/audit')).body as { records: StoredAuditRecord[] };
      assert.equal(records.length, 7, JSON.stringify(records).slice(0, 2000));
      assert.ok(records.every((r) => r.event === 'refused'));
      for (const r of records) assert.ok(Buffer.byteLength(JSON.stringify(r)) < 32 * 1024, `a record of ${JSON.stringify(r).length} characters`);
      const [viaHttpLegacy, viaTcp, notObj, hugeRec, oddRec, negRec, manyRec] = records;
      assert.equal(manyRec?.program, 'rm');
      assert.equal(manyRec?.aid, 9);
      assert.equal(manyRec?.door, 'http');
      assert.equal(manyRec?.requestedBy, 'api 127.0.0.1');
      assert.equal(manyRec?.error, 'HERALD_ERR_VALIDATION: body/args must NOT have more than 1024 items');
      assert.deepEqual(manyRec?.args.slice(0, 2), ['/0', '/1']);
      assert.equal(manyRec?.args.length, 1025);
      assert.deepEqual([negRec?.program, negRec?.args, negRec?.taskId, negRec?.door], ['rm', ['-rf', '/'], 'task-7', 'cli']);
      assert.match(negRec?.error ?? '', /^HERALD_ERR_VALIDATION: body\/timeout must be > 0/);
      assert.deepEqual(
        [oddRec?.aid, oddRec?.program, oddRec?.args, oddRec?.taskId],
        [null, '[not a string: an object]', ['[not a list: rm -rf /]'], '[not a string or a number: a list]'],
      );
      assert.match(hugeRec?.program ?? '', /^x{1024}…\[498976 more characters cut\]$/);
      assert.deepEqual([notObj?.program, notObj?.args], ['[not given]', []]);
      assert.deepEqual([viaTcp?.door, viaTcp?.program, viaTcp?.args, viaTcp?.aid], ['legacy', 'rm', ['-rf /'], null]);
      assert.match(viaTcp?.requestedBy ?? '', /^127\.0\.0\.1:\d+$/);
      assert.equal(viaTcp?.error, 'HERALD_ERR_BAD_REQUEST: COMMAND without AID: say which admin is told the result');
      assert.deepEqual([viaHttpLegacy?.door, viaHttpLegacy?.aid, viaHttpLegacy?.requestedBy], ['legacy', 9, 'http:127.0.0.1']);
    } finally {
      await server.close();
    }
  });

  it('logs a front door\'s refusal as the runner logs its own', async () => {
    const rig = await makeRig({ commandsAllow: ['echo'] });
    try {
      rig.runner.refused({ door: 'http', requestedBy: 'api 127.0.0.1', aid: 3, program: 'rm', args: ['-rf', '/'] }, new HeraldError('HERALD_ERR_VALIDATION', 'body/timeout must be > 0'));
      const line = rig.logs.find((l) => l.audit === 'command');
      assert.equal(line?.msg, 'command refused');
      assert.equal(line?.event, 'refused');
      assert.equal(line?.program, 'rm');
      assert.equal(line?.error, 'HERALD_ERR_VALIDATION: body/timeout must be > 0');
    } finally {
      await rig.close();
    }
  });

  it('cuts text at a whole character and keeps short arguments as they are', () => {
    assert.equal(auditText('ab😀cd', 3), 'ab…[4 more characters cut]', 'not half an emoji');
    assert.equal(auditText('abc', 3), 'abc');
    assert.deepEqual(auditArgs(['-c', '3', '127.0.0.1']), ['-c', '3', '127.0.0.1']);
  });

  it('is persisted under DATA_DIR by default and served at GET /api/v1/commands/audit, across a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'herald-audit-e2e-'));
    const secrets = { secret: 'a'.repeat(40), apiToken: 'b'.repeat(24) };
    try {
      let server = await startHerald({ commandsAllow: ['echo'] }, { dataDir, ...secrets });
      const res = await server.api('POST', '/api/v1/commands', { aid: 9, program: 'echo', args: ['audited'] });
      await server.api('GET', `/api/v1/commands/${res.body.id}?wait=5`);
      await server.api('POST', '/api/v1/commands', { aid: 9, program: 'rm', args: ['-rf', '/'] });
      await server.close();
      server = await startHerald({ commandsAllow: ['echo'] }, { dataDir, ...secrets });
      const audit = await server.api('GET', '/api/v1/commands/audit?aid=9');
      assert.equal(audit.status, 200);
      assert.equal(audit.body.persisted, true);
      assert.deepEqual(audit.body.records.map((r: CommandAuditRecord) => [r.event, r.program]), [['refused', 'rm'], ['finished', 'echo']]);
      assert.equal(audit.body.records[1].id, res.body.id);
      assert.equal(audit.body.records[1].door, 'http');
      await server.close();
      const off = await startHerald({ commandsAllow: ['echo'], commandsAuditFile: '' });
      const none = await off.api('GET', '/api/v1/commands/audit');
      assert.deepEqual(none.body, { persisted: false, records: [] });
      await off.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
