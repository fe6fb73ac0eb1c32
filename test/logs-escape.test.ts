/**
 * What a client sends reaches the log escaped (src/server/logger.ts). pino
 * escapes only the characters below U+0020: C1 controls (U+0080–U+009F;
 * U+009B is a terminal's CSI, as ESC [ is) and the line and paragraph
 * separators (U+2028, U+2029) went out raw, from an Origin header (whose
 * bytes node reads as Latin-1) or a legacy request's PROGRAM. A JSON line
 * now writes them as `\u009b`, the same JSON value; a pretty line, for a
 * terminal, writes ESC and the other C0 controls so too (pino-pretty printed
 * what JSON had escaped raw again). Each test runs a real `herald start`.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { createRequire } from 'node:module';
import { exited, LineReader, spawnCli } from './helpers/cli.js';
import { RawLegacyClient } from './helpers/legacy-client.js';

const WebSocket = createRequire(import.meta.url)('ws') as typeof import('ws').default;
const ENV = { HERALD_SECRET: 'z'.repeat(40), HERALD_API_TOKEN: 'logs-escape-api-token-0123' };
/** CSI, the separators, ESC and DEL: what a terminal or a log viewer would act on. */
const PROGRAM = 'rm\u009b31m\u2028\u2029\u001b[2J\u007f';
/** An Origin header's bytes, read by node as Latin-1: U+009B and U+0085 (NEL) arrive as they are. */
const ORIGIN = 'http://evil\u009b1m\u0085.example';
/** Raw in a line, these mean something to what shows it. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/;
const RAW_IN_JSON = /[\u0080-\u009f\u2028\u2029]/;

for (const pretty of [false, true]) {
  describe(`client strings in the log (${pretty ? 'pretty' : 'JSON lines'})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-logs-escape-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('a legacy PROGRAM and a refused Origin are written escaped, nothing raw', async () => {
      const child = spawnCli(['start', '--port', '0', '--legacy-port', '0', '--data-dir', dir, '--set', `logPretty=${pretty}`, '--set', 'commandsAuditFile='], { env: ENV });
      try {
        const out = new LineReader(child.stdout);
        const listening = await out.next((l) => l.includes('Herald is listening'));
        const all = () => out.text();
        const http = /http"?:\s*"?(http:\/\/[\d.:]+)/.exec(pretty ? all() : listening)![1]!;
        const legacyLine = await out.next((l) => l.includes('legacy TCP protocol listening'));
        // A pretty line puts each field on a line of its own, below its message.
        const legacyPort = pretty ? Number(/legacy TCP protocol listening\n(?: {4}.*\n)*? {4}port: (\d+)/.exec(all())![1]) : (JSON.parse(legacyLine) as { port: number }).port;

        const legacy = await RawLegacyClient.connect(legacyPort);
        const answer = (await legacy.request(JSON.stringify({ TYPE: 'COMMAND', AID: 1, PROGRAM }))).answer as { CODE?: string };
        assert.equal(answer.CODE, 'HERALD_ERR_COMMAND_FORBIDDEN');
        legacy.destroy();
        await out.next((l) => l.includes('command refused'));

        const status = await new Promise<number>((resolve, reject) => {
          const ws = new WebSocket(`${http.replace('http:', 'ws:')}/ws/admin?token=x`, { origin: ORIGIN });
          ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
          ws.on('open', () => reject(new Error('admitted')));
          ws.on('error', () => undefined);
        });
        assert.equal(status, 403);
        await out.next((l) => l.includes('handshake refused: origin not allowed'));

        child.kill('SIGTERM');
        assert.deepEqual(await exited(child), { code: 0, signal: null });
        const text = all();
        for (const line of text.split('\n')) {
          assert.doesNotMatch(line, pretty ? RAW : RAW_IN_JSON, `a raw control character in ${JSON.stringify(line)}`);
        }
        if (pretty) {
          // Shown as their escapes, where a reader sees what was sent.
          assert.ok(text.includes('rm\\u009b31m\\u2028\\u2029\\u001b[2J\\u007f'), text);
          assert.ok(text.includes('http://evil\\u009b1m\\u0085.example'), text);
        } else {
          // The same JSON values: nothing lost, nothing changed.
          const parsed = text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
          assert.equal(parsed.find((l) => l.msg === 'command refused')?.program, PROGRAM);
          assert.equal(parsed.find((l) => l.msg === 'handshake refused: origin not allowed')?.origin, ORIGIN);
        }
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
    });
  });
}
