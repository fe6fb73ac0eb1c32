/**
 * Frames a byte stream into complete JSON values. The legacy protocol has no
 * length prefix or delimiter (docs/legacy.md, "Framing and bad input"): one read may hold several
 * requests and one request may arrive split across reads, anywhere — inside
 * a string, after a backslash, inside a multi-byte UTF-8 character. So the
 * framer scans bytes with a small state machine (JSON's structural
 * characters are all ASCII and never occur inside a UTF-8 multi-byte
 * sequence, so scanning bytes is exact) and decodes a value only once it is
 * complete. The scan resumes where it stopped: each byte is looked at once,
 * and inside strings (most of a request) not even that: the next quote or
 * backslash is found with memchr (5,000 MESSAGE requests framed and parsed
 * in 6.8 ms against 9.4, a 1 MB string in 6.5 against 11).
 *
 * What it does with bad input (the documented choice):
 * - a value that is balanced but not valid JSON (`{foo}`) is emitted as
 *   `invalid`: the caller answers INCORRECT REQUEST and framing carries on;
 * - a byte that cannot start a JSON value (`}`, `x`, a control or binary
 *   byte) is garbage: one `garbage` event per run, and the framer skips to
 *   the next `{` (requests are objects), so the connection resynchronises;
 * - a value nested deeper than `maxDepth` is `too-deep`, unparsed: the
 *   caller answers an error and framing carries on;
 * - a value (or a garbage run) longer than `maxValueBytes` is `too-large`,
 *   after which the framer is finished: the caller answers an error and
 *   closes. Nothing is ever buffered beyond `maxValueBytes`.
 */

export type FramerEvent =
  /** A complete JSON value, parsed. */
  | { readonly kind: 'value'; readonly value: unknown; readonly bytes: number }
  /** A complete value that is not valid JSON. */
  | { readonly kind: 'invalid'; readonly bytes: number }
  /** Bytes that cannot start a JSON value (reported once per run). */
  | { readonly kind: 'garbage' }
  /** A complete value nested deeper than `maxDepth`: never parsed, and framing carries on. */
  | { readonly kind: 'too-deep'; readonly limit: number; readonly bytes: number }
  /** A value longer than the limit: the stream cannot be trusted any further. */
  | { readonly kind: 'too-large'; readonly limit: number };

export interface JsonStreamFramerOptions {
  /** Largest single value, in bytes (option legacyMaxRequestBytes). */
  maxValueBytes: number;
  /**
   * Deepest nesting of arrays and objects a value may have (a top-level
   * object is one level). A deeper one is `too-deep`, found while framing and
   * never handed to JSON.parse, which takes about 0.75 µs a level: a 1 MB
   * request of `[` held the event loop for 400 ms. Absent: any depth.
   */
  maxDepth?: number;
}

const enum Mode {
  /** Between values, skipping white space. */
  Between,
  /** Inside an object or array (`depth` > 0), outside strings. */
  Container,
  /** Inside a string (top-level or nested). */
  String,
  /** Just after a backslash inside a string. */
  Escape,
  /** A top-level number or literal (`true`, `false`, `null`). */
  Bare,
  /** Skipping garbage up to the next `{`. */
  Garbage,
  /** Gave up (too large). */
  Finished,
}

const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

const BOM = [0xef, 0xbb, 0xbf] as const;

/** The least room #keep allocates for an unfinished value: requests split across reads are mostly larger. */
const MIN_PARTS_ROOM = 256;

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Bytes a top-level number or literal may hold. */
function isBareByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7a) || (b >= 0x41 && b <= 0x5a) || b === 0x2d || b === 0x2b || b === 0x2e;
}

/** Bytes that start a top-level number or literal. */
function startsBare(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || b === 0x2d || b === 0x74 /* t */ || b === 0x66 /* f */ || b === 0x6e /* n */;
}

/**
 * Where `byte` next is in `chunk` from `from` on; `n` (the chunk's length) when it is not.
 * Buffer's indexOf (memchr), not Uint8Array's, which looks at one element at a time.
 */
function indexOr(chunk: Buffer, byte: number, from: number, n: number): number {
  const at = chunk.indexOf(byte, from);
  return at < 0 ? n : at;
}

