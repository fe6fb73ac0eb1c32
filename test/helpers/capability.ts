/**
 * For a test that needs something of the machine (root, a tmpfs or bind
 * mount, the IPv6 loopback, setpriv, systemd-analyze): elsewhere it skips,
 * saying why; under CI=true it fails, because the CI machine has all of
 * them (.ci/run, SERVICES.md), and a skip there would let a run pass in
 * which the test never ran. As browserSkipReason (browser.ts) does for
 * Chromium and requireService (sql-services.ts) for the databases.
 */

/**
 * `false` when `why` is empty (the machine can); otherwise `why`, for
 * node:test's `skip` or `t.skip`, printed as a comment, or under CI=true an
 * Error saying it.
 */
export function skipUnlessCI(why: string): string;
export function skipUnlessCI(why: string | false | undefined): string | false;
export function skipUnlessCI(why: string | false | undefined): string | false {
  if (!why) return false;
  if (process.env.CI === 'true') throw new Error(`${why} (CI=true: this machine must be able to, so the test is not skipped)`);
  console.log(`# skipping: ${why}`);
  return why;
}
