/**
 * The text of retained notifications, kept outside the JavaScript heap.
 *
 * A store retains every notification until its TTL, usually far longer than
 * the garbage collector's young generation lives: as JavaScript strings, each
 * one was copied twice before reaching the old generation and marked by every
 * full collection after. At 40,000 notifications a second that was a third of
 * the server's GC time (docs/bench-history.md, fifth round). Here each one
 * is copied once into a large Buffer (a chunk) and named by a number, its
 * position.
 *
 * Chunks fill in order; a chunk is released when the last notification in it
 * goes, and one released chunk is kept for reuse. Notifications of mixed
 * lifetimes would leave long-lived ones pinning mostly empty chunks, so once
 * the chunks hold more than twice the live bytes, `sparseChunks()` names
 * those worth emptying and `move()` copies a notification out of one (the
 * StreamIndex does that in its pruning passes).
 *
 * Text is stored exactly: ASCII as one byte a character, anything else as
 * UTF-16 (what the string holds, lone surrogates included).
 *
 * A send to a list of people stores one notification per person, all with
 * the same JSON (the Notifier serialises a shared payload once). Those are
 * one copy here: `put` of the string it was last given, while that copy is
 * in the active chunk, counts one more reference to it instead of copying
 * it again (10,000 people sent 1.6 KB each: 1.6 KB, not 16 MB). `free`
 * lets go of one reference; `move` moves one, and the copy it made serves
 * the other references that move after it (until the next pruning pass).
 */

/** Bytes per chunk. */
const CHUNK = 1 << 20;
/** Longer strings are not put here (the caller keeps them as strings): V8 puts those in its large-object space, never copied. */
export const MAX_ARENA_CHARS = 1 << 14;
/** A notification's header: its byte length, with this bit set when the bytes are UTF-16; then how many references it has. */
const HEADER = 8;
const REFS = 4;
const UTF16 = 0x8000_0000;
/** The chunks may hold this many times the live bytes (plus SLACK_CHUNKS) before sparse ones are emptied. */
const MAX_OVERHEAD = 2;
const SLACK_CHUNKS = 2;
/** A chunk is emptied when less than this share of what was written in it is still live. */
const SPARSE = 0.25;

interface Chunk {
  readonly no: number;
  readonly buf: Buffer;
  /** Bytes written (the next one goes here). */
  used: number;
  /** Notifications still in it, and their bytes (headers included). */
  live: number;
  liveBytes: number;
}

export class JsonArena {
  readonly #chunks = new Map<number, Chunk>();
  #active: Chunk | undefined;
  #nextNo = 0;
  #spare: Buffer | undefined;
  #liveBytes = 0;
  /** The string last put, and where: the next put of the same string shares that copy. */
  #lastJson: string | undefined;
  #lastPos = -1;
  /**
   * A shared copy that `move` copied while other references to the old one
   * remain (old position → new), and the reverse: the other references move
   * to the same new copy. Emptied at each pruning pass (sparseChunks()).
   */
  #moved: Map<number, number> | undefined;
  #movedFrom: Map<number, number> | undefined;

  /** Whether `json` belongs here (not too long). */
  static holds(json: string): boolean {
    return json.length <= MAX_ARENA_CHARS;
  }

  /**
   * Stores `json` (at most MAX_ARENA_CHARS long); returns its position. The
   * same string as the last put, whose copy is still in the active chunk,
   * shares that copy. (Comparing a string that differs costs its common
   * prefix at most; the same string object, which a list send passes, is
   * found at once.)
   */
  put(json: string): number {
    const last = this.#lastPos;
    if (json === this.#lastJson && this.#active !== undefined && JsonArena.chunkOf(last) === this.#active.no) {
      const buf = this.#active.buf;
      const at = (last % CHUNK) + REFS;
      buf.writeUInt32LE(buf.readUInt32LE(at) + 1, at);
      return last;
    }
    const ascii = Buffer.byteLength(json, 'utf8') === json.length;
    const n = ascii ? json.length : json.length * 2;
    const c = this.#reserve(HEADER + n);
    const at = c.used - HEADER - n;
    c.buf.writeUInt32LE(ascii ? n : (n | UTF16) >>> 0, at);
    c.buf.writeUInt32LE(1, at + REFS);
    c.buf.write(json, at + HEADER, ascii ? 'latin1' : 'utf16le');
    this.#lastJson = json;
    this.#lastPos = c.no * CHUNK + at;
    return this.#lastPos;
  }

  /** The string at `pos`. */
  get(pos: number): string {
    const c = this.#chunk(pos);
    const at = pos % CHUNK;
    const h = c.buf.readUInt32LE(at);
    return c.buf.toString(h & UTF16 ? 'utf16le' : 'latin1', at + HEADER, at + HEADER + (h & ~UTF16));
  }

  /** Lets go of one reference to the string at `pos` (of its copy, with the last); returns its length (in UTF-16 code units, as `string.length` counts). */
  free(pos: number): number {
    const c = this.#chunk(pos);
    const at = pos % CHUNK;
    const h = c.buf.readUInt32LE(at);
    const n = h & ~UTF16;
    this.#unref(c, pos, HEADER + n);
    return h & UTF16 ? n / 2 : n;
  }