// Invalid UTF-8 becomes U+FFFD instead of failing the request: the old
// clients may send text in another encoding, and delivering it damaged is
// better than refusing it (text is UTF-8 on every protocol: docs/legacy.md, "Requests and answers").
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export class JsonStreamFramer {
  readonly #max: number;
  readonly #maxDepth: number;
  #mode = Mode.Between;
  /** The mode to return to after a string closes. */
  #afterString = Mode.Between;
  #depth = 0;
  /** The current value went deeper than #maxDepth. */
  #tooDeep = false;
  /**
   * Bytes of the current value received in earlier chunks: the first #partsBytes of
   * #parts, whose room doubles as they grow, up to maxValueBytes (#keep). Undefined
   * when none are held. A garbage run's are counted in #partsBytes, not kept.
   */
  #parts: Buffer | undefined;
  #partsBytes = 0;
  /** Bytes of a UTF-8 byte order mark (EF BB BF) seen so far between values. */
  #bom = 0;
  /** Bytes of the last chunk pushed that were looked at (see `read`). */
  #read = 0;

  constructor(options: JsonStreamFramerOptions) {
    if (!Number.isSafeInteger(options.maxValueBytes) || options.maxValueBytes < 1) {
      throw new TypeError('maxValueBytes must be a positive integer');
    }
    if (options.maxDepth !== undefined && (!Number.isSafeInteger(options.maxDepth) || options.maxDepth < 1)) {
      throw new TypeError('maxDepth must be a positive integer');
    }
    this.#max = options.maxValueBytes;
    this.#maxDepth = options.maxDepth ?? Infinity;
  }

  /** True once the stream overran the limit; every later push is ignored. */
  get finished(): boolean {
    return this.#mode === Mode.Finished;
  }

  /** Bytes held for an incomplete value (never more than maxValueBytes). */
  get buffered(): number {
    return this.#partsBytes;
  }

  /** True when a value has started arriving but is not complete yet. */
  get inValue(): boolean {
    return this.#mode !== Mode.Between && this.#mode !== Mode.Finished;
  }

  /**
   * How much of the last chunk pushed was looked at: all of it, unless that
   * push stopped at `maxEvents`. The rest is the caller's to push later.
   */
  get read(): number {
    return this.#read;
  }

  /**
   * Feeds one chunk; returns the events it completed, in order. With
   * `maxEvents`, it stops between values once it has that many, and `read`
   * says where: one read of 64 KB of `{}` is 32,768 requests, and a caller
   * that queued them all held megabytes for a peer that sent 64 KB.
   */
  push(bytes: Uint8Array, maxEvents = Infinity): FramerEvent[] {
    const chunk = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const events: FramerEvent[] = [];
    const n = chunk.length;
    this.#read = n;
    if (this.#mode === Mode.Finished) return events;
    let start = 0; // where the current value (or garbage run) starts in this chunk
    // Where the next quote and backslash are at or after the last place looked (n: none), found once each.
    let nextQuote = -1;
    let nextBackslash = -1;
    for (let i = 0; i < n; i++) {
      const b = chunk[i] as number;
      switch (this.#mode) {
        case Mode.Between:
          if (events.length >= maxEvents) {
            this.#read = i;
            return events;
          }
          if (isSpace(b)) continue;
          // A byte order mark is white space here (a request saved by an editor
          // that writes one, piped with `nc`): taken for garbage, it got an answer
          // of its own, and an old client read every later answer one late.
          if (b === BOM[this.#bom]) {
            if (++this.#bom === BOM.length) this.#bom = 0;
            continue;
          }
          start = i;
          if (this.#bom !== 0) {
            // Part of one only: garbage, and this byte is looked at again in it.
            this.#bom = 0;
            events.push({ kind: 'garbage' });
            this.#mode = Mode.Garbage;
            i--;
            break;
          }
          if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
            this.#mode = Mode.Container;
            this.#depth = 1;
            this.#tooDeep = this.#depth > this.#maxDepth;
          } else if (b === QUOTE) {
            this.#mode = Mode.String;
            this.#afterString = Mode.Between;
          } else if (startsBare(b)) {
            this.#mode = Mode.Bare;
          } else {
            events.push({ kind: 'garbage' });
            this.#mode = Mode.Garbage;
          }
          break;
        case Mode.Container:
          if (b === QUOTE) {
            this.#mode = Mode.String;
            this.#afterString = Mode.Container;
          } else if (b === OPEN_OBJECT || b === OPEN_ARRAY) {
            if (++this.#depth > this.#maxDepth) this.#tooDeep = true;
          } else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
            if (--this.#depth === 0) {
              // Checked before completing, as the string's end is: the check below comes after.
              if (this.#partsBytes + (i + 1 - start) > this.#max) return this.#overrun(events);
              events.push(this.#complete(chunk, start, i + 1));
              this.#mode = Mode.Between;
            }
          }
          break;
        case Mode.String: {
          // To the string's next quote or backslash, found natively: the bytes between
          // cannot change the mode (most of a request is string, most of its bytes these).
          if (nextQuote < i) nextQuote = indexOr(chunk, QUOTE, i, n);
          if (nextBackslash < i) nextBackslash = indexOr(chunk, BACKSLASH, i, n);
          const stop = nextQuote < nextBackslash ? nextQuote : nextBackslash;
          if (stop === n) {
            i = n - 1;
            break;
          }
          i = stop;
          if (stop === nextBackslash) this.#mode = Mode.Escape;
          else if (this.#afterString === Mode.Between) {
            // Checked before completing: the bytes jumped over were not.
            if (this.#partsBytes + (i + 1 - start) > this.#max) return this.#overrun(events);
            events.push(this.#complete(chunk, start, i + 1));
            this.#mode = Mode.Between;
          } else {
            this.#mode = this.#afterString;
          }
          break;
        }
        case Mode.Escape:
          // Whatever follows a backslash (a quote, another backslash, u1234's
          // `u`) cannot end the string.
          this.#mode = Mode.String;
          break;
        case Mode.Bare:
          if (isBareByte(b)) break;
          // The delimiter is not part of the value: look at it again.
          events.push(this.#complete(chunk, start, i));
          this.#mode = Mode.Between;
          i--;
          break;
        case Mode.Garbage:
          if (b === OPEN_OBJECT) {
            this.#dropParts();
            this.#mode = Mode.Between;
            i--;
          }
          break;
        case Mode.Finished:
          return events;
      }
      if (this.#mode !== Mode.Between && this.#partsBytes + (i + 1 - start) > this.#max) {
        return this.#overrun(events);
      }
    }
    if (this.#mode !== Mode.Between) {
      // Keep the unfinished tail (garbage is counted, not kept).
      if (this.#mode === Mode.Garbage) this.#partsBytes += n - start;
      else this.#keep(chunk.subarray(start, n));
    }
    return events;
  }

  /**
   * The stream ended. A top-level number or literal is complete at the end;
   * anything else unfinished is reported as `invalid` (it can never be
   * completed), so the peer still hears why.
   */
  end(): FramerEvent[] {
    const mode = this.#mode;
    if (mode === Mode.Finished || mode === Mode.Between || mode === Mode.Garbage) {
      this.#reset();
      return [];
    }
    const event = mode === Mode.Bare ? this.#complete(new Uint8Array(0), 0, 0) : { kind: 'invalid' as const, bytes: this.#partsBytes };
    this.#reset();
    return [event];
  }

  /**
   * Appends `bytes` to what is held of the current value. Into one buffer, not one per
   * chunk: a Buffer costs about 100 bytes of heap besides its bytes, so a request sent a
   * byte a read held 100 times what legacyMaxBufferedBytes counted (1 MB counted, 106 MB of
   * heap). The room doubles (up to maxValueBytes), so what is held stays under twice what
   * is counted and each byte is copied about twice. Copied, too, because the caller's chunk
   * may be a pooled buffer that is reused; and the room is allocated unpooled, since a
   * slice of the shared pool would keep its whole 8 KiB slab alive.
   */
  #keep(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const used = this.#partsBytes;
    const needed = used + bytes.length;
    if (this.#parts === undefined || needed > this.#parts.length) {
      const room = Math.max(needed, Math.min(this.#max, Math.max(MIN_PARTS_ROOM, (this.#parts?.length ?? 0) * 2)));
      const grown = Buffer.allocUnsafeSlow(room);
      if (this.#parts !== undefined) this.#parts.copy(grown, 0, 0, used);
      this.#parts = grown;
    }
    this.#parts.set(bytes, used);
    this.#partsBytes = needed;
  }

  #dropParts(): void {
    this.#parts = undefined;
    this.#partsBytes = 0;
  }

  #reset(): void {
    this.#dropParts();
    this.#bom = 0;
    this.#mode = Mode.Between;
    this.#depth = 0;
    this.#tooDeep = false;
  }

  #overrun(events: FramerEvent[]): FramerEvent[] {
    this.#dropParts();
    this.#mode = Mode.Finished;
    events.push({ kind: 'too-large', limit: this.#max });
    return events;
  }

  #complete(chunk: Uint8Array, from: number, to: number): FramerEvent {
    if (this.#tooDeep) {
      const bytes = this.#partsBytes + (to - from);
      this.#dropParts();
      this.#tooDeep = false;
      return { kind: 'too-deep', limit: this.#maxDepth, bytes };
    }
    const tail = chunk.subarray(from, to);
    const bytes = this.#parts === undefined ? tail : Buffer.concat([this.#parts.subarray(0, this.#partsBytes), tail]);
    this.#dropParts();
    const text = decoder.decode(bytes);
    try {
      return { kind: 'value', value: JSON.parse(text) as unknown, bytes: bytes.length };
    } catch {
      return { kind: 'invalid', bytes: bytes.length };
    }
  }
}
