/**
 * The seed's Perl clients, run for real against the legacy door.
 *
 * Text: Abills::Sender::Browser's send_message({AID, MESSAGE => {...}})
 * JSON-encodes the hash with `JSON->new->utf8` (UTF-8 bytes in a Perl
 * string) and then encodes the whole request with utf8 again, so the DATA
 * string Herald reads holds the notification's JSON as UTF-8 bytes taken
 * for Latin-1 characters; with Perl byte strings (no `use utf8`) the bytes
 * are encoded twice over. The old daemon wrote such a string to the browser
 * as bytes, so the panel showed Cyrillic right; Herald parsed it as it was,
 * and the tab got "ÐÐ¾Ð²Ð¾Ðµ".
 *
 * First bytes: a connection's first bytes starting with a capital letter
 * were refused as a browser's HTTP request, and closed for good. The client
 * generation whose new() takes $CONF only writes a hash MESSAGE unencoded,
 * which Perl turns into `HASH(0x55d…)`: that client lost its one connection.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { RawLegacyClient, within } from './helpers/legacy-client.js';
import { startHerald, type TestServer } from './helpers/server.js';

const TITLE = 'Новое сообщение';
const TEXT = 'Привет, мир';

/**
 * The seed's clients on core modules: the requests are built as
 * Abills::Sender::Browser (`JSON::PP->new->utf8`, for the hash MESSAGE and
 * again for the request) and Abills::Backend::API (`->utf8(0)`) build them,
 * and written to the legacy port with IO::Socket::INET; each answer is the
 * first read after the write, as the old clients read it.
 */
const SEED_CLIENT = String.raw`
use strict; use warnings;
use IO::Socket::INET; use JSON::PP; use Encode qw(encode);
my ($port, $title, $text) = @ARGV;
# Character strings (as from a utf8 DB handle or "use utf8"), and UTF-8 bytes (as from a lang file without "use utf8").
my %chars = (title => Encode::decode('UTF-8', $title), text => Encode::decode('UTF-8', $text));
my %bytes = (title => $title, text => $text);
my $browser_json = JSON::PP->new->utf8;
my $api_json = JSON::PP->new->utf8(0)->allow_nonref(1);
my $socket = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') or die "connect: $!";
sub request {
  my ($payload) = @_;
  defined syswrite($socket, $payload) or die "write: $!";
  my $answer = '';
  defined sysread($socket, $answer, 2048) or die "read: $!";
  print $answer;
}
# Abills::Sender::Browser::send_message({AID => 5, MESSAGE => $message})
sub send_message {
  my ($message) = @_;
  $message = $browser_json->encode($message) if ref $message eq 'HASH';
  request($browser_json->encode({ TYPE => 'MESSAGE', TO => 'ADMIN', ID => 5, DATA => $message }));
}
send_message({ TYPE => 'MESSAGE', TITLE => $chars{title}, TEXT => "A: $chars{text}" });
send_message({ TYPE => 'MESSAGE', TITLE => $bytes{title}, TEXT => "B: $bytes{text}" });
# Abills::Backend::API::call(5, {...})
request($api_json->encode({ TYPE => 'MESSAGE', TO => 'ADMIN', ID => 5, DATA => { TYPE => 'MESSAGE', TITLE => $bytes{title}, TEXT => "C: $bytes{text}" } }));
send_message($chars{title});
`;

