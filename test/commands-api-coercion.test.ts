/**
 * POST /api/v1/commands with `null` and booleans where the validator would
 * convert them (commands-routes.ts, convertedCommandField): `"aid":true` ran
 * the program for admin 1, `"timeout":true` gave it one second, `"args":null`
 * one empty argument, `"success":null` told the admin an empty text. Each is
 * refused naming the field, nothing runs, and the refusal is audited as any
 * other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

const RUN = { aid: 1, program: 'ping', args: ['-c', '1', '127.0.0.1'] };

describe('a command request with null or a boolean where a value is converted', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ store: 'memory', commandsAllow: ['ping'] });
  });
  after(() => s.close());

  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...RUN, aid: true }, 'body/aid must be integer, not true'],
    [{ ...RUN, aid: [null] }, 'body/aid/0 must be integer, not null'],
    [{ ...RUN, timeout: true }, 'body/timeout must be number, not true'],
    [{ ...RUN, timeout: null }, 'body/timeout must be number, not null'],
    [{ ...RUN, args: null }, 'body/args must be an array of strings, not null'],
    [{ ...RUN, args: ['-c', true, '127.0.0.1'] }, 'body/args/1 must be string, not true'],
    // The seed's command line as one string: it ran as one argument, `ping '-c 1 127.0.0.1'`.
    [{ ...RUN, args: '-c 1 127.0.0.1' }, 'body/args must be an array of strings, not string'],
    [{ ...RUN, args: 5 }, 'body/args must be an array of strings, not number'],
    [{ ...RUN, args: { 0: '-c' } }, 'body/args must be an array of strings, not object'],
    [{ ...RUN, success: null }, 'body/success must be a notification object (with a TYPE) or a string, not null'],
    [{ ...RUN, error: false }, 'body/error must be a notification object (with a TYPE) or a string, not false'],
    // The validator takes a one-item array for its item: `[true]` became the text "true", `[null]` one empty argument.
    [{ ...RUN, args: ['-c', [null], '127.0.0.1'] }, 'body/args/1 must be string, not an array'],
    [{ ...RUN, success: [true] }, 'body/success must be a notification object (with a TYPE) or a string, not an array'],
    [{ ...RUN, error: ['done'] }, 'body/error must be a notification object (with a TYPE) or a string, not an array'],
  ];
  for (const [body, message] of cases) {
    test(`${JSON.stringify(body)}: 400 "${message}", nothing runs, the refusal audited`, async () => {
      const r = await s.api('POST', '/api/v1/commands', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.deepEqual(r.body.error, { code: 'HERALD_ERR_VALIDATION', message });
      const latest = (await s.api('GET', '/api/v1/commands/audit?limit=1')).body.records[0];
      assert.equal(latest.event, 'refused');
      assert.equal(latest.error, `HERALD_ERR_VALIDATION: ${message}`);
    });
  }

  test('none of them ran, and a request with the values given runs', async () => {
    assert.deepEqual((await s.api('GET', '/api/v1/commands')).body.commands, []);
    const r = await s.api('POST', '/api/v1/commands', { ...RUN, aid: '3', timeout: '5' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.aid, 3);
    assert.equal(r.body.timeoutSec, 5);
  });
});
