/**
 * A handshake whose request target node's HTTP parser lets through but that
 * is no URL (`//[`, `http://[`). It is the client's mistake: 400
 * HERALD_ERR_BAD_REQUEST, on the main port and on the compatibility ports,
 * where any path is accepted, and by the probe there (a plain request). It
 * was answered 503 HERALD_ERR_INTERNAL "try again later" (a client that
 * retries on 503 would retry for ever), with an error line in the log for
 * each such request.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { restartablePort } from './helpers/ports.js';
import { startHerald, type TestServer } from './helpers/server.js';

/** Writes one raw upgrade request and resolves with everything the server answered, once it closed the connection. */
function rawUpgrade(port: number, target: string, token: string, start = 'GET', key = 'dGhlIHNhbXBsZSBub25jZQ==', upgrade = 'websocket', version = '13'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection; answered ${JSON.stringify(answer)}`));
    }, 5000);
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1'); });
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    socket.write(
      `${start} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n` +
        `${version ? `Sec-WebSocket-Version: ${version}\r\n` : ''}${key ? `Sec-WebSocket-Key: ${key}\r\n` : ''}Cookie: herald_token=${token}\r\n\r\n`,
    );
  });
}

describe('a handshake whose request target is no URL', () => {
  let s: TestServer;
  let ports: number[];
  let token: string;
  before(async () => {
    const adminPort = await restartablePort();
    s = await startHerald({ adminPort, heartbeatMs: 60_000 });
    token = await s.token('admin', 1);
    ports = [Number(new URL(s.url).port), adminPort];
  });
  after(() => s.close());

  for (const target of ['//[/ws/admin', 'http://[/ws/admin', '//[']) {
    test(`${target}: 400 HERALD_ERR_BAD_REQUEST, and the connection is closed`, async () => {
      for (const port of ports) {
        const answer = await rawUpgrade(port, target, token);
        assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, answer);
        const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } };
        assert.equal(body.error.code, 'HERALD_ERR_BAD_REQUEST');
      }
    });
  }

  test('the probe on a compatibility port (a plain request, no upgrade) answers such a target 400 as well, not 503', async () => {
    // There it is answered as the handshake would be (web/admission.ts): "try again later" told a
    // client that checks before it connects to retry a request that can never succeed.
    for (const target of ['//[', 'http://[/ws/admin']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = net.connect(ports[1]!, '127.0.0.1');
        let text = '';
        socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
        socket.on('error', reject);
        socket.on('close', () => resolve(text));
        socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nCookie: herald_token=${token}\r\n\r\n`);
      });
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, answer);
      const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } };
      assert.deepEqual(body.error, { code: 'HERALD_ERR_BAD_REQUEST', message: 'the request target is not a valid URL' });
    }
  });

  // ws checks these only after the upgrade event: each was first admitted (a look-up at the
  // panel's database or panel with the sql or http resolver), then answered in ws's plain text.
  for (const [what, start, key, upgrade, version] of [
    ['a POST', 'POST', undefined, undefined, undefined],
    ['no Sec-WebSocket-Key', 'GET', '', undefined, undefined],
    ['a Sec-WebSocket-Key that is no 16-byte nonce', 'GET', 'c2hvcnQ=', undefined, undefined],
    ['an Upgrade that is not websocket alone', 'GET', undefined, 'websocket, h2c', undefined],
    ['no Sec-WebSocket-Version', 'GET', undefined, undefined, ''],
    ['a Sec-WebSocket-Version ws does not speak', 'GET', undefined, undefined, '12'],
  ] as const) {
    test(`${what}: 400 HERALD_ERR_BAD_REQUEST before the credential is looked at`, async () => {
      for (const port of ports) {
        for (const credential of [token, 'not-a-token']) {
          const answer = await rawUpgrade(port, '/ws/admin', credential, start, key, upgrade, version);
          assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/, answer);
          assert.match(answer, /\r\ncontent-type: application\/json/i, answer);
          const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: { code: string } };
          assert.equal(body.error.code, 'HERALD_ERR_BAD_REQUEST');
        }
      }
    });
  }
});
