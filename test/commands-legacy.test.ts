/**
 * The seed's own COMMAND example through the legacy TCP door, end to end:
 * raw TCP in, a real ping on loopback, the result in a real admin tab.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startHerald, type TestServer } from './helpers/server.js';

/** A raw legacy client: writes requests, reads answers as they come (one JSON value each, newline-ended or not). */
async function legacyClient(host: string, port: number): Promise<{ ask(req: unknown): Promise<unknown>; close(): void }> {
  const socket: Socket = connect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let buffer = '';
  const waiting: Array<(v: unknown) => void> = [];
  socket.on('data', (d: Buffer) => {
    buffer += d.toString('utf8');
    // Answers here are small and complete per line or per value; split on newlines, falling back to the whole buffer.
    for (;;) {
      const trimmed = buffer.trimStart();
      if (trimmed === '') return;
      let end = trimmed.indexOf('\n');
      if (end < 0) end = trimmed.length;
      const text = trimmed.slice(0, end);
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        return; // incomplete
      }
      buffer = trimmed.slice(end);
      waiting.shift()?.(value);
    }
  });
  return {
    ask(req) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no legacy answer to ${JSON.stringify(req)} within 2 s`)), 2000);
        waiting.push((v) => {
          clearTimeout(timer);
          resolve(v);
        });
        socket.write(JSON.stringify(req));
      });
    },
    close() {
      socket.destroy();
    },
  };
}

describe('COMMAND through the legacy TCP door', () => {
  let server: TestServer;
  before(async () => {
    server = await startHerald({ commandsProgressMs: 100 });
  });
  after(async () => {
    await server.close();
  });

  it('runs the seed example (on loopback) and notifies the admin: answer 1, then SUCCESS-less default notification', async () => {
    const legacy = server.herald.urls.legacy;
    assert.ok(legacy, 'the legacy door is listening');
    const tab = await server.tab('admin', 1);
    await tab.nextOfType('WELCOME');
    const client = await legacyClient(legacy.host, legacy.port);
    // The seed's exact request, with 192.168.1.1 replaced by loopback.
    const answer = await client.ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: '/usr/bin/ping', PROGRAM_ARGS: ['-c 3', '-q', '127.0.0.1'], ARGS: { timeout: 5 } });
    assert.equal(answer, 1);
    const progress = await tab.next((f) => f.TYPE === 'COMMAND_PROGRESS');
    assert.equal(progress.PROGRAM, '/usr/bin/ping');
    const final = await tab.next((f) => f.TYPE === 'MESSAGE' && f.COMMAND_ID === progress.COMMAND_ID, 10_000);
    assert.equal(final.TITLE, '/usr/bin/ping');
    assert.match(final.TEXT, /3 packets transmitted, 3 received, 0% packet loss/);
    assert.equal(final.COMMAND.STATE, 'succeeded');
    assert.equal(final.COMMAND.EXIT_CODE, 0);
    const info = await server.api('GET', `/api/v1/commands/${final.COMMAND_ID}`);
    assert.equal(info.body.door, 'legacy');
    assert.deepEqual(info.body.args, ['-c', '3', '-q', '127.0.0.1'], '"-c 3" was split into two words');
    client.close();
    tab.close();
  });

  it('sends SUCCESS on exit 0 and ERROR otherwise, with the caller\'s ID', async () => {
    const legacy = server.herald.urls.legacy;
    assert.ok(legacy);
    const tab = await server.tab('admin', 2);
    await tab.nextOfType('WELCOME');
    const client = await legacyClient(legacy.host, legacy.port);
    const SUCCESS = { TYPE: 'MESSAGE', TITLE: 'Host is up', TEXT: 'ping ok' };
    const ERROR = { TYPE: 'MESSAGE', TITLE: 'Host is down', TEXT: 'ping failed' };
    assert.equal(await client.ask({ TYPE: 'COMMAND', AID: 2, PROGRAM: 'ping', PROGRAM_ARGS: ['-c 1 -q 127.0.0.1'], ARGS: { timeout: 5 }, SUCCESS, ERROR, ID: 'up-1' }), 1);
    const up = await tab.next((f) => f.TYPE === 'MESSAGE' && f.ID === 'up-1', 10_000);
    assert.equal(up.TITLE, 'Host is up');
    // An invalid option makes ping exit with status 2.
    assert.equal(await client.ask({ TYPE: 'COMMAND', AID: 2, PROGRAM: 'ping', PROGRAM_ARGS: ['-c 0', '127.0.0.1'], ARGS: { timeout: 5 }, SUCCESS, ERROR, ID: 'down-1' }), 1);
    const down = await tab.next((f) => f.TYPE === 'MESSAGE' && f.ID === 'down-1', 10_000);
    assert.equal(down.TITLE, 'Host is down');
    assert.notEqual(down.COMMAND.EXIT_CODE, 0);
    client.close();
    tab.close();
  });

  it('takes the same COMMAND over POST /api/v1/legacy', async () => {
    const tab = await server.tab('admin', 3);
    await tab.nextOfType('WELCOME');
    const res = await server.api('POST', '/api/v1/legacy', { TYPE: 'COMMAND', AID: 3, PROGRAM: 'ping', PROGRAM_ARGS: ['-c 1', '-q', '127.0.0.1'], ARGS: { timeout: 5 }, ID: 'http-legacy' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 1);
    const final = await tab.next((f) => f.TYPE === 'MESSAGE' && f.ID === 'http-legacy', 10_000);
    assert.equal(final.COMMAND.STATE, 'succeeded');
    assert.match(final.TEXT, /1 packets transmitted, 1 received/);
    tab.close();
  });

  it('refuses a forbidden program and shell tricks with an error that names the program', async () => {
    const legacy = server.herald.urls.legacy;
    assert.ok(legacy);
    const client = await legacyClient(legacy.host, legacy.port);
    const forbidden = (await client.ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: '/bin/sh', PROGRAM_ARGS: ['-c', 'touch /tmp/herald-pwned'] })) as Record<string, string>;
    assert.equal(forbidden.TYPE, 'ERROR');
    assert.match(forbidden.ERROR ?? '', /\/bin\/sh/);
    const chained = (await client.ask({ TYPE: 'COMMAND', AID: 1, PROGRAM: 'ping -c 1 127.0.0.1; touch /tmp/herald-pwned', PROGRAM_ARGS: [] })) as Record<string, string>;
    assert.equal(chained.TYPE, 'ERROR');
    client.close();
  });
});
