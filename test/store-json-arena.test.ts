/**
 * The arena that keeps retained notifications' JSON outside the JavaScript
 * heap (src/server/store/json-arena.ts): text comes back exactly, chunks are
 * released when emptied, and a pruning pass empties chunks that long-lived
 * notifications would otherwise pin.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonArena, MAX_ARENA_CHARS } from '../src/server/store/json-arena.js';
import { StreamIndex, WriteBatch } from '../src/server/store/stream-index.js';

// ASCII and not, a lone surrogate (UTF-8 cannot carry it), characters at
// the one-byte boundary, and the longest strings the arena holds.
const TEXTS = [
  '', '{}', 'ascii only', 'café', 'aéé', 'Привет, мир', '😀😀', '\ud800 lone \udfff', '\x7f\x80\xff',
  'x'.repeat(MAX_ARENA_CHARS), 'я'.repeat(MAX_ARENA_CHARS), '😀'.repeat(MAX_ARENA_CHARS / 2),
];
const MB = 1 << 20;

describe('JsonArena', () => {
  it('gives back every string exactly as put, whatever its characters', () => {
    const arena = new JsonArena();
    const at = TEXTS.map((t) => arena.put(t));
    assert.equal(new Set(at).size, TEXTS.length);
    TEXTS.forEach((t, i) => assert.equal(arena.get(at[i]!), t));
    // Freeing some leaves the others intact.
    arena.free(at[0]!);
    arena.free(at[3]!);
    TEXTS.forEach((t, i) => i !== 0 && i !== 3 && assert.equal(arena.get(at[i]!), t));
    // ASCII takes a byte a character, anything else two (UTF-16), plus an 8-byte header each.
    const bytes = TEXTS.reduce((n, t, i) => (i === 0 || i === 3 ? n : n + 8 + (/^[\x00-\x7f]*$/.test(t) ? t.length : 2 * t.length)), 0);
    assert.equal(arena.stats.liveBytes, bytes);
    assert.equal(arena.stats.live, TEXTS.length - 2);
  });

  it('says which strings it holds: longer ones stay strings', () => {
    assert.equal(JsonArena.holds('x'.repeat(MAX_ARENA_CHARS)), true);
    assert.equal(JsonArena.holds('x'.repeat(MAX_ARENA_CHARS + 1)), false);
  });

  it('releases a chunk once everything in it is freed, keeping only the active one', () => {
    const arena = new JsonArena();
    const text = (i: number) => `${i}`.padEnd(1000, 'n');
    const at = Array.from({ length: 10_000 }, (_, i) => arena.put(text(i)));
    assert.ok(arena.stats.chunks >= 9, `${arena.stats.chunks} chunks for 10 MB`);
    assert.equal(arena.stats.liveBytes, 10_000 * 1008);
    for (const p of at) arena.free(p);
    assert.equal(arena.stats.chunks, 1);
    assert.equal(arena.stats.liveBytes, 0);
    // The active chunk goes on taking strings after being emptied.
    const p = arena.put('again');
    assert.equal(arena.get(p), 'again');
  });

  it('moves a string out of a chunk, and the emptied chunk is released', () => {
    const arena = new JsonArena();
    const first = arena.put('keep me é');
    const fillers = Array.from({ length: 2000 }, (_, i) => arena.put(`${i}`.padEnd(1000, 'z'))); // fills the first chunk and opens more
    for (const p of fillers) if (JsonArena.chunkOf(p) === JsonArena.chunkOf(first)) arena.free(p);
    const chunks = arena.stats.chunks;
    const to = arena.move(first);
    assert.notEqual(JsonArena.chunkOf(to), JsonArena.chunkOf(first));
    assert.equal(arena.get(to), 'keep me é');
    assert.throws(() => arena.get(first), /no chunk holds position/);
    assert.equal(arena.stats.chunks, chunks - 1);
  });

  it('keeps one copy of the same string put in a row (a list send), until its last reference is freed', () => {
    const arena = new JsonArena();
    const json = JSON.stringify({ TYPE: 'MESSAGE', TEXT: 'Плановые работы '.padEnd(1600, '.') });
    const at = Array.from({ length: 10_000 }, () => arena.put(json));
    assert.equal(new Set(at).size, 1);
    assert.deepEqual([arena.stats.live, arena.stats.chunks, arena.refsAt(at[0]!)], [1, 1, 10_000]);
    assert.equal(arena.stats.liveBytes, 8 + 2 * json.length);
    // Equal text from another string object is the same string.
    const other = arena.put(JSON.stringify(JSON.parse(json)));
    assert.equal(other, at[0]);
    // Something else in between: the next copy is a copy of its own.
    const between = arena.put('{"N":1}');
    const again = arena.put(json);
    assert.notEqual(again, at[0]);
    assert.equal(arena.stats.live, 3);
    for (const p of at) assert.equal(arena.free(p), json.length, 'each reference counts its length');
    assert.equal(arena.get(other), json, 'the last reference still reads');
    arena.free(other);
    assert.equal(arena.stats.live, 2);
    for (const p of [between, again]) arena.free(p);
    assert.deepEqual([arena.stats.live, arena.stats.liveBytes], [0, 0]);
  });

  it('does not share a copy freed meanwhile, nor one in a chunk that is no longer the active one', () => {
    const arena = new JsonArena();
    const json = '{"TEXT":"same"}';
    const first = arena.put(json);
    arena.free(first);
    const second = arena.put(json);
    assert.notEqual(second, first);
    assert.equal(arena.refsAt(second), 1);
    // Fill the chunk with the same string put in a row but once: the next put of it after the chunk changed copies it.
    const big = 'b'.repeat(MAX_ARENA_CHARS);
    while (JsonArena.chunkOf(arena.put(`${Math.random()}${big}`.slice(0, MAX_ARENA_CHARS))) === JsonArena.chunkOf(second));
    const lastInOld = arena.put(json);
    assert.notEqual(JsonArena.chunkOf(lastInOld), JsonArena.chunkOf(second), 'a new copy in the active chunk');
  });

  it('moves every reference of a shared copy to one new copy, each move one reference', () => {
    const arena = new JsonArena();
    const json = '{"TEXT":"для всех"}';
    const shared = Array.from({ length: 5 }, () => arena.put(json));
    const fillers = Array.from({ length: 2000 }, (_, i) => arena.put(`${i}`.padEnd(1000, 'z')));
    for (const p of fillers) if (JsonArena.chunkOf(p) === JsonArena.chunkOf(shared[0]!)) arena.free(p);
    arena.sparseChunks(); // a pruning pass starts
    const moved = shared.map((p) => arena.move(p));
    assert.equal(new Set(moved).size, 1, 'one new copy');
    assert.notEqual(JsonArena.chunkOf(moved[0]!), JsonArena.chunkOf(shared[0]!));
    assert.equal(arena.refsAt(moved[0]!), 5);
    assert.equal(arena.get(moved[0]!), json);
    assert.throws(() => arena.get(shared[0]!), /no chunk holds position/, 'the old chunk, emptied, is released');
  });

  it('makes a new copy for a reference that moves after the first moved copy was freed', () => {
    const arena = new JsonArena();
    const json = '{"TEXT":"для всех"}';
    const [a, b] = [arena.put(json), arena.put(json)];
    const fillers = Array.from({ length: 2000 }, (_, i) => arena.put(`${i}`.padEnd(1000, 'z')));
    for (const p of fillers) if (JsonArena.chunkOf(p) === JsonArena.chunkOf(a)) arena.free(p);
    arena.sparseChunks();
    const movedA = arena.move(a);
    arena.free(movedA); // dropped (acknowledged and expired, or the cap) while the pass paused
    const movedB = arena.move(b);
    assert.notEqual(movedB, movedA);
    assert.equal(arena.get(movedB), json);
    assert.equal(arena.refsAt(movedB), 1);
  });
});

describe('StreamIndex with its arena', () => {
  /** Appends `n` notifications of about `size` characters round-robin to `streams` streams; every `longEvery`-th lives an hour, the rest a second. */
  function fill(index: StreamIndex, n: number, streams: number, longEvery: number, now: number): Map<string, string[]> {
    const batch = new WriteBatch(index);
    const kept = new Map<string, string[]>();
    for (let i = 0; i < n; i++) {
      const stream = `admin:${1 + (i % streams)}`;
      const long = i % longEvery === 0;
      const json = JSON.stringify({ TYPE: 'MESSAGE', TEXT: `${long ? 'Долгое' : 'short'} ${i} ${'.'.repeat(900)}` });
      batch.append({ stream, json, expiresAt: now + (long ? 3_600_000 : 1000) }, now);
      if (long) kept.set(stream, [...(kept.get(stream) ?? []), json]);
      if (i % 100 === 99) batch.apply();
    }
    batch.apply();
    return kept;
  }

  it('keeps what it retains readable, and pruning empties the chunks long-lived notifications would pin', () => {
    const index = new StreamIndex(100_000, 'storeEpoch');
    const now = 1_000_000;
    const kept = fill(index, 20_000, 50, 20, now); // about 20 MB, one in 20 kept for an hour
    const before = index.arena.stats;
    assert.ok(before.chunks >= 18, `${before.chunks} chunks`);
    const removed = index.prune(now + 2000);
    assert.equal(removed, 19_000);
    const after = index.arena.stats;
    assert.equal(after.live, 1000);
    // 1 MB of live notifications: without emptying the sparse chunks all ~20 would stay.
    assert.ok(after.chunks <= 4, `${after.chunks} chunks hold ${after.liveBytes} live bytes`);
    assert.ok(after.heldBytes <= 4 * MB);
    for (const [stream, jsons] of kept) {
      const r = index.readAfter(stream, 0, 1000, now + 2000);
      assert.deepEqual(r.messages.map((m) => m.json), jsons);
    }
  });

  it('keeps one copy of a list send\'s JSON for all its recipients, through pruning passes that empty the chunks around it', () => {
    const index = new StreamIndex(100_000, 'storeEpoch');
    const now = 1_000_000;
    const batch = new WriteBatch(index);
    const listed = JSON.stringify({ TYPE: 'MESSAGE', TEXT: 'Плановые работы в ночь на субботу '.padEnd(1600, '.') });
    const people = Array.from({ length: 2000 }, (_, i) => `user:${i + 1}`);
    // Short-lived fillers first and after, so that the list send's copy sits in a chunk a pass finds sparse.
    const filler = (i: number) => ({ stream: `admin:${1 + (i % 7)}`, json: `{"N":${i},"T":"${'.'.repeat(900)}"}`, expiresAt: now + 1000 });
    for (let i = 0; i < 1500; i++) batch.append(filler(i), now);
    for (const stream of people) batch.append({ stream, json: listed, expiresAt: now + 3_600_000 }, now);
    for (let i = 1500; i < 3000; i++) batch.append(filler(i), now);
    batch.apply();
    assert.equal(index.arena.stats.live, 3001, 'the fillers and one copy of the list send');
    const fillerBytes = Array.from({ length: 3000 }, (_, i) => filler(i).json.length).reduce((a, b) => a + b, 0);
    assert.equal(index.counts().retainedBytes, fillerBytes + 2000 * listed.length, 'the tally counts each person\'s copy');
    assert.equal(index.prune(now + 2000), 3000);
    const after = index.arena.stats;
    assert.equal(after.live, 1);
    assert.equal(after.chunks, 1, 'the chunks the fillers held are gone, the copy moved once');
    assert.equal(after.liveBytes, 8 + 2 * listed.length);
    for (const stream of people) assert.equal(index.readAfter(stream, 0, 10, now + 2000).messages[0]?.json, listed, stream);
    // Each person's acknowledgement and expiry lets go of their reference; the copy goes with the last.
    assert.equal(index.prune(now + 3_600_001), 2000);
    assert.deepEqual([index.arena.stats.live, index.counts().retainedBytes], [0, 0]);
  });

  it('counts a list send\'s text too long for the arena once in the memory it takes, and once per person in the tally', () => {
    const index = new StreamIndex(10, 'storeEpoch');
    const batch = new WriteBatch(index);
    const long = JSON.stringify({ TEXT: 'Д'.repeat(MAX_ARENA_CHARS + 10) });
    for (let i = 1; i <= 100; i++) batch.append({ stream: `user:${i}`, json: long, expiresAt: 10_000 }, 0);
    batch.append({ stream: 'user:1', json: JSON.stringify({ TEXT: 'Ж'.repeat(MAX_ARENA_CHARS + 10) }), expiresAt: 10_000 }, 0);
    batch.apply();
    const counts = index.counts();
    assert.equal(counts.retained, 101);
    assert.equal(counts.retainedBytes, 101 * long.length);
    assert.equal(counts.retainedMemoryBytes, index.arena.stats.heldBytes + 2 * long.length, 'two texts, each once');
  });

  it('holds and counts a text too long for the arena once however its holders come: in a list send, sent again, among other texts of its length', () => {
    const index = new StreamIndex(1000, 'storeEpoch');
    // Texts of one length that differ at their end: V8 hashes strings this long by their length
    // alone, and the Set that once counted them compared each with all the others (28 s for 4,000).
    const text = (i: number) => JSON.stringify({ TEXT: 'r'.repeat(MAX_ARENA_CHARS + 10), ID: String(i).padStart(6, '0') });
    const one = text(0);
    let batch = new WriteBatch(index);
    for (let i = 1; i <= 2000; i++) batch.append({ stream: `user:${i}`, json: text(i), expiresAt: 10_000 }, 0);
    for (let i = 1; i <= 50; i++) batch.append({ stream: `user:${i}`, json: one, expiresAt: 20_000 }, 0);
    batch.apply();
    // The same text again, in another string, in a later batch: held (and counted) once.
    batch = new WriteBatch(index);
    batch.append({ stream: 'user:7', json: text(0).slice(0), expiresAt: 20_000 }, 0);
    batch.apply();
    const counts = index.counts();
    assert.equal(counts.retained, 2051);
    assert.equal(counts.retainedBytes, 2051 * one.length);
    assert.equal(counts.retainedMemoryBytes, index.arena.stats.heldBytes + 2001 * one.length);
    assert.equal(index.get('user:7')!.read('user:7', 0, 10, 0).at(-1)?.json, one);
    assert.equal(index.prune(15_000), 2000);
    assert.equal(index.counts().retainedMemoryBytes, index.arena.stats.heldBytes + one.length);
    assert.equal(index.prune(25_000), 51);
    assert.equal(index.counts().retainedMemoryBytes, index.arena.stats.heldBytes);
  });

  it('frees the JSON of notifications dropped by the cap and keeps JSON too long for the arena as strings', () => {
    const index = new StreamIndex(3, 'storeEpoch');
    const batch = new WriteBatch(index);
    const long = JSON.stringify({ TEXT: 'L'.repeat(MAX_ARENA_CHARS + 10) });
    for (let i = 0; i < 10; i++) batch.append({ stream: 'user:5', json: i === 8 ? long : `{"N":${i}}`, expiresAt: 10_000 }, 0);
    batch.apply();
    assert.deepEqual(index.readAfter('user:5', 0, 10, 1).messages.map((m) => m.json), ['{"N":7}', long, '{"N":9}']);
    assert.equal(index.arena.stats.live, 2);
    assert.equal(index.prune(20_000), 3);
    assert.equal(index.arena.stats.live, 0);
    assert.equal(index.readAfter('user:5', 0, 10, 20_000).messages.length, 0);
  });
});
