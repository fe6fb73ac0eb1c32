/**
 * The HTTP listeners' accept queue holds a reconnect storm: node's default
 * backlog (511) overflowed when some 3,000 tabs came back after a restart, and
 * the kernel dropped their connections (ListenOverflows). `ss` shows a
 * listening socket's backlog in its Send-Q column.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { skipUnlessCI } from './helpers/capability.js';
import { restartablePort } from './helpers/ports.js';
import { startHerald } from './helpers/server.js';

/** The backlog of the socket listening on 127.0.0.1:`port`, as the kernel has it, or undefined without `ss`. */
function listenBacklog(port: number): number | undefined {
  let out: string;
  try {
    out = execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' });
  } catch {
    return undefined;
  }
  const fields = out.trim().split(/\s+/);
  return Number(fields[2]);
}

const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
const unable = listenBacklog(1) === undefined ? '`ss` (iproute2) is not installed' : !(somaxconn > 511) ? `net.core.somaxconn is ${somaxconn}, not above node's own 511` : false;

test('every HTTP listener (the main port, the old daemon\'s ports) asks the kernel for a backlog of 4096', { skip: skipUnlessCI(unable) }, async () => {
  const s = await startHerald({ legacyEnabled: false, adminPort: await restartablePort(), userPort: await restartablePort() });
  try {
    const expected = Math.min(4096, somaxconn);
    for (const port of [Number(new URL(s.url).port), s.options.adminPort, s.options.userPort]) {
      assert.equal(listenBacklog(port), expected, `the backlog of port ${port}`);
    }
  } finally {
    await s.close();
  }
});
