import { StringDecoder } from 'node:string_decoder';

/**
 * Captures a program's stdout and stderr, interleaved in arrival order, up to
 * a byte cap. Beyond the cap the bytes are still read (so the program never
 * blocks on a full pipe) but dropped, and `truncated` is set. Each stream has
 * its own UTF-8 decoder, so a multi-byte character split across two reads of
 * one stream is never garbled by a read of the other.
 */
export class OutputBuffer {
  readonly #cap: number;
  readonly #decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  #text = '';
  #bytes = 0;
  #truncated = false;
  /** Text not yet handed to a progress frame. */
  #pending = '';

  constructor(capBytes: number) {
    this.#cap = capBytes;
  }

  /** Bytes kept so far (at most the cap). */
  get bytes(): number {
    return this.#bytes;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  get text(): string {
    return this.#text;
  }

  push(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.#truncated) return;
    const room = this.#cap - this.#bytes;
    let kept = chunk;
    if (chunk.length > room) {
      kept = chunk.subarray(0, room);
      this.#truncated = true;
    }
    this.#bytes += kept.length;
    const text = this.#decoders[stream].write(kept);
    this.#text += text;
    this.#pending += text;
  }

  /**
   * Flushes partial characters left in the decoders when the streams end.
   * After a cut, the partial character is the cut's own doing, so it is dropped.
   */
  end(): void {
    if (this.#truncated) return;
    for (const d of Object.values(this.#decoders)) {
      const rest = d.end();
      this.#text += rest;
      this.#pending += rest;
    }
  }

  /** New text since the last call, at most `maxChars` (the tail: a live view wants the latest lines). */
  takePending(maxChars: number): string {
    const p = this.#pending;
    this.#pending = '';
    if (p.length <= maxChars) return p;
    let from = p.length - maxChars;
    // Never start inside a surrogate pair (an emoji, a rare CJK character): half of one
    // is a lone surrogate, which the browser shows as a replacement character.
    const first = p.charCodeAt(from);
    if (first >= 0xdc00 && first <= 0xdfff) from++;
    return p.slice(from);
  }

  get hasPending(): boolean {
    return this.#pending.length > 0;
  }
}
