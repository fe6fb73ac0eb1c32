/**
 * Herald's log to a file that can take no more (src/server/logger.ts): a full disk (ENOSPC), a
 * quota (EDQUOT) or the file-size limit (EFBIG, used here: prlimit --pid sets it on the running
 * Herald, no disk to fill).
 * The lines it loses are counted, and once writing works again one warning says how many
 * (docs/cli.md). A line lost while nothing waited armed no retry: the warning came only at
 * exit, if at all, however long the log had been writable again.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { cleanEnv, cliBundle } from './helpers/cli.js';
import { skipUnlessCI } from './helpers/capability.js';
import { until } from './helpers/ws-client.js';
import { LOG_RETRY_MS } from '../src/server/logger.js';

const noPrlimit = skipUnlessCI(spawnSync('prlimit', ['--version']).status === 0 ? false : 'prlimit(1) (util-linux) is not installed');

/** One GET of `path` (a 404, logged at debug); resolves when it is answered. */
function get(url: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    request(`${url}${path}`, (res) => {
      res.resume();
      res.on('end', resolve);
    }).on('error', reject).end();
  });
}

describe('a log file that can take no more', () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-log-full-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the lines lost are counted, and the warning comes once the file takes lines again, not at exit', { skip: noPrlimit }, async () => {
    const log = join(dir, 'herald.log');
    const fd = openSync(log, 'w');
    const child = spawn(process.execPath, [cliBundle(), 'start', '--port', '0', '--no-legacy', '--store', 'memory',
      '--data-dir', join(dir, 'data'), '--log-level', 'debug', '--set', 'commandsAuditFile='], { env: cleanEnv(), stdio: ['ignore', fd, 'pipe'] });
    closeSync(fd);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c; });
    const text = () => readFileSync(log, 'utf8');
    /** Sets Herald's file-size limit (its soft one; the hard one stays, so it can be raised again). */
    const fileSizeLimit = (limit: number | 'unlimited') => execFileSync('prlimit', ['--pid', String(child.pid), `--fsize=${limit}:`]);
    try {
      let url: string | undefined;
      await until(() => (url = /"http":"(http:\/\/[\d.:]+)"/.exec(text())?.[1]) !== undefined, 15000, `Herald to listen (stderr: ${stderr})`);
      await get(url!, '/api/v1/before');
      await until(() => /\/api\/v1\/before[^\n]*\n$/.test(text()), 5000, 'the request\'s line');
      // The file may grow no more (EFBIG, as a full disk's ENOSPC): five requests' lines are lost,
      // each as it is written (nothing waits: the limit falls between two lines).
      fileSizeLimit(statSync(log).size);
      for (let i = 1; i <= 5; i++) await get(url!, `/api/v1/lost-${i}`);
      // The disk stays full for a while: the warning is tried, and lost, a few times over.
      await new Promise((resolve) => setTimeout(resolve, 4 * LOG_RETRY_MS));
      // It takes lines again; nothing else is logged meanwhile.
      fileSizeLimit('unlimited');
      let dropped = 0;
      await until(() => {
        dropped = Number(/"dropped":(\d+)/.exec(text())?.[1] ?? 0);
        return dropped > 0;
      }, 10000, 'the warning that log lines were dropped');
      assert.doesNotMatch(text(), /lost-\d/);
      assert.match(text(), new RegExp(`"msg":"${dropped} log lines? (was|were) dropped: stdout did not take them`));
      // One warning, not one per try while the file took nothing; its count is of the lines lost,
      // not of the last warning lost.
      assert.equal(text().match(/ dropped: stdout did not take them/g)?.length, 1, text());
      assert.ok(dropped >= 5, `${dropped} lines counted as dropped; five requests' were lost`);
      // And the log goes on.
      await get(url!, '/api/v1/after');
      await until(() => text().includes('/api/v1/after'), 5000, 'the next request\'s line');
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)));
    }
  });
});