  /** How many references the string at `pos` has (for tests). */
  refsAt(pos: number): number {
    return this.#chunk(pos).buf.readUInt32LE((pos % CHUNK) + REFS);
  }

  /** The length of the string at `pos` (UTF-16 code units), without reading it. */
  lengthAt(pos: number): number {
    const h = this.#chunk(pos).buf.readUInt32LE(pos % CHUNK);
    return h & UTF16 ? (h & ~UTF16) / 2 : h;
  }

  /**
   * Moves one reference to the string at `pos` to the active chunk; returns
   * its new position. The first reference of a shared copy to move copies it;
   * the others that move after it share that new copy.
   */
  move(pos: number): number {
    const from = this.#chunk(pos);
    const at = pos % CHUNK;
    const size = HEADER + (from.buf.readUInt32LE(at) & ~UTF16);
    let to = this.#moved?.get(pos);
    if (to === undefined) {
      const c = this.#reserve(size);
      from.buf.copy(c.buf, c.used - size, at, at + size);
      c.buf.writeUInt32LE(1, c.used - size + REFS);
      to = c.no * CHUNK + c.used - size;
      if (from.buf.readUInt32LE(at + REFS) > 1) {
        (this.#moved ??= new Map()).set(pos, to);
        (this.#movedFrom ??= new Map()).set(to, pos);
      }
    } else {
      const c = this.#chunk(to);
      const refs = (to % CHUNK) + REFS;
      c.buf.writeUInt32LE(c.buf.readUInt32LE(refs) + 1, refs);
    }
    this.#unref(from, pos, size);
    return to;
  }

  /** The chunk a position is in. */
  static chunkOf(pos: number): number {
    return Math.floor(pos / CHUNK);
  }

  /**
   * The chunks worth emptying (mostly dead), when the chunks hold more than
   * MAX_OVERHEAD times the live bytes; undefined when there is no need.
   */
  sparseChunks(): Set<number> | undefined {
    // A new pass: the copies the last one made are no longer where its other references go.
    this.#moved = undefined;
    this.#movedFrom = undefined;
    if (this.#chunks.size <= SLACK_CHUNKS || this.#chunks.size * CHUNK <= MAX_OVERHEAD * this.#liveBytes + SLACK_CHUNKS * CHUNK) return undefined;
    const sparse = new Set<number>();
    for (const c of this.#chunks.values()) if (c !== this.#active && c.liveBytes < c.used * SPARSE) sparse.add(c.no);
    return sparse.size > 0 ? sparse : undefined;
  }

  /** What the arena holds, for tests and metrics. */
  get stats(): { chunks: number; heldBytes: number; liveBytes: number; live: number } {
    let live = 0;
    for (const c of this.#chunks.values()) live += c.live;
    return { chunks: this.#chunks.size, heldBytes: this.#chunks.size * CHUNK, liveBytes: this.#liveBytes, live };
  }

  #chunk(pos: number): Chunk {
    const c = this.#chunks.get(JsonArena.chunkOf(pos));
    if (!c) throw new Error(`json-arena: no chunk holds position ${pos}`);
    return c;
  }

  /** Counts `size` more live bytes at the end of the active chunk (opening one when it is full); the caller writes them. */
  #reserve(size: number): Chunk {
    let c = this.#active;
    if (!c || c.used + size > CHUNK) c = this.#open();
    c.used += size;
    c.live++;
    c.liveBytes += size;
    this.#liveBytes += size;
    return c;
  }

  /** One reference to the string at `pos` (of `size` bytes, in `c`) gone: the string too with the last. */
  #unref(c: Chunk, pos: number, size: number): void {
    const at = (pos % CHUNK) + REFS;
    const refs = c.buf.readUInt32LE(at);
    if (refs > 1) {
      c.buf.writeUInt32LE(refs - 1, at);
      return;
    }
    if (pos === this.#lastPos) {
      this.#lastJson = undefined;
      this.#lastPos = -1;
    }
    // A copy gone is no longer where other references move, nor one still to move.
    const to = this.#moved?.get(pos);
    if (to !== undefined) {
      this.#moved!.delete(pos);
      this.#movedFrom!.delete(to);
    }
    const from = this.#movedFrom?.get(pos);
    if (from !== undefined) {
      this.#movedFrom!.delete(pos);
      this.#moved!.delete(from);
    }
    this.#forget(c, size);
  }

  /** Counts one string of `size` bytes in `c` as gone; releases the chunk when it was the last. */
  #forget(c: Chunk, size: number): void {
    c.liveBytes -= size;
    this.#liveBytes -= size;
    if (--c.live === 0 && c !== this.#active) this.#release(c);
  }

  #open(): Chunk {
    const old = this.#active;
    const c: Chunk = { no: this.#nextNo++, buf: this.#spare ?? Buffer.allocUnsafeSlow(CHUNK), used: 0, live: 0, liveBytes: 0 };
    this.#spare = undefined;
    this.#chunks.set(c.no, c);
    this.#active = c;
    if (old && old.live === 0) this.#release(old);
    return c;
  }

  #release(c: Chunk): void {
    this.#chunks.delete(c.no);
    this.#spare ??= c.buf;
  }
}
