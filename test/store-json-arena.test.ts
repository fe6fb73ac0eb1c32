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
    // ASCII takes a byte a character, anything else two (UTF-16), plus a 4-byte header each.
    const bytes = TEXTS.reduce((n, t, i) => (i === 0 || i === 3 ? n : n + 4 + (/^[\x00-\x7f]*$/.test(t) ? t.length : 2 * t.length)), 0);
    assert.equal(arena.stats.liveBytes, bytes);
    assert.equal(arena.stats.live, TEXTS.length - 2);
  });

  it('says which strings it holds: longer ones stay strings', () => {
    assert.equal(JsonArena.holds('x'.repeat(MAX_ARENA_CHARS)), true);
    assert.equal(JsonArena.holds('x'.repeat(MAX_ARENA_CHARS + 1)), false);
  });

  it('releases a chunk once everything in it is freed, keeping only the active one', () => {
    const arena = new JsonArena();
    const text = 'n'.repeat(1000);
    const at = Array.from({ length: 10_000 }, () => arena.put(text));
    assert.ok(arena.stats.chunks >= 9, `${arena.stats.chunks} chunks for 10 MB`);
    assert.equal(arena.stats.liveBytes, 10_000 * 1004);
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
    const fillers = Array.from({ length: 2000 }, () => arena.put('z'.repeat(1000))); // fills the first chunk and opens more
    for (const p of fillers) if (JsonArena.chunkOf(p) === JsonArena.chunkOf(first)) arena.free(p);
    const chunks = arena.stats.chunks;
    const to = arena.move(first);
    assert.notEqual(JsonArena.chunkOf(to), JsonArena.chunkOf(first));
    assert.equal(arena.get(to), 'keep me é');
    assert.throws(() => arena.get(first), /no chunk holds position/);
    assert.equal(arena.stats.chunks, chunks - 1);
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
