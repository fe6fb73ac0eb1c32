/**
 * A never-written stream's epoch is derived from the store's (message-id.ts,
 * derivedEpoch), and a store file keeps the derivation its streams were
 * written with: derived any other way, every stream's EPOCH changes under
 * the tabs that hold it (a RESET for tabs that lost nothing). These are the
 * names both derivations gave before the forty-fifth round rewrote how mix48
 * reads its text and builds its name; they must not move.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { derivedEpoch } from '../src/server/store/message-id.js';

const PINNED: Array<[storeEpoch: string, stream: string, mix48: string, sha256: string]> = [
  ['storeEp2', 'admin:1', 'WeId534d', 'D9bofa7R'],
  ['storeEp2', 'user:7', 'PafCRFXl', '_6mDDlOy'],
  ['kq3Xw1Zp', '*:admin', '4CG6Osot', 'ww6w03f1'],
  ['AAAAAAAA', 'admin:9007199254740991', '4950zf2p', '0weDl2L8'],
  ['zZ-_09aQ', 'user:ñü😀', 'Eb6ysFgP', 'IGL6dTlK'],
];

test('derivedEpoch gives every stream the name it always had, with either derivation', () => {
  for (const [storeEpoch, stream, mix48, sha256] of PINNED) {
    assert.equal(derivedEpoch(storeEpoch, stream), mix48, `${storeEpoch} ${stream}`);
    assert.equal(derivedEpoch(storeEpoch, stream, 'mix48'), mix48, `${storeEpoch} ${stream}`);
    assert.equal(derivedEpoch(storeEpoch, stream, 'sha256'), sha256, `${storeEpoch} ${stream}`);
  }
});

test('derivedEpoch names are 8 base64url characters, one per stream and store epoch', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const name = derivedEpoch('storeEp2', `admin:${i}`);
    assert.match(name, /^[A-Za-z0-9_-]{8}$/);
    seen.add(name);
  }
  assert.equal(seen.size, 2000, 'two streams of one store shared an epoch');
  assert.notEqual(derivedEpoch('storeEp2', 'admin:1'), derivedEpoch('storeEp3', 'admin:1'), 'a new store epoch names every stream anew');
  // The separator counts: "ab" + "c" and "a" + "bc" are different texts.
  assert.notEqual(derivedEpoch('ab', 'c'), derivedEpoch('a', 'bc'));
});
