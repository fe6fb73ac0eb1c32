/**
 * Whether this machine has the IPv6 loopback (a container may run without
 * IPv6): the ipv6-* tests listen and connect on ::1 only, and skip with this
 * reason where it is missing; under CI=true its absence is an error
 * (skipUnlessCI).
 */
import { createServer } from 'node:net';
import { skipUnlessCI } from './capability.js';

async function hasIPv6Loopback(): Promise<boolean> {
  const s = createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

/** false where ::1 works, else the reason to skip (for node:test's `skip`); under CI=true, where it is missing, importing this throws. */
export const noIPv6: false | string = skipUnlessCI(!(await hasIPv6Loopback()) && 'this machine has no ::1 (IPv6 loopback)');
