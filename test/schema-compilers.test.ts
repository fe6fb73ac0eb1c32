// The routes' schemas are compiled once for every Herald in the process
// (src/server/api/compilers.ts): a second Herald reuses the first's validators
// and serializers, a schema built afresh for each Herald (equal text, a new
// object) finds the same compiled code, and different schemas stay apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { sharedCompilers } from '../src/server/api/compilers.js';
import { finiteNumbers } from '../src/server/api/schemas.js';
import { startHerald } from './helpers/server.js';

const AJV = { customOptions: { removeAdditional: false as const, verbose: true }, plugins: [finiteNumbers] };

function validatorFor(schema: object) {
  return sharedCompilers.buildValidator({}, AJV)({ schema, method: 'POST', url: '/x', httpPart: 'body' });
}

function serializerFor(schema: object) {
  return sharedCompilers.buildSerializer({}, undefined)({ schema, method: 'GET', url: '/x', httpStatus: '200' });
}

test('a schema built afresh with the same text gets the validator already compiled, and it still validates', () => {
  const build = () => Type.Object({ kind: Type.Union([Type.Literal('admin'), Type.Literal('user')]), id: Type.Integer({ minimum: 1 }) });
  const first = validatorFor(build());
  for (let i = 0; i < 50; i++) assert.equal(validatorFor(build()), first, `build ${i} compiled again`);
  assert.equal(first({ kind: 'admin', id: 7 }), true);
  assert.equal(first({ kind: 'robot', id: 7 }), false);
  assert.equal(first({ kind: 'user', id: 0 }), false);
});

test('schemas that differ get validators of their own', () => {
  const min1 = validatorFor(Type.Object({ n: Type.Integer({ minimum: 1 }) }));
  const min5 = validatorFor(Type.Object({ n: Type.Integer({ minimum: 5 }) }));
  assert.notEqual(min1, min5);
  assert.equal(min1({ n: 3 }), true);
  assert.equal(min5({ n: 3 }), false);
});

test('other Ajv options get another validator (the Ajv is chosen by its options before the schema)', () => {
  const schema = Type.Object({ n: Type.Integer() });
  const strict = sharedCompilers.buildValidator({}, AJV)({ schema, method: 'POST', url: '/x', httpPart: 'body' });
  const coercing = sharedCompilers.buildValidator({}, { customOptions: { coerceTypes: true } })({ schema, method: 'POST', url: '/x', httpPart: 'body' });
  assert.notEqual(strict, coercing);
  assert.equal(coercing({ n: '3' }), true);
});

test('a response schema built afresh gets the serializer already compiled; a different one its own', () => {
  const build = () => Type.Object({ ok: Type.Boolean(), version: Type.String() });
  const first = serializerFor(build());
  assert.equal(serializerFor(build()), first);
  assert.equal(first({ ok: true, version: '1', extra: 'dropped' }), '{"ok":true,"version":"1"}');
  const other = serializerFor(Type.Object({ ok: Type.Boolean() }));
  assert.notEqual(other, first);
  assert.equal(other({ ok: false, version: '1' }), '{"ok":false}');
});

test('two Heralds in one process each validate and answer as one alone does', async () => {
  const a = await startHerald();
  const b = await startHerald();
  try {
    for (const server of [a, b]) {
      const bad = await server.api('POST', '/api/v1/send', { to: { aid: 3 }, message: { TEXT: 'x' }, tll: 5 });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'HERALD_ERR_VALIDATION');
      assert.match(bad.body.error.message, /tll/);
      const online = await server.api('GET', '/api/v1/online/admin/7');
      assert.equal(online.status, 200, JSON.stringify(online.body));
      assert.equal(online.body.online, false);
      const ping = await server.api('GET', '/api/v1/ping');
      assert.deepEqual(Object.keys(ping.body).sort(), ['ok', 'version']);
    }
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});
