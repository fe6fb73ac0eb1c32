/**
 * sqlUrl holds the database password. One that cannot be parsed (a port out
 * of range, a broken percent-escape, a bad IPv6 address) must stop Herald at
 * start with a configuration error that does not quote it: with mysql2 it
 * was a stack trace from inside the driver, with pg Herald started and
 * answered every handshake 503, for ever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOptions } from '../src/server/options.js';
import { createSessionResolver } from '../src/server/auth/index.js';

const PASSWORD = 'S3cretPassw0rd';

test('an sqlUrl that is not a valid URL is a configuration error at start, naming the option and not quoting the URL', async () => {
  for (const scheme of ['mysql', 'mariadb', 'postgres', 'postgresql']) {
    const unusable = [`herald:${PASSWORD}@127.0.0.1:99999/abills`, `herald:${PASSWORD}@[zz/abills`];
    // mysql2 decodes the user and password strictly; pg keeps a broken escape as it is.
    if (scheme.startsWith('m')) unusable.push(`herald:${PASSWORD}%ZZ@127.0.0.1/abills`, `herald%ZZ:${PASSWORD}@127.0.0.1/abills`);
    for (const rest of unusable) {
      const sqlUrl = `${scheme}://${rest}`;
      const options = loadOptions({ env: {}, overrides: { authResolver: 'sql', sqlUrl } });
      let resolver: Awaited<ReturnType<typeof createSessionResolver>> | undefined;
      assert.throws(() => {
        resolver = createSessionResolver(options);
      }, (e: Error & { code?: string; input?: unknown }) => {
        assert.equal(e.code, 'HERALD_ERR_CONFIG', `${sqlUrl}: ${e.message}`);
        assert.match(e.message, /option "sqlUrl"/);
        assert.ok(!JSON.stringify({ ...e, message: e.message, stack: e.stack }).includes(PASSWORD), `${sqlUrl}: the error quotes the password`);
        return true;
      }, sqlUrl);
      await resolver?.close();
    }
  }
});

test('a valid sqlUrl still builds the resolver, whatever its password holds', async () => {
  for (const sqlUrl of [
    `mysql://herald:${encodeURIComponent('p@ss:w/rd%')}@127.0.0.1:1/abills`, `postgres://herald:${encodeURIComponent('p@ss:w/rd%')}@[::1]:1/abills`, 'mariadb://localhost/abills',
    // Unix sockets, as each driver spells them (the first is not a WHATWG URL, but pg takes it).
    'postgres://herald@/abills?host=/var/run/postgresql', 'postgresql:///abills?host=/tmp', 'mysql://herald@localhost/abills?socketPath=/run/mysqld/mysqld.sock',
  ]) {
    const resolver = createSessionResolver(loadOptions({ env: {}, overrides: { authResolver: 'sql', sqlUrl } }));
    await resolver.close();
  }
});
