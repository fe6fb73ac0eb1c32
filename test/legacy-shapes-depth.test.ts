/**
 * How deep a legacy request may nest (MAX_JSON_DEPTH, 64 levels of arrays and
 * objects), on both doors. The TCP listener's framer counts the depth as the
 * bytes arrive and never parses a deeper value, so the parser does not walk
 * the whole value a second time for it; POST /api/v1/legacy's body parser
 * scans its text first, and the parser still walks what any other caller
 * hands it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseLegacyRequest } from '../src/server/api/legacy-request.js';
import { MAX_JSON_DEPTH } from '../src/protocol/json-depth.js';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** A PROXY echo nesting `levels` deep in all (the request's own object is the first level, MESSAGE the second). */
function echoNesting(levels: number): { text: string; echo: unknown } {
  const arrays = levels - 2;
  const echo = `${'['.repeat(arrays)}1${']'.repeat(arrays)}`;
  return { text: `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${echo}}}`, echo: JSON.parse(echo) };
}

describe('legacy: nesting depth on both doors', () => {
  let server: TestServer;
  let c: RawLegacyClient;

  before(async () => {
    server = await startHerald({ store: 'memory' });
    c = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
  });
  after(async () => {
    c.destroy();
    await server.close();
  });

  it('TCP: a request nested exactly 64 levels is served; one level more is refused, and the connection goes on', async () => {
    const max = echoNesting(MAX_JSON_DEPTH);
    assert.deepEqual((await c.request(max.text)).answer, max.echo);
    const deeper = (await c.request(echoNesting(MAX_JSON_DEPTH + 1).text)).answer as { TYPE: string; ERROR: string; CODE: string };
    assert.deepEqual(deeper, { TYPE: 'ERROR', ERROR: `INCORRECT REQUEST: nested deeper than ${MAX_JSON_DEPTH} levels`, CODE: 'HERALD_ERR_BAD_REQUEST' });
    assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
  });

  it('HTTP: POST /api/v1/legacy serves 64 levels and refuses 65 with 400', async () => {
    const max = echoNesting(MAX_JSON_DEPTH);
    assert.deepEqual(await server.api('POST', '/api/v1/legacy', max.text), { status: 200, body: max.echo });
    const deeper = await server.api('POST', '/api/v1/legacy', echoNesting(MAX_JSON_DEPTH + 1).text);
    assert.equal(deeper.status, 400);
    assert.equal(deeper.body.error.code, 'HERALD_ERR_BAD_REQUEST');
    assert.match(deeper.body.error.message, /nested deeper than 64 levels/);
  });

  it('the parser walks a value for its depth unless its reader already counted it (the TCP framer): no second pass', () => {
    const deep = JSON.parse(echoNesting(MAX_JSON_DEPTH + 1).text) as unknown;
    const walked = parseLegacyRequest(deep);
    assert.equal(walked.ok, false, 'a value from anywhere else is still walked and refused');
    assert.equal(!walked.ok && walked.error.ERROR, `INCORRECT REQUEST: nested deeper than ${MAX_JSON_DEPTH} levels`);
    // What the framer passes on is never deeper than the limit; told so, the parser trusts it.
    assert.equal(parseLegacyRequest(deep, { depthChecked: true }).ok, true);
  });
});
