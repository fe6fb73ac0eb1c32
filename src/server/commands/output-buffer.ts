import { StringDecoder } from 'node:string_decoder';

/**
 * Captures a program's stdout and stderr, interleaved in arrival order, up to
 * a byte cap. Beyond the cap the bytes are dropped and `truncated` is set;
 * the runner then reads them only at a trickle (DROPPED_OUTPUT_READ_MS), so
 * a program that keeps writing waits on its full pipe. Each stream has
 * its own UTF-8 decoder, so a multi-byte character split across two reads of
 * one stream is never garbled by a read of the other.
 *
 * The cap counts the UTF-8 bytes of the decoded text, which is what is kept,
 * stored and sent, not the bytes the program wrote: each byte that is not
 * valid UTF-8 decodes to U+FFFD, three bytes, so a program writing binary
 * data would otherwise have its output kept at up to three times the cap.
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

  /** UTF-8 bytes of the text kept so far (at most the cap). */
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
    this.#keep(this.#decoders[stream].write(chunk));
  }

  /**
   * Flushes partial characters left in the decoders when the streams end
   * (each becomes U+FFFD, and counts against the cap like any text).
   * After a cut, the partial character is the cut's own doing, so it is dropped.
   */
  end(): void {
    for (const d of Object.values(this.#decoders)) {
      const rest = d.end();
      if (!this.#truncated) this.#keep(rest);
    }
  }

  /** Appends decoded text, cut at the last whole character that fits the cap. */
  #keep(text: string): void {
    if (text === '') return;
    const size = Buffer.byteLength(text, 'utf8');
    const room = this.#cap - this.#bytes;
    if (size > room) {
      const encoded = Buffer.from(text, 'utf8');
      // Back off to a character boundary: a UTF-8 continuation byte is 10xxxxxx. The
      // decoder's text has no lone surrogates, so `encoded` is well-formed UTF-8.
      let end = room;
      while (end > 0 && ((encoded[end] as number) & 0xc0) === 0x80) end--;
      text = encoded.toString('utf8', 0, end);
      this.#truncated = true;
      this.#bytes += end;
    } else {
      this.#bytes += size;
    }
    this.#text += text;
    this.#pending += text;
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
