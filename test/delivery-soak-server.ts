/**
 * Herald as a separate process for the soak test (test/delivery-soak.test.ts):
 * options from HERALD_* environment variables, "READY <url>" on stdout once
 * listening. The test kills it with SIGKILL and starts it again on the same
 * data dir and port; SIGTERM closes it gracefully.
 */
import { createHerald } from '../src/server/herald.js';
import { loadOptions } from '../src/server/options.js';

const herald = await createHerald(loadOptions({ env: process.env }));
const urls = await herald.listen();
process.stdout.write(`READY ${urls.http}\n`);
process.once('SIGTERM', () => {
  void herald.close().then(() => process.exit(0));
});
