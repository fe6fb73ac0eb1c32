/**
 * The http resolver under sustained overload: a real panel (node:http on
 * 127.0.0.1) that answers each look-up after 100 ms, a real Herald with
 * httpResolverConcurrency 2, and real `ws` handshakes of distinct sessions,
 * twice as many a second as the panel can answer. The gate (LookUpGate)
 * gives its turns oldest first, and each went to a look-up with only a few
 * ms of its deadline left, whose answer came too late and was thrown away:
 * after the first second nobody was admitted at all. Herald must go on
 * admitting about as many as the panel answers.
 */
// test-runner: own process: it counts admissions second by second, which another file's work in the same event loop (a synchronous SQLite write) would stall
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { LookUpGate } from '../src/server/auth/look-up-gate.js';
import { startAuthHerald } from './helpers/auth-herald.js';
import { assertGoodput, offerHandshakes } from './helpers/overload.js';

/** An answer of the panel takes 100 ms: 2 at once answer at most 20 a second. */
const ANSWER_MS = 100;
const CONCURRENCY = 2;
const CAPACITY_PER_S = (CONCURRENCY * 1000) / ANSWER_MS;
/** Twice what the panel can answer, for OFFER_S seconds. */
const OFFERED_PER_S = 2 * CAPACITY_PER_S;
const OFFER_S = 5;
/** The seconds judged: from the third on, when the queue of the first ones has long built up. */
const JUDGED_FROM_S = 2;
const TIMEOUT_MS = 1000;

describe('http resolver under sustained overload', () => {
  let panel: Server;
  let url: string;
  /** Answers that found their request given up: Herald asked too late to use them. */
  let wasted = 0;

  before(async () => {
    // Admits `panel_session=admin-N` as admin N, ANSWER_MS after the request.
    panel = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const id = Number(/admin-(\d+)/.exec(req.headers.cookie ?? '')?.[1]);
        setTimeout(() => {
          if (res.destroyed) return void wasted++;
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'admin', id }));
        }, ANSWER_MS);
      });
    });
    panel.listen(0, '127.0.0.1');
    await once(panel, 'listening');
    url = `http://127.0.0.1:${(panel.address() as AddressInfo).port}/herald/session`;
  });
  after(() => {
    panel.closeAllConnections();
    panel.close();
  });

  test(`${OFFERED_PER_S} handshakes a second at a panel that answers ${CAPACITY_PER_S}: the later seconds still admit, not 503 to everybody`, async () => {
    const h = await startAuthHerald({
      authResolver: 'http', httpResolverUrl: url, httpResolverConcurrency: CONCURRENCY, httpResolverTimeoutMs: TIMEOUT_MS,
      authCacheMs: 0, authNegativeCacheMs: 0, sessionRecheckMs: 0,
    });
    try {
      // Sessions admin-1, admin-2, ...: each one the panel knows.
      const offered = await offerHandshakes(h, OFFERED_PER_S, OFFER_S, (i) => `panel_session=admin-${i + 1}`);
      const { table } = offered;
      console.log(`# admitted/sent by the second they were sent in: ${table}; answers the panel wrote too late: ${wasted}`);
      assertGoodput(offered, JUDGED_FROM_S, CAPACITY_PER_S, 'the panel answers');
      // Those turned away are said to be so: they waited half the timeout for a turn.
      assert.match(h.log(), new RegExp(`session look-up failed: no turn at the panel within ${TIMEOUT_MS / 2} ms`));
    } finally {
      await h.close();
    }
  });
});

describe('LookUpGate: the longest wait for a turn', () => {
  test('a look-up that has waited maxWaitMs gives up, though its signal has not aborted, and the turn goes to the next', async () => {
    const gate = new LookUpGate(1, 10, 50);
    const never = new AbortController().signal;
    assert.equal(gate.enter(never), true);
    const first = gate.enter(never);
    assert.equal(await first, false);
    assert.equal(gate.waiting, 0);
    const next = gate.enter(never);
    gate.leave();
    assert.equal(await next, true);
    gate.leave();
    assert.deepEqual({ active: gate.active, waiting: gate.waiting }, { active: 0, waiting: 0 });
  });

  test('a turn that frees while the event loop was too busy to run the timer of a look-up past maxWaitMs skips it', async () => {
    const gate = new LookUpGate(1, 10, 50);
    const never = new AbortController().signal;
    assert.equal(gate.enter(never), true);
    const stale = gate.enter(never);
    // The event loop busy past the stale look-up's maxWaitMs: its timer cannot run before leave().
    const busyUntil = Date.now() + 60;
    while (Date.now() < busyUntil);
    const fresh = gate.enter(never);
    gate.leave();
    assert.deepEqual(await Promise.all([stale, fresh]), [false, true]);
    gate.leave();
    assert.deepEqual({ active: gate.active, waiting: gate.waiting }, { active: 0, waiting: 0 });
  });
});
