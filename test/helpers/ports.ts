/**
 * A port for a server a test starts itself on 127.0.0.1 and restarts.
 *
 * A port the kernel picks for `listen(0)` lies in its ephemeral range, the
 * range it takes every other `listen(0)` port and the local port of every
 * outgoing connection from. That is fine for a server that stays up, but
 * not for one a test stops and starts again on the same port: while it is
 * down, the kernel may hand that port to another test file's server (the
 * files run in parallel) or to a client retrying a connection to it (a
 * socket connected to itself), and the restart fails with EADDRINUSE. The
 * soak test met that in CI (its server, SIGKILLed, could not listen again).
 * A port below the ephemeral range is never handed out by the kernel.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';

/** Binds `port` on 127.0.0.1 and lets it go; resolves with the port, or undefined when it was taken. */
async function bindAndRelease(port: number): Promise<number | undefined> {
  const s = createServer();
  s.listen(port, '127.0.0.1');
  try {
    await once(s, 'listening'); // rejects on 'error' (EADDRINUSE)
  } catch {
    return undefined;
  }
  const bound = (s.address() as { port: number }).port;
  s.close();
  await once(s, 'close');
  return bound;
}

/** The first port of the kernel's ephemeral range (Linux: /proc/sys/net/ipv4/ip_local_port_range). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 1024) return first;
  } catch {
    // Not Linux: fall back to the usual start of the range.
  }
  return 32768;
}

/**
 * A free port on 127.0.0.1 below the ephemeral range (see the file comment),
 * for a server that a test stops and starts again on the same port.
 */
export async function restartablePort(): Promise<number> {
  const high = ephemeralStart();
  const low = Math.max(1025, high - 12_000);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await bindAndRelease(low + Math.floor(Math.random() * (high - low)));
    if (port !== undefined) return port;
  }
  throw new Error(`no free port on 127.0.0.1 between ${low} and ${high}`);
}
