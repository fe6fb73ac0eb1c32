/**
 * PROTOCOL.md §1: the fields the old panel put in a notification — MODULE,
 * SENDER, EXTRA, ICON, TIMEOUT, ID, GROUP_ID, NOTICED_URL, MSGS_ID — MUST
 * reach the tab untouched, and so does a field Herald has never heard of.
 * The legacy door rewrites DATA on its way (adds TYPE, unwraps the seed's
 * wrapper, drops the client's SILENT flag), so a field could be lost on any
 * of those paths without a test that names only TITLE and TEXT noticing.
 * Each path is checked whole: the frame a real `ws` tab gets is deepEqual
 * to what the panel sent, plus exactly what Herald adds by docs/delivery.md's
 * rule: SEQ and EPOCH of the person's stream, and STREAM "*" (with the
 * broadcast stream's SEQ and EPOCH) on a broadcast.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawLegacyClient } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';
import type { TestTab } from './helpers/ws-client.js';

const TOKEN = 'perl-side-token-0123456789';

type Notification = Record<string, unknown>;
/** Where a stream stands: its last SEQ and its EPOCH. */
type Cursor = { SEQ: number; EPOCH: string };

/** Every pass-through field, with numbers where the panel sends numbers, and fields of every JSON type Herald does not know. */
const WITH_NUMBERS: Notification = {
  TYPE: 'MESSAGE',
  TITLE: 'Новое сообщение — нове повідомлення',
  TEXT: 'Just<br/>some<br/>text &amp; <b>more</b>',
  MODULE: 'Msgs',
  SENDER: { UID: 5, LOGIN: 'ivan' },
  EXTRA: '/admin/index.cgi?get_index=msgs_admin&full=1&chg=77&UID=5#reply',
  ICON: 'fa fa-envelope text-danger',
  TIMEOUT: 0,
  ID: 9001,
  GROUP_ID: 3,
  NOTICED_URL: '/admin/index.cgi?qindex=142&header=2&AJAX=1&MSGS_ID=77&NOTICED=1',
  MSGS_ID: 77,
  X_PANEL_FIELD: { list: [1, -2.5, 'три', null, true, false], empty: {}, none: [], blank: '' },
  X_NULL: null,
  X_FLAG: false,
};

/** The same fields as the text a Perl backend's JSON often holds, numbers included. */
const WITH_STRINGS: Notification = {
  TYPE: 'MESSAGE',
  TITLE: 'Заявка №78',
  TEXT: 'Абонент пишет: "интернет не работает" <script>x</script>',
  MODULE: 'Msgs',
  SENDER: { UID: '42', LOGIN: 'Олена' },
  EXTRA: 'https://panel.example.net/admin/?index=7&UID=42',
  ICON: 'fa fa-bell',
  TIMEOUT: '15000',
  ID: 'msg-78',
  GROUP_ID: '12',
  NOTICED_URL: 'https://panel.example.net/admin/?qindex=142&MSGS_ID=78&NOTICED=1',
  MSGS_ID: '78',
  X_UNKNOWN: 'kept as it is',
};

