/**
 * Server rules that no other test pinned down (a mutation audit changed each
 * and the suite still passed): the online lists are in numeric order, and the
 * lower bounds of a few options are where the schema says.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOptions, type OptionKey } from '../src/server/options.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

describe('the ids online are listed in numeric order', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald();
  });
  after(() => s.close());

  test('admins 10 and 9, connected in that order, are [9, 10] in GET /api/v1/online and the legacy REQUEST_LIST', async () => {
    // 10 first: a list in connection order, or sorted as text, would read [10, 9].
    const ten = await s.tab('admin', 10);
    await ten.nextOfType('WELCOME');
    const nine = await s.tab('admin', 9);
    await nine.nextOfType('WELCOME');
    const api = (await s.api('GET', '/api/v1/online?kind=admin')).body;
    const legacy = await RawLegacyClient.connect(s.herald.urls.legacy!.port);
    let list: unknown;
    try {
      list = (await legacy.request('{"LIST_TYPE":"ADMINS","TYPE":"REQUEST_LIST"}')).answer;
    } finally {
      legacy.destroy();
    }
    assert.deepEqual({ api, list }, { api: { kind: 'admin', ids: [9, 10] }, list: { TYPE: 'RESULT', LIST: [9, 10] } });
    ten.close();
    nine.close();
  });
});

describe('option lower bounds', () => {
  const load = (overrides: Partial<Record<OptionKey, unknown>>) => loadOptions({ env: {}, overrides });
  const bounds: Array<[OptionKey, number]> = [
    ['maxBufferedBytes', 65536],
    ['replayBatch', 1],
    ['maxPerStream', 1],
  ];
  for (const [key, bound] of bounds) {
    test(`${key} takes ${bound} and refuses ${bound - 1}, naming the key`, () => {
      assert.equal(load({ [key]: bound })[key], bound);
      assert.throws(() => load({ [key]: bound - 1 }), new RegExp(`option "${key}" \\(command line\\): .*≥ ${bound}.*, got ${bound - 1}$`));
    });
  }

  test('legacyMaxBufferedBytes may equal legacyMaxRequestBytes, and one byte less is refused naming both', () => {
    const equal = load({ legacyMaxRequestBytes: 4096, legacyMaxBufferedBytes: 4096 });
    assert.equal(equal.legacyMaxBufferedBytes, 4096);
    assert.throws(
      () => load({ legacyMaxRequestBytes: 4096, legacyMaxBufferedBytes: 4095 }),
      /option "legacyMaxBufferedBytes" \(4095\) is less than "legacyMaxRequestBytes" \(4096\)/,
    );
  });
});