/** Runs the seed's client against `port`; resolves with what it printed (the answers). */
async function runSeedClient(port: number): Promise<string> {
  const child = spawn('perl', ['-e', SEED_CLIENT, String(port), TITLE, TEXT], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
  const code = await within(new Promise<number | null>((resolve) => child.on('exit', resolve)), 10_000, 'the Perl client');
  assert.equal(code, 0, err);
  assert.equal(err, '', 'perl warned');
  return out;
}

describe('the seed\'s Perl client against the legacy door', () => {
  let server: TestServer;
  let port: number;

  before(async () => {
    server = await startHerald();
    port = server.herald.urls.legacy!.port;
  });

  after(async () => {
    await server?.close();
  });

  test('Cyrillic sent by send_message (character or byte strings) and Backend::API reaches the tab intact', async () => {
    const tab = await server.tab('admin', 5);
    await tab.nextOfType('WELCOME');
    const out = await runSeedClient(port);
    assert.equal(out, '{"TYPE":"RESULT","RESULT":[1]}\n'.repeat(4));
    const got = [];
    for (let i = 0; i < 4; i++) {
      const f = await tab.next((frame) => typeof frame === 'string' || frame?.TYPE === 'MESSAGE');
      got.push(typeof f === 'string' ? f : { TITLE: f.TITLE, TEXT: f.TEXT });
    }
    assert.deepEqual(got, [
      { TITLE, TEXT: `A: ${TEXT}` },
      { TITLE, TEXT: `B: ${TEXT}` },
      { TITLE, TEXT: `C: ${TEXT}` },
      TITLE,
    ]);
  });

  test('a DATA string that is text already is not decoded again', async () => {
    const tab = await server.tab('admin', 6);
    await tab.nextOfType('WELCOME');
    const legacy = await RawLegacyClient.connect(port);
    try {
      // é alone is not UTF-8 read as Latin-1; "Ã©" beside Cyrillic is text with characters past U+00FF.
      for (const title of ['Café', 'Ã© — Новое']) {
        const data = JSON.stringify({ TYPE: 'MESSAGE', TITLE: title, TEXT: 'x' });
        assert.deepEqual((await legacy.request(JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: 6, DATA: data }))).answer, { TYPE: 'RESULT', RESULT: [1] });
        assert.equal((await tab.nextOfType('MESSAGE')).TITLE, title);
      }
    } finally {
      legacy.destroy();
    }
  });

  test('first bytes that may still become a request line are read as requests once the peer ends', async () => {
    const legacy = await RawLegacyClient.connect(port);
    try {
      await legacy.write('PING');
      legacy.end();
      await within(legacy.closed, 5000, 'the server to close the connection');
    } finally {
      legacy.destroy();
    }
    assert.deepEqual(legacy.answers, [{ TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' }]);
  });

  for (const [how, write, aid] of [
    ['in one write', (c: RawLegacyClient, s: string) => c.write(s), 7],
    ['a byte at a time', (c: RawLegacyClient, s: string) => c.writeBytewise(s), 8],
  ] as const) {
    test(`a Perl hashref written first (${how}) gets INCORRECT REQUEST and the connection stays usable`, async () => {
      const legacy = await RawLegacyClient.connect(port);
      try {
        await write(legacy, 'HASH(0x55d5c0a1b2c3)');
        assert.deepEqual(await legacy.next(), { TYPE: 'ERROR', ERROR: 'INCORRECT REQUEST' });
        assert.deepEqual((await legacy.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
        assert.deepEqual((await legacy.request('{"TYPE":"PING"}')).answer, { TYPE: 'PONG' });
      } finally {
        legacy.destroy();
      }
    });

    test(`an HTTP request line (${how}) is still refused and closed, its body never carried out`, async () => {
      const tab = await server.tab('admin', aid);
      await tab.nextOfType('WELCOME');
      const body = JSON.stringify({ TYPE: 'MESSAGE', TO: 'ADMIN', ID: aid, DATA: { TYPE: 'MESSAGE', TITLE: 'forged', TEXT: 'x' } }) + '{"TYPE":"PING"}';
      const legacy = await RawLegacyClient.connect(port);
      try {
        // The server may end the connection before the last byte is written: that is the refusal.
        await write(legacy, `POST / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
          .catch((e: NodeJS.ErrnoException) => assert.equal(e.code, 'EPIPE'));
        await within(legacy.closed, 5000, 'the server to close the connection');
      } finally {
        legacy.destroy();
      }
      assert.equal(legacy.answers.length, 1, JSON.stringify(legacy.answers));
      const answer = legacy.answers[0] as { TYPE: string; ERROR: string; CODE: string };
      assert.equal(answer.TYPE, 'ERROR');
      assert.equal(answer.CODE, 'HERALD_ERR_BAD_REQUEST');
      assert.match(answer.ERROR, /not HTTP/);
      // A marker sent after: the forged MESSAGE, had it been carried out, would be before it.
      await server.api('POST', '/api/v1/send', { to: { aid }, message: { TYPE: 'MESSAGE', TITLE: 'marker', TEXT: '' } });
      await tab.next((f) => f?.TITLE === 'marker');
      assert.deepEqual(tab.notifications().filter((f) => f?.TITLE === 'forged'), []);
    });
  }
});

test('a request line that never ends is an incomplete request (legacyRequestTimeoutMs)', async () => {
  const server = await startHerald({ legacyRequestTimeoutMs: 200 });
  const legacy = await RawLegacyClient.connect(server.herald.urls.legacy!.port);
  try {
    await legacy.write('GET /');
    await within(legacy.closed, 5000, 'the server to close the connection');
    assert.deepEqual(legacy.answers, [{
      TYPE: 'ERROR', ERROR: 'request incomplete for too long (legacyRequestTimeoutMs); closing', CODE: 'HERALD_ERR_REQUEST_TIMEOUT',
    }]);
  } finally {
    legacy.destroy();
    await server.close();
  }
});