/** JSON with every object's keys sorted, as the old Perl client's encoder (JSON canonical) writes it. */
function perlJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(perlJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${perlJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** `send_message`'s request: the configured TOKEN with it, the recipient's id as text. */
function legacyMessage(to: 'ADMIN' | 'USER', id: number | '*', data: unknown): Buffer {
  return Buffer.from(perlJson({ TYPE: 'MESSAGE', TO: to, ID: String(id), TOKEN, DATA: data }), 'utf8');
}

function without(o: Notification, key: string): Notification {
  const { [key]: _dropped, ...rest } = o;
  return rest;
}

describe('pass-through fields reach the tab untouched', () => {
  let server: TestServer;
  let legacy: RawLegacyClient;
  let nextId = 100;
  /** A fresh person with one tab, and where that person's streams stand. */
  const person = async (kind: 'admin' | 'user'): Promise<{ id: number; tab: TestTab; own: Cursor; broadcast: Cursor }> => {
    const id = nextId++;
    const tab = await server.tab(kind, id);
    const welcome = await tab.nextOfType('WELCOME');
    return { id, tab, own: { SEQ: welcome.SEQ, EPOCH: welcome.EPOCH }, broadcast: { SEQ: welcome.BROADCAST.SEQ, EPOCH: welcome.BROADCAST.EPOCH } };
  };
  /** The tab's next notification is exactly `sent` plus `added`, the delivery fields of the stream it came on. */
  const receivesExactly = async (tab: TestTab, sent: Notification, added: Notification) => {
    assert.deepEqual(await tab.nextOfType('MESSAGE'), { ...sent, ...added });
  };
  /** The first notification of a stream: its SEQ follows the head WELCOME gave, under the same EPOCH. */
  const first = (cursor: Cursor): Cursor => ({ SEQ: cursor.SEQ + 1, EPOCH: cursor.EPOCH });

  before(async () => {
    server = await startHerald({ legacyToken: TOKEN });
    legacy = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
  });
  after(async () => {
    legacy?.destroy();
    await server?.close();
  });

  // The legacy TCP door, with the old Perl client's bytes.

  test('legacy: a DATA object with every field as numbers, its ID not the request\'s ID', async () => {
    const { id, tab, own } = await person('admin');
    assert.notEqual(WITH_NUMBERS.ID, id);
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, WITH_NUMBERS))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_NUMBERS, first(own));
    tab.close();
  });

  test('legacy: a DATA object with every field as text, to a user', async () => {
    const { id, tab, own } = await person('user');
    assert.deepEqual((await legacy.request(legacyMessage('USER', id, WITH_STRINGS))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_STRINGS, first(own));
    tab.close();
  });

  test('legacy: a DATA without TYPE gets TYPE MESSAGE and loses nothing else', async () => {
    const { id, tab, own } = await person('admin');
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, without(WITH_NUMBERS, 'TYPE')))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_NUMBERS, first(own));
    tab.close();
  });

  test('legacy: a DATA that is the notification JSON-encoded into a string (Abills::Sender::Browser)', async () => {
    const { id, tab, own } = await person('admin');
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, perlJson(WITH_STRINGS)))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_STRINGS, first(own));
    tab.close();
  });

  test('legacy: a DATA with the client\'s SILENT flag gets no answer, and the tab gets every field but SILENT', async () => {
    const { id, tab, own } = await person('admin');
    await legacy.write(legacyMessage('ADMIN', id, { ...WITH_NUMBERS, SILENT: 1 }));
    await receivesExactly(tab, WITH_NUMBERS, first(own));
    // The next answer on the connection is the PING's: the MESSAGE got none.
    assert.deepEqual((await legacy.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
    tab.close();
  });

  test('legacy: the seed\'s wrapper delivers every field of the inner notification in DATA.TEXT, and nothing of the wrapper', async () => {
    const { id, tab, own } = await person('admin');
    const data = { TYPE: 'MESSAGE', TITLE: null, TEXT: WITH_NUMBERS };
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, data))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_NUMBERS, first(own));
    tab.close();
  });

  test('legacy: the seed\'s wrapper with the inner notification JSON-encoded into DATA.TEXT', async () => {
    const { id, tab, own } = await person('admin');
    const data = { TYPE: 'MESSAGE', TITLE: null, TEXT: perlJson(WITH_STRINGS) };
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, data))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_STRINGS, first(own));
    tab.close();
  });

  test('legacy: the seed\'s wrapper with a DATA.ID unlike the request\'s ID and the inner ID delivers the inner notification\'s ID', async () => {
    const { id, tab, own } = await person('admin');
    const data = { TYPE: 'MESSAGE', TITLE: null, ID: 555, TEXT: WITH_NUMBERS };
    assert.equal(new Set([id, data.ID, WITH_NUMBERS.ID]).size, 3);
    assert.deepEqual((await legacy.request(legacyMessage('ADMIN', id, data))).answer, { TYPE: 'RESULT', RESULT: [1] });
    await receivesExactly(tab, WITH_NUMBERS, first(own));
    tab.close();
  });

  // The HTTP API, POST /api/v1/send.

  for (const [what, sent] of [['numbers', WITH_NUMBERS], ['text', WITH_STRINGS]] as const) {
    test(`HTTP API: a message with every field as ${what}`, async () => {
      const { id, tab, own } = await person('admin');
      const r = await server.api('POST', '/api/v1/send', { to: { aid: id }, message: sent });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.delivered, 1);
      await receivesExactly(tab, sent, first(own));
      tab.close();
    });
  }

  // Broadcasts last, one per kind: a broadcast no tab acknowledged is replayed to every tab of
  // its kind that opens later (docs/delivery.md), and would arrive first at a later test's tab.

  test('legacy: a broadcast ("ID":"*") carries every field, plus STREAM "*" and the broadcast stream\'s SEQ and EPOCH', async () => {
    const { tab, broadcast } = await person('admin');
    assert.equal((await legacy.request(legacyMessage('ADMIN', '*', WITH_NUMBERS))).answer, 1);
    await receivesExactly(tab, WITH_NUMBERS, { STREAM: '*', ...first(broadcast) });
    tab.close();
  });

  test('HTTP API: a broadcast carries every field, plus STREAM "*" and the broadcast stream\'s SEQ and EPOCH', async () => {
    const { tab, broadcast } = await person('user');
    const r = await server.api('POST', '/api/v1/send', { to: { all: 'users' }, message: WITH_STRINGS });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await receivesExactly(tab, WITH_STRINGS, { STREAM: '*', ...first(broadcast) });
    tab.close();
  });
});
