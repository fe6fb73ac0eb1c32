/**
 * Rules of the browser library's DOM-free parts that no other test pinned
 * down (a mutation audit changed each and the suite still passed): a RESET
 * drops the pending ack, a new EPOCH is never a duplicate, a TYPE must be a
 * non-empty string, and a backoff's cap may not be below its base.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { toNotification } from '../src/client/dispatcher.js';
import { Backoff } from '../src/client/backoff.js';
import { DeliveryTracker } from '../src/client/delivery.js';
import type { ClientFrame } from '../src/protocol/frames.js';

/** A tracker whose acks wait long enough that only flush() sends them. */
function tracker() {
  const sent: ClientFrame[] = [];
  const t = new DeliveryTracker({ storageKey: undefined, send: (f) => (sent.push(f), true), ackDelayMs: 60_000, broadcastAckDelayMs: 60_000 });
  return { t, sent };
}

describe('DeliveryTracker across a change of EPOCH', () => {
  it('a RESET drops the pending ack: the next flush does not ack the old SEQ under the new EPOCH', () => {
    const { t, sent } = tracker();
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 5, EPOCH: 'e1' }).kind, 'new');
    t.reset({ TYPE: 'RESET', EPOCH: 'e2', SEQ: 0, REASON: 'epoch changed' });
    t.flush();
    // {SEQ:5, EPOCH:'e2'} would acknowledge five notifications of the new history nobody has seen.
    assert.deepEqual(sent, []);
    // What comes after the RESET is acked as usual, in its own EPOCH.
    t.accept({ TYPE: 'MESSAGE', SEQ: 1, EPOCH: 'e2' });
    t.flush();
    assert.deepEqual(sent, [{ TYPE: 'RESPONSE', SEQ: 1, EPOCH: 'e2' }]);
    t.dispose();
  });

  it('a lower SEQ of another EPOCH is new, not a duplicate, and moves the cursor', () => {
    const { t } = tracker();
    assert.equal(t.accept({ TYPE: 'MESSAGE', SEQ: 5, EPOCH: 'e1' }).kind, 'new');
    assert.deepEqual(t.accept({ TYPE: 'MESSAGE', SEQ: 2, EPOCH: 'e2' }), { kind: 'new', stream: 'own', seq: 2 });
    assert.deepEqual(t.resumeParams(), { seq: '2', epoch: 'e2' });
    t.dispose();
  });
});

describe('toNotification', () => {
  it('gives nothing for a TYPE that is not a non-empty string', () => {
    assert.equal(toNotification({ TYPE: 5 }), undefined);
    assert.equal(toNotification({ TYPE: '' }), undefined);
    assert.equal(toNotification({ TYPE: null, TEXT: 'x' }), undefined);
  });
});

describe('Backoff', () => {
  it('refuses a cap below the base, and takes a cap equal to it', () => {
    assert.throws(() => new Backoff({ baseMs: 500, capMs: 100 }), TypeError);
    assert.throws(() => new Backoff({ baseMs: 500, capMs: 499 }), TypeError);
    const equal = new Backoff({ baseMs: 500, capMs: 500, random: () => 0.999 });
    assert.ok(equal.next() <= 500);
  });
});
