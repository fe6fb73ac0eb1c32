/**
 * The SDK's HTTP transport against a real Herald: the deadline of a request
 * is a timer that ends with the answer (nothing of it outlives the call), any
 * positive `timeoutMs` the constructor accepts works, and one that a timer
 * cannot hold is refused when the sender is built, naming the option; so is
 * a `url` carrying a password, without repeating it.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BrowserSender, HeraldSdkError } from '../src/sdk/index.js';
import { startHerald, type TestServer } from './helpers/server.js';

/**
 * How many timers of `timeoutMs` (an odd value, so only the transport's own
 * deadline has it) that `work` started are still pending once it is done.
 */
async function timersLeftBy(timeoutMs: number, work: () => Promise<void>): Promise<number> {
  const live = new Set<number>();
  const hook = createHook({
    init(asyncId, type, _trigger, resource) {
      if (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === timeoutMs) live.add(asyncId);
    },
    destroy(asyncId) {
      live.delete(asyncId);
    },
  });
  hook.enable();
  try {
    await work();
    // destroy hooks run from the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    hook.disable();
  }
  return live.size;
}

describe('HttpTransport: deadlines and the url', () => {
  let s: TestServer;
  before(async () => {
    s = await startHerald({ heartbeatMs: 60000 });
  });
  after(() => s.close());

  test('the deadline\'s timer is gone once the answer is in, not kept for the whole timeoutMs', async () => {
    // An odd deadline, so that only the transport's own timer has it.
    const timeoutMs = 54_321;
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs });
    const live = await timersLeftBy(timeoutMs, async () => {
      for (let i = 0; i < 5; i++) assert.equal((await sender.ping())?.ok, true);
    });
    assert.equal(live, 0, `${live} deadline timers of ${timeoutMs} ms still pending after the answers`);
  });

  test('a fractional timeoutMs (0.1 * 3 * 1000) works; one past what a timer holds is a TypeError at construction', async () => {
    const fractional = new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs: 0.1 * 3 * 1000 });
    assert.equal((await fractional.ping())?.ok, true);
    // Node would cut a longer timer to 1 ms (TimeoutOverflowWarning): every request would time out at once.
    assert.throws(() => new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs: 3e9 }), (e: Error) => e instanceof TypeError && /option "timeoutMs"/.test(e.message));
    assert.doesNotThrow(() => new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs: 2 ** 31 - 1 }));
  });

  test('a server that sends its headers and then stalls the body: HERALD_ERR_TIMEOUT after timeoutMs', async () => {
    const stalled = new Set<ServerResponse>();
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"ok":');
      stalled.add(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, apiToken: 'whatever-token-123', timeoutMs: 200 });
      await assert.rejects(sender.ping(), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_TIMEOUT' && e.status === 0 && /no answer within 200 ms/.test(e.message));
    } finally {
      for (const res of stalled) res.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('a url with user:password@ is a TypeError at construction that does not repeat the password', () => {
    const port = new URL(s.url).port;
    assert.throws(
      () => new BrowserSender({ url: `http://backend:S3cr3t-pass@127.0.0.1:${port}`, apiToken: s.apiToken }),
      (e: Error) => e instanceof TypeError && /option "url" must not carry a user name or password/.test(e.message) && !e.message.includes('S3cr3t-pass'),
    );
    assert.throws(() => new BrowserSender({ url: `http://backend@127.0.0.1:${port}`, apiToken: s.apiToken }), /option "url"/);
  });

  test('a url with a query or a fragment is a TypeError at construction (the API paths would land after it)', async () => {
    for (const tail of ['?x=1', '#top', '/herald?x=1']) {
      assert.throws(() => new BrowserSender({ url: `${s.url}${tail}`, apiToken: s.apiToken }), (e: Error) => e instanceof TypeError && /option "url" must not carry a query or fragment/.test(e.message));
    }
    // A path prefix (Herald behind a reverse proxy) is still fine.
    assert.ok(new BrowserSender({ url: `${s.url}/herald/`, apiToken: s.apiToken }));
  });

  test('a browser token lives at most 31 days, signed locally as through the API', async () => {
    const viaApi = new BrowserSender({ url: s.url, apiToken: s.apiToken });
    const local = new BrowserSender({ url: s.url, apiToken: s.apiToken, secret: 'x'.repeat(40) });
    for (const sender of [viaApi, local]) {
      await assert.rejects(sender.createConnectToken({ aid: 1, ttl: 31 * 86400 + 1 }), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_ARGUMENT' && /up to 2678400/.test(e.message));
      const t = await sender.createConnectToken({ aid: 1, ttl: 31 * 86400 });
      assert.ok(t && t.token.split('.').length === 3);
    }
  });

  test('a 200 that is not Herald\'s answer (an empty body, [], {}, another service) is HERALD_ERR_BAD_RESPONSE, not a TypeError or a quiet 0', async () => {
    // The last: a command's state without its output (the CLI's `run --wait` wrote the output out and failed with a TypeError).
    const bodies = ['', '[]', '{}', 'null', '{"status":"ok"}', '{"state":"running"}'];
    let next = 0;
    const impostor = createServer((req, res) => {
      req.resume();
      const body = bodies[next++ % bodies.length]!;
      res.writeHead(200, body === '' ? {} : { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(impostor.address() as AddressInfo).port}`, apiToken: s.apiToken });
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['connectedTabs', () => sender.connectedTabs({ aid: 1 })],
        ['connectedAdmins', () => sender.connectedAdmins()],
        ['disconnect', () => sender.disconnect({ aid: 1 })],
        ['runInBackground', () => sender.runInBackground('ping', { aid: 1, args: ['-c', '1', '127.0.0.1'] })],
        ['listCommands', () => sender.listCommands()],
        ['commandStatus', () => sender.commandStatus('c1')],
        ['createConnectToken', () => sender.createConnectToken({ aid: 1 })],
        ['ping', () => sender.ping()],
      ];
      for (const [name, call] of calls) {
        for (let i = 0; i < bodies.length; i++) {
          const given = bodies[next % bodies.length];
          // Every method reads some field: none of these bodies has it (ping its `ok` and `version`).
          await assert.rejects(call(), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_RESPONSE' && e.status === 200 && /not Herald's answer/.test(e.message), `${name} given ${JSON.stringify(given)}`);
        }
      }
    } finally {
      impostor.close();
    }
  });

  test('a proxy\'s answer that is not Herald\'s (HTML, other JSON) still has its Retry-After waited for and told', async () => {
    // A gateway in maintenance: 503 with an HTML page, then Herald's answer. Before, only Herald's
    // own error bodies carried the wait, and a GET was sent again within the jitter (about 50 ms).
    const bodies: Array<[number, Record<string, string>, string]> = [];
    const times: number[] = [];
    const proxy = createServer((req, res) => {
      req.resume();
      times.push(performance.now());
      const [status, headers, body] = bodies.shift() ?? [200, { 'content-type': 'application/json' }, JSON.stringify({ ids: [1] })];
      res.writeHead(status, headers).end(body);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, apiToken: 'whatever-token-123', retryForMs: 20_000 });
      bodies.push([503, { 'content-type': 'text/html', 'retry-after': '1' }, '<html>maintenance</html>']);
      assert.deepEqual(await sender.connectedAdmins(), [1]);
      assert.equal(times.length, 2);
      assert.ok(times[1]! - times[0]! >= 990, `sent again after ${Math.round(times[1]! - times[0]!)} ms, Retry-After asked 1000`);
      for (const [type, body] of [['text/html', '<html>slow down</html>'], ['application/json', '{"message":"rate limited"}']] as const) {
        bodies.push([429, { 'content-type': type, 'retry-after': '7' }, body]);
        await assert.rejects(sender.connectedAdmins(), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_RESPONSE' && e.status === 429 && e.retryAfterMs === 7000, type);
      }
    } finally {
      proxy.close();
    }
  });

  test('503 HERALD_ERR_SHUTTING_DOWN is sent again only with Retry-After, the mark of Herald\'s door refusing it before any route ran', async () => {
    // What a stopping Herald answers: the door's refusal (with Retry-After), then, for the
    // second sender, a route's own SHUTTING_DOWN (no Retry-After: the route ran and audited it).
    let asked = 0;
    let withHeader = true;
    const stopping = createServer((req, res) => {
      req.resume();
      asked++;
      const body = JSON.stringify({ error: { code: 'HERALD_ERR_SHUTTING_DOWN', message: 'Herald is shutting down' } });
      if (withHeader && asked === 1) res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(body);
      else if (withHeader) res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'c1', aid: 1, program: 'ping', args: [], state: 'queued', door: 'http' }));
      else res.writeHead(503, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => stopping.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(stopping.address() as AddressInfo).port}`;
      const sender = new BrowserSender({ url, apiToken: 'whatever-token-123', retryForMs: 20_000 });
      const started = await sender.runInBackground('ping', { aid: 1, args: ['-c', '1', '127.0.0.1'] });
      assert.equal(started, 'c1');
      assert.equal(asked, 2, 'the door\'s refusal was sent again once');
      asked = 0;
      withHeader = false;
      await assert.rejects(
        sender.runInBackground('ping', { aid: 1, args: ['-c', '1', '127.0.0.1'] }),
        (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_SHUTTING_DOWN' && e.status === 503 && e.retryAfterMs === undefined,
      );
      assert.equal(asked, 1, 'a route\'s SHUTTING_DOWN (no Retry-After) is not sent again');
    } finally {
      stopping.close();
    }
  });

  test('a redirect (a proxy sending http to https) is HERALD_ERR_BAD_RESPONSE naming where, not followed as a GET without the API token', async () => {
    const tab = await s.tab('admin', 91);
    await tab.nextOfType('WELCOME');
    let asked = 0;
    const redirecting = createServer((req, res) => {
      asked++;
      res.writeHead(301, { location: `${s.url}${req.url ?? '/'}`, 'content-type': 'text/html' });
      res.end('<html><body>301 Moved Permanently</body></html>');
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      const sender = new BrowserSender({ url: `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`, apiToken: s.apiToken });
      await assert.rejects(sender.sendMessage({ aid: 91, message: { TYPE: 'MESSAGE', TEXT: 'through a redirect' } }), (e: unknown) => {
        assert.ok(e instanceof HeraldSdkError, String(e));
        assert.equal(e.code, 'HERALD_ERR_BAD_RESPONSE', e.message);
        assert.equal(e.status, 301);
        assert.ok(e.message.includes(`redirected to ${s.url}/api/v1/send`), e.message);
        return true;
      });
      assert.equal(asked, 1);
      // Herald itself was never asked: the tab got nothing, and the next send reaches it first.
      await new BrowserSender({ url: s.url, apiToken: s.apiToken }).sendMessage({ aid: 91, message: { TYPE: 'MESSAGE', TEXT: 'direct' } });
      assert.equal((await tab.nextOfType('MESSAGE')).TEXT, 'direct');
    } finally {
      tab.close();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
  });

  test('a message JSON cannot carry (a BigInt, a cycle) is HERALD_ERR_BAD_ARGUMENT, with no request and no deadline timer left', async () => {
    const timeoutMs = 43_210;
    const sender = new BrowserSender({ url: s.url, apiToken: s.apiToken, timeoutMs });
    const cyclic: Record<string, unknown> = { TYPE: 'MESSAGE' };
    cyclic.SELF = cyclic;
    const live = await timersLeftBy(timeoutMs, async () => {
      for (const message of [{ TYPE: 'MESSAGE', AMOUNT: 10n }, cyclic]) {
        await assert.rejects(sender.sendMessage({ aid: 1, message }), (e: unknown) => e instanceof HeraldSdkError && e.code === 'HERALD_ERR_BAD_ARGUMENT' && e.status === 0 && /cannot be sent as JSON/.test(e.message));
      }
    });
    assert.equal(live, 0, `${live} deadline timers left behind`);
  });
});
