/**
 * The legacy TCP protocol end to end: a real Herald on port 0, a raw TCP
 * client writing the old Perl client's exact bytes, real `ws` tabs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { LATE_ANSWER, LEGACY_ANSWER_DEADLINE_MS, LegacyServer } from '../src/server/api/legacy-server.js';
import type { CommandService } from '../src/server/commands/command-service.js';
import { loadOptions } from '../src/server/options.js';
import { createCore } from './helpers/legacy-core.js';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';
import { until } from './helpers/ws-client.js';

const TOKEN = 'perl-side-token-0123456789';
/**
 * Below the old client's 2-second give-up and Herald's own 1.5 s answer
 * deadline (so an answer that waited for either fails), with room for a
 * machine busy with other test files: 250 ms was too tight there.
 */
const FAST_MS = 1000;

describe('legacy TCP protocol, end to end', () => {
  let server: TestServer;
  let port: number;
  const clients: RawLegacyClient[] = [];
  const connect = async () => {
    const c = await RawLegacyClient.connect(port);
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await startHerald({ legacyToken: TOKEN });
    port = server.herald.urls.legacy!.port;
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await server.close();
  });

  it("serves the old Perl client's session on one reused connection, byte for byte", async () => {
    const admin1 = await Promise.all([server.tab('admin', 1), server.tab('admin', 1), server.tab('admin', 1)]);
    const admin7 = await server.tab('admin', 7);
    await Promise.all([...admin1, admin7].map((t) => t.nextOfType('WELCOME')));
    const c = await connect();

    // is_connected(): writes this literal and matches /{"TYPE":"PONG"}/ on what it reads.
    let r = await c.request('{"TYPE":"PING"}');
    assert.equal(c.raw.toString('utf8'), '{"TYPE":"PONG"}\n');
    assert.ok(r.ms < FAST_MS, `PING took ${r.ms} ms`);

    // connected_admins() / has_connected_admin(): a flat LIST.
    r = await c.request('{"LIST_TYPE":"ADMINS","TYPE":"REQUEST_LIST"}');
    assert.deepEqual(r.answer, { TYPE: 'RESULT', LIST: [1, 7] });

    // send_message({AID, MESSAGE, TITLE}) with the configured TOKEN (Perl hash order, UTF-8 bytes).
    r = await c.request(Buffer.from('{"DATA":{"TEXT":"Абонент 42 оплатил счёт","TITLE":"Платёж получен","TYPE":"MESSAGE"},"ID":"1","TO":"ADMIN","TOKEN":"' + TOKEN + '","TYPE":"MESSAGE"}', 'utf8'));
    assert.deepEqual(r.answer, { TYPE: 'RESULT', RESULT: [1, 1, 1] });
    assert.ok(r.ms < FAST_MS, `MESSAGE took ${r.ms} ms`);
    for (const t of admin1) {
      const n = await t.next((f) => f?.TYPE === 'MESSAGE');
      assert.equal(n.TITLE, 'Платёж получен');
      assert.equal(n.TEXT, 'Абонент 42 оплатил счёт');
    }

    // The seed's own example: the notification object arrives wrapped in DATA.TEXT.
    r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"TOKEN":"' + TOKEN + '","DATA":{"TYPE":"MESSAGE","TITLE":null,"TEXT":{"TYPE":"MESSAGE","TITLE":"Test notification","TEXT":"Just<br/>some<br/>text"}}}');
    assert.deepEqual(r.answer, { TYPE: 'RESULT', RESULT: [1] });
    const seed = await admin7.next((f) => f?.TYPE === 'MESSAGE');
    assert.deepEqual({ TYPE: seed.TYPE, TITLE: seed.TITLE, TEXT: seed.TEXT }, { TYPE: 'MESSAGE', TITLE: 'Test notification', TEXT: 'Just<br/>some<br/>text' });

    // Without the TOKEN, a MESSAGE is refused (a token is configured).
    r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":7,"DATA":{"TEXT":"x"}}');
    assert.equal((r.answer as { TYPE: string }).TYPE, 'ERROR');

    // run_in_background(): accepted at once; the result reaches admin 1 later (test/commands-legacy.test.ts follows it).
    r = await c.request('{"TYPE":"COMMAND","AID":1,"PROGRAM":"/usr/bin/ping","PROGRAM_ARGS":["-c 3","-q","127.0.0.1"],"ARGS":{"timeout":5}}');
    assert.equal(r.answer, 1);

    // ID "*": every connected admin, answered 1.
    r = await c.request('{"TYPE":"MESSAGE","TO":"ADMIN","ID":"*","TOKEN":"' + TOKEN + '","DATA":{"TITLE":"Всем"}}');
    assert.equal(r.answer, 1);
    for (const t of [...admin1, admin7]) assert.equal((await t.next((f) => f?.TITLE === 'Всем')).TYPE, 'MESSAGE');
    r = await c.request('{"TYPE":"MESSAGE","TO":"USER","ID":"*","TOKEN":"' + TOKEN + '","DATA":{"TITLE":"nobody"}}');
    assert.equal(r.answer, 0, 'no user is online');

    // PROXY to the Internal plugin echoes.
    r = await c.request('{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":{"Привет":1}}}');
    assert.deepEqual(r.answer, { Привет: 1 });
    for (const t of [...admin1, admin7]) t.close();
  });

  it('frames a request split byte by byte across writes, Cyrillic included', async () => {
    const tab = await server.tab('user', 42);
    await tab.nextOfType('WELCOME');
    const c = await connect();
    await c.writeBytewise('{"TYPE":"PING"}');
    assert.deepEqual(await c.next(), { TYPE: 'PONG' });
    await c.writeBytewise('  {"TYPE":"MESSAGE","TO":"USER","ID":42,"TOKEN":"' + TOKEN + '","DATA":{"TITLE":"Здравствуйте, \\"абонент\\" {}"}}\n');
    assert.deepEqual(await c.next(), { TYPE: 'RESULT', RESULT: [1] });
    assert.equal((await tab.next((f) => typeof f?.TITLE === 'string' && f.TITLE.startsWith('Здравствуйте'))).TITLE, 'Здравствуйте, "абонент" {}');
    tab.close();
  });

  it('answers a request saved with a byte order mark once: the old client reads one answer per request', async () => {
    const c = await connect();
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    // `nc … < request.json` from an editor that writes a BOM; then the next request on the same connection.
    assert.deepEqual((await c.request(Buffer.concat([bom, Buffer.from('{"TYPE":"PING"}')]))).answer, { TYPE: 'PONG' });
    const list = (await c.request('{"TYPE":"REQUEST_LIST","LIST_TYPE":"ADMINS"}')).answer as { TYPE: string };
    assert.equal(list.TYPE, 'RESULT', JSON.stringify(list));
    assert.equal(c.raw.toString().split('\n').length - 1, 2, `two requests, two answers: ${c.raw.toString()}`);
  });

  it('answers several requests in one write, in order; SILENT gets nothing', async () => {
    const c = await connect();
    await c.write('{"TYPE":"PING"}{"TYPE":"REQUEST_LIST","LIST_TYPE":"USERS"} {"TYPE":"WHAT"}\n{TYPE:PING}{"TYPE":"PING","SILENT":1}{"NO":"TYPE"}{"TYPE":"MESSAGE","TO":"ADMIN","ID":99,"TOKEN":"' + TOKEN + '","DATA":"hi"}{"TYPE":"PING"}');
    const got: unknown[] = [];
    for (let i = 0; i < 7; i++) got.push(await c.next());
    // Tabs of earlier tests may still be closing: only the shape of the list is fixed here.
    assert.ok(Array.isArray((got[1] as { LIST: unknown }).LIST));
    got[1] = { TYPE: 'RESULT', LIST: 'a list' };
    assert.deepEqual(got, [
      { TYPE: 'PONG' },
      { TYPE: 'RESULT', LIST: 'a list' },
      { TYPE: 'ERROR', ERROR: 'UNKNOWN MESSAGE TYPE' },
      { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' },
      { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' },
      0,
      { TYPE: 'PONG' },
    ]);
    assert.equal(c.raw.toString().split('\n').length - 1, 7, 'exactly seven answers: the SILENT PING had none');
  });

  it('keeps order and bounds its buffers when a client pipelines many requests', async () => {
    const c = await connect();
    const n = 500;
    let batch = '';
    for (let i = 0; i < n; i++) batch += `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${i}}}`;
    await c.write(batch);
    for (let i = 0; i < n; i++) assert.equal(await c.next(), i);
  });

  it('answers binary junk with INCORRECT REQUEST and resynchronises', async () => {
    const c = await connect();
    await c.write(Buffer.from([0x00, 0xff, 0xfe, 0x13, 0x37, 0x80, 0x81, 0x7d, 0x0a, 0x01]));
    await c.write('{"TYPE":"PING"}');
    assert.deepEqual(await c.next(), { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' });
    assert.deepEqual(await c.next(), { TYPE: 'PONG' });
  });

  it('answers hostile values with an error and goes on serving: a TOKEN that cannot be a string, nesting past the stack', async () => {
    const c = await connect();
    const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
    // Each of these once ended the whole process with an unhandled rejection.
    const hostile = [
      '{"TYPE":"PING","TOKEN":{"toString":0}}',
      `{"TYPE":"MESSAGE","ID":1,"DATA":"x","TO":${deep(100_000)}}`,
      `{"TYPE":"PROXY","PROXY_TO":"Internal","MESSAGE":{"ECHO":${deep(100_000)}}}`,
      `{"TYPE":"MESSAGE","TO":"ADMIN","ID":1,"TOKEN":"${TOKEN}","DATA":{"TYPE":"MESSAGE","TEXT":${deep(100_000)}}}`,
    ];
    const answers = [];
    for (const h of hostile) answers.push((await c.request(h)).answer as { TYPE: string; ERROR: string; CODE?: string });
    // An object TOKEN equals no configured token (the old daemon compared its Perl name, HASH(0x…)).
    assert.deepEqual(answers[0], { TYPE: 'ERROR', ERROR: 'INCORRECT TOKEN: this request must carry the configured legacy token as TOKEN', CODE: 'HERALD_ERR_UNAUTHORIZED' });
    for (const a of answers.slice(1)) {
      assert.deepEqual(a, { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST: nested deeper than 64 levels', CODE: 'HERALD_ERR_BAD_REQUEST' });
    }
    // Nesting up to the bound is still a request like any other.
    let echo: unknown = 1;
    for (let i = 0; i < 62; i++) echo = [echo];
    assert.deepEqual((await c.request(JSON.stringify({ TYPE: 'PROXY', PROXY_TO: 'Internal', MESSAGE: { ECHO: echo } }))).answer, echo);
    assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
    const other = await connect();
    assert.deepEqual((await other.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
  });

  it('answers a request the peer half-closes after', async () => {
    const c = await connect();
    await c.write('{"TYPE":"PING"}');
    c.end();
    assert.deepEqual(await c.next(), { TYPE: 'PONG' });
    await within(c.closed, 2000, 'the server to end the connection');
  });

  for (const how of ['closes', 'resets'] as const) {
    it(`carries out every request it read when the peer ${how} the connection without reading the answers`, async () => {
      // The old daemon handled each read whole. A client that writes several MESSAGEs and goes
      // away makes our first answer meet a closed socket (a reset): the rest were once dropped.
      const aid = how === 'closes' ? 31 : 32;
      const tab = await server.tab('admin', aid);
      await tab.nextOfType('WELCOME');
      const c = await connect();
      const n = 20;
      let batch = '';
      for (let i = 0; i < n; i++) batch += `{"TYPE":"MESSAGE","TO":"ADMIN","ID":${aid},"TOKEN":"${TOKEN}","DATA":{"TEXT":"gone ${i}"}}\n`;
      c.socket.write(batch, () => (how === 'closes' ? c.destroy() : c.socket.resetAndDestroy()));
      await within(c.closed, 2000, 'the client to close');
      await tab.next((f) => f?.TEXT === `gone ${n - 1}`);
      const texts = tab.frames.filter((f) => typeof f?.TEXT === 'string' && f.TEXT.startsWith('gone ')).map((f) => f.TEXT);
      assert.deepEqual(texts, Array.from({ length: n }, (_, i) => `gone ${i}`));
      tab.close();
    });
  }
});

describe('legacy TCP protocol, limits', () => {
  it('a never-ending JSON value hits the cap: error answer, connection closed, server fine', async () => {
    const server = await startHerald({ legacyMaxRequestBytes: 4096 });
    try {
      const port = server.herald.urls.legacy!.port;
      const c = await RawLegacyClient.connect(port);
      await c.write('{"TYPE":"PING"}{"TYPE":"MESSAGE","DATA":"');
      const filler = 'x'.repeat(1000);
      // Keep writing until the server answers and closes; it must not wait for the value to end.
      let writes = 0;
      while (c.answers.length < 2 && !c.socket.destroyed && writes < 100) {
        await c.write(filler).catch(() => undefined);
        writes++;
        await new Promise((r) => setImmediate(r));
      }
      assert.deepEqual(await c.next(), { TYPE: 'PONG' });
      const err = (await c.next()) as Record<string, unknown>;
      assert.equal(err.TYPE, 'ERROR');
      assert.equal(err.CODE, 'HERALD_ERR_TOO_LARGE');
      assert.ok(writes <= 6, `closed after ${writes} KB`);
      await within(c.closed, 3000, 'the server to close the connection');
      const d = await RawLegacyClient.connect(port);
      assert.deepEqual((await d.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      d.destroy();
    } finally {
      await server.close();
    }
  });

  it('closes a connection whose request stalls half-way, and one over the connection limit', async () => {
    const core = await createCore();
    const options = loadOptions({ env: {}, overrides: { legacyRequestTimeoutMs: 200, legacyMaxConnections: 2 } });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options, logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const a = await RawLegacyClient.connect(port);
      await a.write('{"TYPE":"PING"}{"TYPE":');
      assert.deepEqual(await a.next(), { TYPE: 'PONG' });
      const err = (await a.next(3000)) as Record<string, unknown>;
      assert.deepEqual(err, {
        TYPE: 'ERROR',
        ERROR: 'request incomplete for too long (legacyRequestTimeoutMs); closing',
        CODE: 'HERALD_ERR_REQUEST_TIMEOUT',
      }, 'the old error shape; the code is the one the HTTP API gives a request that did not arrive in time');
      await within(a.closed, 3000, 'the stalled connection to close');

      // Not idle-limited by default (the old client keeps its connection for life).
      const b = await RawLegacyClient.connect(port);
      const c = await RawLegacyClient.connect(port);
      assert.deepEqual((await b.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      const d = await RawLegacyClient.connect(port);
      await within(d.closed, 3000, 'the connection over the limit to be closed');
      assert.equal(d.answers.length, 0);
      b.destroy();
      c.destroy();
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('a connection whose peer left counts against legacyMaxConnections until it has carried out what it read', async () => {
    const core = await createCore();
    let started: (() => void) | undefined;
    const hung = new Promise<void>((resolve) => {
      started = resolve;
    });
    // A command service stuck forever stands in for any hung dependency (store, broker).
    const stuck = {
      start: () => {
        started?.();
        return new Promise<never>(() => {});
      },
    } as unknown as CommandService;
    const options = loadOptions({ env: {}, overrides: { legacyMaxConnections: 1 } });
    // The MESSAGE after the hung COMMAND waits for it (so that sends keep their order), for lateWaitMs at most.
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, commands: stuck, options, logger: pino({ level: 'silent' }), lateWaitMs: 500 });
    const { port } = await legacy.listen();
    try {
      const [tab] = core.open('admin', 5);
      const a = await RawLegacyClient.connect(port);
      await a.write('{"TYPE":"COMMAND","AID":5,"PROGRAM":"ping"}{"TYPE":"MESSAGE","ID":5,"DATA":{"TEXT":"after the command"}}');
      await within(hung, 2000, 'the command to start');
      // A reset closes the server's socket at once (a FIN would leave it half open until answered).
      a.socket.resetAndDestroy();
      await until(() => legacy.connections === 1 && a.socket.destroyed, 2000, 'the reset to arrive');
      // Its socket is gone, its work is not: a new connection is refused.
      const b = await RawLegacyClient.connect(port);
      await within(b.closed, 1000, 'the connection over the limit to be closed');
      assert.equal(b.answers.length, 0);
      // The hung request still meets its deadline with no socket to answer on; the next is carried out once
      // the hung one has been waited for lateWaitMs, and only then is the connection's work done.
      await until(() => legacy.connections === 0, LEGACY_ANSWER_DEADLINE_MS + 500 + 2000, 'the connection to finish its work');
      assert.deepEqual(tab!.received.map((f) => (f as { TEXT?: string }).TEXT), ['after the command']);
      const c = await RawLegacyClient.connect(port);
      assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      c.destroy();
    } finally {
      await within(legacy.close(), 3000, 'close()');
      await core.close();
    }
  });

  it('does not count time it spent not reading against legacyRequestTimeoutMs', async () => {
    const core = await createCore();
    let first: (() => void) | undefined;
    const started = new Promise<void>((resolve) => {
      first = resolve;
    });
    // Each command takes 10 ms to be accepted: 70 of them keep the queue full (reading paused) for 700 ms.
    const slow = {
      start: () => {
        first?.();
        return new Promise((resolve) => setTimeout(resolve, 10));
      },
    } as unknown as CommandService;
    const options = loadOptions({ env: {}, overrides: { legacyRequestTimeoutMs: 200 } });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, commands: slow, options, logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const c = await RawLegacyClient.connect(port);
      const n = 70;
      await c.write('{"TYPE":"COMMAND","AID":1,"PROGRAM":"ping"}'.repeat(n) + '{"TYPE":"PI');
      await within(started, 2000, 'the first command');
      // The server read all that and stopped reading (its queue is full): the rest waits in the socket, in time.
      await c.write('NG"}');
      for (let i = 0; i < n; i++) assert.equal(await c.next(3000), 1);
      assert.deepEqual(await c.next(3000), { TYPE: 'PONG' }, 'not "request incomplete for too long"');
      assert.equal(c.socket.destroyed, false);
      c.destroy();
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('with legacyIdleTimeoutMs set, a silent connection is ended', async () => {
    const core = await createCore();
    const options = loadOptions({ env: {}, overrides: { legacyIdleTimeoutMs: 150 } });
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options, logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const c = await RawLegacyClient.connect(port);
      assert.deepEqual((await c.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      await within(c.ended, 3000, 'the idle connection to be ended');
      c.destroy();
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('a peer that floods requests and never reads its answers does not hold up anyone else', async () => {
    const core = await createCore();
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const flood = await RawLegacyClient.connect(port);
      flood.socket.pause();
      const ping = Buffer.from('{"TYPE":"PING"}'.repeat(4096));
      for (let i = 0; i < 64; i++) flood.socket.write(ping); // ~4 MB, unread answers pile up on its side
      const other = await RawLegacyClient.connect(port);
      const r = await other.request('{"TYPE":"PING"}');
      assert.deepEqual(r.answer, { TYPE: 'PONG' });
      assert.ok(r.ms < FAST_MS, `PING took ${r.ms} ms while another peer flooded`);
      flood.destroy();
      other.destroy();
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('answers within the old client\'s 2 s even when a dependency hangs, and moves on', async () => {
    const core = await createCore();
    // A command service stuck forever stands in for any hung dependency (store, broker).
    const stuck = { start: () => new Promise<never>(() => {}) } as unknown as CommandService;
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, commands: stuck, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    try {
      const c = await RawLegacyClient.connect(port);
      const t0 = performance.now();
      await c.write('{"TYPE":"COMMAND","AID":1,"PROGRAM":"ping"}{"TYPE":"PING"}');
      const late = (await c.next(2000)) as Record<string, unknown>;
      const ms = performance.now() - t0;
      assert.deepEqual(late, { TYPE: 'ERROR', ERROR: LATE_ANSWER, CODE: 'HERALD_ERR_UNAVAILABLE' });
      assert.match(LATE_ANSWER, /may still be carried out/, 'not cancelled: the answer must not invite a blind retry');
      assert.ok(ms >= LEGACY_ANSWER_DEADLINE_MS - 50 && ms < 1900, `answered after ${ms} ms`);
      assert.deepEqual(await c.next(), { TYPE: 'PONG' });
      c.destroy();
    } finally {
      await legacy.close();
      await core.close();
    }
  });

  it('close() answers what it holds, ends idle connections and resolves promptly', async () => {
    const core = await createCore();
    const legacy = new LegacyServer({ host: '127.0.0.1', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) });
    const { port } = await legacy.listen();
    const idle = await RawLegacyClient.connect(port);
    const busy = await RawLegacyClient.connect(port);
    assert.deepEqual((await busy.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
    assert.equal(legacy.connections, 2);
    const t0 = performance.now();
    await within(legacy.close(), 3000, 'close()');
    await within(idle.ended, 1000, 'the idle connection to be ended');
    assert.ok(performance.now() - t0 < 2500);
    idle.destroy();
    busy.destroy();
    await core.close();
  });

  it('refuses to listen off loopback without a token; turns off with legacyEnabled false', async () => {
    const core = await createCore();
    assert.throws(
      () => new LegacyServer({ host: '0.0.0.0', port: 0, notifier: core.notifier, options: loadOptions({ env: {} }), logger: pino({ level: 'silent' }) }),
      /legacyToken/,
    );
    await core.close();
    const server = await startHerald({ legacyEnabled: false });
    try {
      assert.equal(server.herald.legacy, undefined);
      assert.equal(server.herald.urls.legacy, undefined);
    } finally {
      await server.close();
    }
  });
});
