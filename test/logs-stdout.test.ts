/**
 * Herald's log when nobody reads its stdout (src/server/logger.ts). pino's
 * own destination kept every line a stalled reader had not taken, without
 * bound, and at exit waited for ever to write them: SIGTERM never ended
 * Herald (a second one did nothing either), only SIGKILL did. Now lines wait
 * up to LOG_BUFFER_BYTES, the rest are dropped and counted in one warning
 * once stdout is read again, and at exit what waits is given up after
 * LOG_EXIT_FLUSH_MS: SIGTERM ends Herald with its usual exit status 0. Each
 * test runs a real `herald start` whose stdout is a pipe the test stops
 * reading, in JSON and in pretty mode.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { exited, spawnCli } from './helpers/cli.js';
import { LOG_BUFFER_BYTES, LOG_EXIT_FLUSH_MS } from '../src/server/logger.js';

const ENV = { HERALD_SECRET: 'y'.repeat(40), HERALD_API_TOKEN: 'logs-stdout-api-token-0123' };
/** A 404 logs one debug line with its path (at most 200 characters of it): about 400 bytes a request. */
const PATH = `/${'p'.repeat(199)}`;
/** Requests of a burst: their lines are well over LOG_BUFFER_BYTES. */
const BURST = Math.ceil((LOG_BUFFER_BYTES * 4) / 400);
/** The shutdown grace these servers get. */
const GRACE_MS = 1000;

/** `n` GETs of PATH, 20 at a time on kept-alive connections; resolves with the statuses seen. */
async function burst(url: string, n: number): Promise<Set<number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: 20 });
  const statuses = new Set<number>();
  let next = 0;
  const one = () => new Promise<void>((resolve, reject) => {
    request(`${url}${PATH}`, { agent }, (res) => {
      statuses.add(res.statusCode ?? 0);
      res.resume();
      res.on('end', resolve);
    }).on('error', reject).end();
  });
  await Promise.all(Array.from({ length: 20 }, async () => {
    while (next < n) {
      next++;
      await one();
    }
  }));
  agent.destroy();
  return statuses;
}

/** Herald with its stdout a pipe this test reads until it listens, then stops reading. */
async function startUnread(dir: string, pretty: boolean, more: string[] = []) {
  const child = spawnCli(['start', '--port', '0', '--no-legacy', '--data-dir', dir, '--log-level', 'debug', '--set', `logPretty=${pretty}`, ...more], { env: ENV });
  let text = '';
  const stdout = child.stdout;
  stdout.setEncoding('utf8');
  const onData = (chunk: string) => { text += chunk; };
  stdout.on('data', onData);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Herald did not start: ${text}`)), 15000);
    const look = () => {
      const m = /"?http"?:\s*"?(http:\/\/[\d.:[\]]+)/.exec(text);
      if (m) {
        clearTimeout(timer);
        stdout.off('data', look);
        resolve(m[1]!);
      }
    };
    stdout.on('data', look);
  });
  // Read no more: the pipe fills (this side holds at most its stream's high-water mark).
  stdout.pause();
  return {
    child, url,
    /** What was read so far. */
    taken: () => text,
    /** Reads again, to the end of the output. */
    readAll: () => new Promise<string>((resolve) => {
      stdout.on('end', () => resolve(text));
      stdout.resume();
    }),
    /** Reads again until `pred` holds for what was read. */
    readUntil: (pred: (all: string) => boolean) => new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the expected output never came')), 15000);
      const check = () => {
        if (!pred(text)) return;
        clearTimeout(timer);
        stdout.off('data', check);
        stdout.pause();
        resolve(text);
      };
      stdout.on('data', check);
      stdout.resume();
      check();
    }),
  };
}

for (const pretty of [false, true]) {
  describe(`a stdout nobody reads (${pretty ? 'pretty' : 'JSON lines'})`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-logs-stdout-'));
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('holds a bounded backlog, drops the rest, and says how many once stdout is read again', async () => {
      const h = await startUnread(join(dir, 'a'), pretty);
      try {
        const before = h.taken();
        assert.deepEqual(await burst(h.url, BURST), new Set([404]));
        // Read again: what waited comes, then one warning counts the lines dropped meanwhile.
        const DROPPED = /(\d+) log lines? (?:was|were) dropped: stdout did not take them/;
        const all = await h.readUntil((t) => DROPPED.test(t));
        const burstOutput = all.slice(before.length, DROPPED.exec(all)!.index);
        // A pretty line puts its fields on lines of their own: the message is counted.
        const received = burstOutput.split('\n').filter((l) => l.includes('request refused')).length;
        const dropped = Number(DROPPED.exec(all)![1]);
        assert.ok(received > 0 && received < BURST, `received ${received} of ${BURST}`);
        assert.equal(received + dropped, BURST, 'every line of the burst was either written or counted as dropped');
        // What waited for the reader: the bound, and what the pipe and this side's stream held (64 KiB each).
        const held = Buffer.byteLength(burstOutput);
        assert.ok(held <= LOG_BUFFER_BYTES + 512 * 1024, `${held} bytes of the burst's lines waited for the reader (${BURST} lines, ${LOG_BUFFER_BYTES} bytes at most kept)`);
      } finally {
        h.child.kill('SIGKILL');
      }
    });

    test('SIGTERM with a full backlog still ends Herald in its shutdown\'s time, with exit status 0', async () => {
      const h = await startUnread(join(dir, 'b'), pretty, ['--set', `shutdownGraceMs=${GRACE_MS}`]);
      try {
        assert.deepEqual(await burst(h.url, BURST), new Set([404]));
        h.child.kill('SIGTERM');
        // `herald start` ends at the latest 5 s past shutdownGraceMs (README, the option's row), and the exit gives what
        // waits LOG_EXIT_FLUSH_MS: pino's JSON destination waited for ever, its pretty transport 10 s.
        assert.deepEqual(await exited(h.child, GRACE_MS + 5000 + LOG_EXIT_FLUSH_MS), { code: 0, signal: null });
        await h.readAll();
      } finally {
        if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
      }
    });

    test('a stdout whose reader has gone (EPIPE): Herald serves on, and SIGTERM ends it with exit status 0', async () => {
      const h = await startUnread(join(dir, 'c'), pretty, ['--set', `shutdownGraceMs=${GRACE_MS}`]);
      try {
        h.child.stdout.destroy();
        assert.deepEqual(await burst(h.url, 200), new Set([404]));
        h.child.kill('SIGTERM');
        assert.deepEqual(await exited(h.child, GRACE_MS + 5000 + LOG_EXIT_FLUSH_MS), { code: 0, signal: null });
      } finally {
        if (h.child.exitCode === null && h.child.signalCode === null) h.child.kill('SIGKILL');
      }
    });
  });
}
