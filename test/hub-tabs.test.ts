/**
 * The Hub keeps a person's one tab as it is and a Set only for two or more
 * (hub.ts): every count, delivery and presence change must come out as with
 * a Set each, through one tab, two, back to one, and none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Hub, type Frame, type FrameOrigin, type Tab } from '../src/server/hub.js';
import type { Principal } from '../src/protocol/principal.js';

class RecordingTab implements Tab {
  readonly got: Array<{ frame: Frame; origin: FrameOrigin | undefined }> = [];
  readonly closed: Array<[number, string]> = [];
  constructor(readonly id: string, readonly principal: Principal) {}
  deliver(frame: Frame, origin?: FrameOrigin): void {
    this.got.push({ frame, origin });
  }
  close(code: number, reason: string): void {
    this.closed.push([code, reason]);
  }
}

test('one tab, two, back to one and none: counts, deliveries and presence as with a set each', () => {
  const hub = new Hub();
  const presence: Array<[string, number]> = [];
  hub.onPresenceChange((p, tabs) => presence.push([`${p.kind}:${p.id}`, tabs]));
  const seven: Principal = { kind: 'admin', id: 7 };
  const a = new RecordingTab('a', seven);
  const b = new RecordingTab('b', seven);
  const c = new RecordingTab('c', seven);
  const other = new RecordingTab('o', { kind: 'admin', id: 8 });

  assert.equal(hub.deliverTo(seven, 'nobody'), 0);
  hub.add(a);
  hub.add(other);
  assert.equal(hub.count(seven), 1);
  assert.deepEqual([...hub.tabsOf(seven)], [a]);
  assert.equal(hub.deliverTo(seven, 'one', { stream: 'own', seq: 1, expiresAt: 2_000_000_000_000 }), 1);
  // One tab is sent the string itself; tabs that share a frame share its bytes.
  assert.deepEqual(a.got.at(-1), { frame: 'one', origin: { stream: 'own', seq: 1, expiresAt: 2_000_000_000_000 } });

  hub.add(a); // added twice: still one tab
  assert.equal(hub.count(seven), 1);
  hub.add(b);
  hub.add(c);
  assert.equal(hub.count(seven), 3);
  assert.deepEqual(new Set(hub.tabsOf(seven)), new Set([a, b, c]));
  assert.equal(hub.deliverTo(seven, 'three'), 3);
  for (const t of [a, b, c]) assert.deepEqual(t.got.at(-1)?.frame, Buffer.from('three'));
  assert.equal(hub.onlineCount('admin'), 2);
  assert.equal(hub.tabCount('admin'), 4);

  hub.remove(b);
  hub.remove(b); // removed twice: nothing changes
  hub.remove(c);
  assert.equal(hub.count(seven), 1);
  assert.deepEqual([...hub.tabsOf(seven)], [a]);
  assert.equal(hub.deliverTo(seven, 'back to one'), 1);
  assert.equal(a.got.at(-1)?.frame, 'back to one');
  assert.equal(b.got.at(-1)?.frame.toString(), 'three', 'a removed tab is sent nothing');

  hub.remove(other); // another person's tab leaves this one's alone
  hub.remove(new RecordingTab('x', seven)); // a tab the Hub never had
  assert.equal(hub.count(seven), 1);
  hub.remove(a);
  assert.equal(hub.count(seven), 0);
  assert.deepEqual([...hub.tabsOf(seven)], []);
  assert.equal(hub.deliverTo(seven, 'gone'), 0);
  assert.equal(hub.onlineCount('admin'), 0);
  assert.equal(hub.tabCount(), 0);
  assert.deepEqual(hub.online('admin'), []);

  assert.deepEqual(presence, [
    ['admin:7', 1], ['admin:8', 1], ['admin:7', 1], ['admin:7', 2], ['admin:7', 3],
    ['admin:7', 2], ['admin:7', 1], ['admin:8', 0], ['admin:7', 0],
  ]);
});

test('disconnect closes every tab of the person, one or many, and no one else\'s', () => {
  const hub = new Hub();
  const one = new RecordingTab('1', { kind: 'user', id: 1 });
  const twoA = new RecordingTab('2a', { kind: 'user', id: 2 });
  const twoB = new RecordingTab('2b', { kind: 'user', id: 2 });
  for (const t of [one, twoA, twoB]) hub.add(t);
  assert.equal(hub.disconnect({ kind: 'user', id: 1 }, 4403, 'kicked'), 1);
  assert.deepEqual(one.closed, [[4403, 'kicked']]);
  assert.equal(hub.disconnect({ kind: 'user', id: 2 }, 4401, 'session ended'), 2);
  assert.deepEqual([twoA.closed, twoB.closed], [[[4401, 'session ended']], [[4401, 'session ended']]]);
  assert.equal(hub.disconnect({ kind: 'admin', id: 1 }, 4403, 'kicked'), 0, 'an admin 1 is not user 1');
});
