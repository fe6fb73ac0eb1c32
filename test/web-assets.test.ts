/**
 * HTTP semantics of the browser assets (/herald.js and the rest): content
 * coding negotiated as RFC 9110 §12.5.3 says, conditional requests as
 * §13.1.2 says.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { startHerald, type TestServer } from './helpers/server.js';
import { ensureClientBuilt } from './helpers/browser.js';
import { rawRequest, type RawAnswer } from './helpers/raw-http.js';

/** A raw request, so that Accept-Encoding is exactly what the test says (fetch adds its own). */
function raw(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<RawAnswer> {
  return rawRequest(url, { method, headers });
}

describe('browser assets over HTTP', () => {
  let server: TestServer;
  let built: Buffer;
  before(async () => {
    ensureClientBuilt();
    built = readFileSync(new URL('../dist/client/herald.min.js', import.meta.url));
    server = await startHerald();
  });
  after(async () => {
    await server?.close();
  });

  it('sends gzip only where Accept-Encoding allows it, q=0 being a refusal', async () => {
    const cases: Array<[string, boolean]> = [
      ['gzip', true],
      ['gzip, deflate, br', true],
      ['GZIP;q=0.5', true],
      ['x-gzip', true],
      ['*', true],
      ['gzip;q=0', false],
      ['identity, gzip;q=0', false],
      ['gzip; q=0.000, br', false],
      ['*;q=0, identity', false],
      ['gzip;q=0, *', false],
      ['br', false],
      ['', false],
    ];
    for (const [header, gzip] of cases) {
      const res = await raw(`${server.url}/herald.js`, { 'accept-encoding': header });
      assert.equal(res.status, 200, header);
      assert.equal(res.headers['content-encoding'], gzip ? 'gzip' : undefined, `Accept-Encoding: ${header}`);
      assert.ok((gzip ? gunzipSync(res.body) : res.body).equals(built), `the library, for Accept-Encoding: ${header}`);
    }
  });

  it('answers If-None-Match: * (and a list holding the ETag) with 304', async () => {
    const { headers } = await raw(`${server.url}/herald.js`);
    const etag = String(headers.etag);
    for (const inm of ['*', ` ${etag}`, `"nope", W/${etag}`]) {
      const res = await raw(`${server.url}/herald.js`, { 'if-none-match': inm });
      assert.equal(res.status, 304, `If-None-Match: ${inm}`);
      assert.equal(res.body.length, 0);
    }
    assert.equal((await raw(`${server.url}/herald.js`, { 'if-none-match': '"nope"' })).status, 200);
  });
});
