/**
 * The HTTP listeners' accept queue holds a reconnect storm: node's default
 * backlog (511) overflowed when some 3,000 tabs came back after a restart, and
 * the kernel dropped their connections (ListenOverflows). `ss` shows a
 * listening socket's backlog in its Send-Q column.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
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

/** A free port in this file's range (the old daemon's ports cannot be 0: 0 turns them off). */
async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 26500 + Math.floor(Math.random() * 500);
    const s = createServer().listen(port, '127.0.0.1');
    try {
      await once(s, 'listening');
    } catch {
      continue;
    }
    s.close();
    await once(s, 'close');
    return port;
  }
  throw new Error('no free port in 26500-26999');
}

test('every HTTP listener (the main port, the old daemon\'s ports) asks the kernel for a backlog of 4096', async (t) => {
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
  if (listenBacklog(1) === undefined || !(somaxconn > 511)) {
    t.skip('needs `ss` and net.core.somaxconn above 511');
    return;
  }
  const s = await startHerald({ legacyEnabled: false, adminPort: await freePort(), userPort: await freePort() });
  try {
    const expected = Math.min(4096, somaxconn);
    for (const port of [Number(new URL(s.url).port), s.options.adminPort, s.options.userPort]) {
      assert.equal(listenBacklog(port), expected, `the backlog of port ${port}`);
    }
  } finally {
    await s.close();
  }
});
