import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startHerald, type TestServer } from './helpers/server.js';
import { TestTab, until } from './helpers/ws-client.js';

/** Sends bytes on a raw TCP connection and resolves with everything the server wrote before closing (or after `waitMs`). */
function raw(port: number, bytes: Buffer | string, waitMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const sock: Socket = connect(port, '127.0.0.1', () => sock.write(bytes));
    const done = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(done, waitMs);
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', done);
    sock.on('error', done);
  });
}

const handles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

describe('garbage on every listener: a clear refusal, no crash, no hang, no leak', () => {
  let s: TestServer;
  let httpPort: number;
  let legacyPort: number;
  before(async () => {
    s = await startHerald();
    httpPort = Number(new URL(s.url).port);
    legacyPort = s.herald.urls.legacy!.port;
  });
  after(() => s.close());

  test('HTTP listener: junk bytes, a bad upgrade, a half request', async () => {
    assert.match(await raw(httpPort, Buffer.from([0, 1, 2, 255, 254, 13, 10, 13, 10])), /^HTTP\/1\.1 400/);
    const badUpgrade = await raw(httpPort, 'GET /ws/admin HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    assert.match(badUpgrade, /^HTTP\/1\.1 (400|401)/);
    const noKey = await raw(httpPort, `GET /ws/admin?token=${await s.token('admin', 1)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
    assert.match(noKey, /^HTTP\/1\.1 400/);
    // A version that only reads as 13 once made a number of ("13.0") is not 13 (ws 8.23.1 compares the text).
    const token = await s.token('admin', 1);
    const upgrade = (version: string) => raw(httpPort, `GET /ws/admin?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
      + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: ${version}\r\n\r\n`, 500);
    for (const version of ['13.0', '0x0d', '12']) {
      assert.match(await upgrade(version), /^HTTP\/1\.1 400[^]*Sec-WebSocket-Version: 13, 8/, `version ${version}`);
    }
    assert.match(await upgrade('13'), /^HTTP\/1\.1 101/);
  });

  test('a wrong token is refused before the upgrade with a JSON reason and no stack trace', async () => {
    const r = await TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: 'x.y.z' } });
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.body).error.code, 'HERALD_ERR_UNAUTHORIZED');
    assert.doesNotMatch(r.body, /\.(ts|js):\d+/);
  });

  test('a missing API token', async () => {
    const res = await fetch(`${s.url}/api/v1/online`);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as any).error.code, 'HERALD_ERR_UNAUTHORIZED');
  });

  test('after a storm of bad connections on every listener the server answers as before and holds no extra handles', async () => {
    const before = handles();
    const token = await s.token('admin', 2);
    const storm: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      storm.push(raw(httpPort, Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 7 + j * 13) % 256)), 1000));
      storm.push(raw(legacyPort, Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 11 + j * 5) % 256)), 300));
      storm.push(TestTab.status(`${s.wsUrl}/ws/admin`, { query: { token: `${token}x` } }));
      storm.push(TestTab.open(`${s.wsUrl}/ws/admin`, { query: { token } }).then((t) => { t.send('{{{'); t.terminate(); }));
    }
    await Promise.all(storm);
    const tab = await s.tab('admin', 3);
    tab.send({ TYPE: 'PING' });
    await tab.nextOfType('PONG');
    assert.equal((await raw(legacyPort, '{"TYPE":"PING"}', 300)).trim(), '{"TYPE":"PONG"}');
    tab.close();
    await tab.closed;
    await until(() => s.herald.hub.size === 0, 5000, 'every tab gone from the hub');
    await until(() => handles() <= before + 2, 5000, `handles back near ${before} (now ${handles()})`);
  });
});
