import { writeSync, writevSync } from 'node:fs';
import { createRequire } from 'node:module';
import pino, { type DestinationStream, type Logger } from 'pino';
import type * as PinoPretty from 'pino-pretty';
import type { HeraldOptions } from './options.js';

/**
 * Paths pino replaces with "[redacted]": credentials must never reach a log
 * (session ids, tokens, the API token, the signing secret).
 */
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers.adminsid', 'req.headers.usersid',
  'headers.authorization', 'headers.cookie', 'headers.adminsid', 'headers.usersid',
  'token', 'secret', 'apiToken', 'sid', 'credential', 'legacyToken', 'previousSecret',
  '*.token', '*.secret', '*.apiToken', '*.sid', '*.credential', '*.legacyToken', '*.previousSecret', 'TOKEN', '*.TOKEN',
];

/** Log output waiting for a reader of stdout, at most, in bytes; past it, lines are dropped (and counted). */
export const LOG_BUFFER_BYTES = 1024 * 1024;
/** While stdout takes nothing (EAGAIN), how often the lines waiting are tried again, in ms. */
export const LOG_RETRY_MS = 50;
/** At exit, how long the lines still waiting may take to be written before they are given up, in ms. */
export const LOG_EXIT_FLUSH_MS = 1000;

export function createLogger(options: Pick<HeraldOptions, 'logLevel' | 'logPretty'>): Logger {
  const out = StdoutLog.get();
  const pretty = options.logPretty === 'auto' ? process.stdout.isTTY === true : options.logPretty;
  const format = pretty ? prettyLine() : escapeJsonLine;
  const destination: DestinationStream = { write: (line: string) => out.write(line, format) };
  const logger = pino({ level: options.logLevel, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
  out.reportTo(logger);
  return logger;
}

/**
 * The characters a log line escapes that JSON leaves as they are: C1 controls (U+0080–U+009F;
 * U+009B is a terminal's CSI, as ESC [ is) and the line and paragraph separators (U+2028,
 * U+2029: a new line to some readers). pino escapes only those below U+0020; a client's
 * string (an Origin header, whose bytes node reads as Latin-1; a legacy request's PROGRAM)
 * reached the log with them raw, for a terminal or a log viewer to act on.
 */
const UNSAFE_IN_JSON = /[\u0080-\u009f\u2028\u2029]/g;
const HAS_UNSAFE_IN_JSON = /[\u0080-\u009f\u2028\u2029]/;
/** In pretty output, C0 controls too (JSON.parse turned `\u001b` back into ESC), but for tab and new line, and DEL. */
const UNSAFE_IN_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g;

const escaped = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * A JSON line with those characters written as `\uXXXX`: the same JSON value (they occur
 * only inside strings), safe to show. One scan of the line when there is none (almost always).
 */
export function escapeJsonLine(line: string): string {
  return HAS_UNSAFE_IN_JSON.test(line) ? line.replace(UNSAFE_IN_JSON, escaped) : line;
}

/**
 * pino-pretty in this thread, line by line (its transport ran it in a worker thread, writing
 * to stdout on its own without bound, and waited for it at exit for ever when stdout was not
 * read). Strings are escaped first: the pretty line is for a terminal.
 */
function prettyLine(): (line: string) => string {
  // Loaded only for pretty output (a terminal, or logPretty true): it took about 30 ms of every
  // start, and a server under a service manager logs JSON.
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  const pretty = prettyFactory({ translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  return (line) => {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      return line.replace(UNSAFE_IN_TEXT, escaped);
    }
    return pretty(escapeStrings(value));
  };
}

function escapeStrings(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(UNSAFE_IN_TEXT, escaped);
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(escapeStrings);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k.replace(UNSAFE_IN_TEXT, escaped)] = escapeStrings(v);
  return out;
}

/**
 * Herald's log on stdout (fd 1), written in order and bounded, shared by every logger of the
 * process (one file descriptor, one queue, one exit handler). pino's own destination kept
 * every line nobody read in memory, without bound (10,000 lines held 20 to 130 MB when stdout was
 * a pipe whose reader had stopped), and at exit wrote them synchronously, waiting for ever:
 * Herald never exited on SIGTERM, nor on a second one (pretty, through pino-pretty's worker
 * thread: 10 s, thread-stream's own limit).
 *
 * A line is written at once when nothing waits (stdout is a pipe or a socket that node has
 * made non-blocking, a file, or a terminal, which node makes blocking as for console.log);
 * what stdout does not take waits, tried again every LOG_RETRY_MS, up to LOG_BUFFER_BYTES;
 * past that, lines are dropped and counted, and once all that waited is written, one warning
 * says how many were lost. A line lost to a full disk (ENOSPC, EDQUOT, EFBIG) is counted too,
 * and the warning is tried every LOG_RETRY_MS until the disk takes it. At exit what waits gets LOG_EXIT_FLUSH_MS, then is given up. A
 * stdout whose reader has gone (EPIPE) or that is closed ends the log quietly.
 */
class StdoutLog {
  static #instance: StdoutLog | undefined;

  static get(): StdoutLog {
    return (StdoutLog.#instance ??= new StdoutLog(1));
  }

  readonly #fd: number;
  readonly #waiting: Buffer[] = [];
  #waitingBytes = 0;
  #retry: NodeJS.Timeout | undefined;
  /** Nothing more can be written (EPIPE, a closed descriptor): lines go nowhere from then on. */
  #ended = false;
  #dropped = 0;
  #droppedBytes = 0;
  #reporter: Logger | undefined;

  private constructor(fd: number) {
    this.#fd = fd;
    // node makes a pipe or a socket non-blocking when it opens process.stdout (a terminal it
    // makes blocking): without it, a write to a pipe nobody read blocked the event loop.
    void process.stdout;
    process.on('exit', () => this.#flushAtExit());
  }

  /** The logger that says how many lines were dropped (the first one made). */
  reportTo(logger: Logger): void {
    this.#reporter ??= logger;
  }

  write(line: string, format: (line: string) => string): void {
    if (this.#ended) return;
    // Past the bound, dropped before it costs a format.
    if (this.#waitingBytes >= LOG_BUFFER_BYTES) {
      this.#drop(Buffer.byteLength(line));
      return;
    }
    const text = format(line);
    if (this.#waiting.length === 0) {
      let written = 0;
      try {
        written = writeSync(this.#fd, text);
      } catch (e) {
        const failure = this.#failure(e);
        if (failure === 'lost') {
          this.#drop(Buffer.byteLength(text));
          // Nothing waits to be tried again, and the next line may not come for a long time:
          // the retry tries the warning itself, which comes once the disk takes lines again
          // (before, it came only at exit).
          this.#retryLater();
        }
        if (failure !== 'again') return;
      }
      const bytes = Buffer.byteLength(text);
      if (written === bytes) return;
      // Half a line is never dropped: the next line would be glued to it.
      this.#wait(Buffer.from(text).subarray(written));
      return;
    }
    const buffer = Buffer.from(text);
    if (this.#waitingBytes + buffer.length > LOG_BUFFER_BYTES) {
      this.#drop(buffer.length);
      return;
    }
    this.#wait(buffer);
  }

  #drop(bytes: number): void {
    this.#dropped++;
    this.#droppedBytes += bytes;
  }

  #wait(buffer: Buffer): void {
    this.#waiting.push(buffer);
    this.#waitingBytes += buffer.length;
    this.#retryLater();
  }

  #retryLater(): void {
    if (this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (!this.#drain()) this.#retryLater();
      else this.#reportDropped();
    }, LOG_RETRY_MS);
    // Lines waiting must not keep a process that is otherwise done alive; the exit handler has its go.
    this.#retry.unref();
  }

  /** Writes what waits, as much as stdout takes; true when all of it was written. */
  #drain(): boolean {
    while (this.#waiting.length > 0 && !this.#ended) {
      let written: number;
      try {
        written = writevSync(this.#fd, this.#waiting.slice(0, 64));
      } catch (e) {
        const failure = this.#failure(e);
        if (failure === 'again') return false;
        if (failure === 'lost') {
          for (const b of this.#waiting) this.#drop(b.length);
          this.#waiting.length = 0;
          this.#waitingBytes = 0;
        }
        return true;
      }
      this.#waitingBytes -= written;
      while (written > 0) {
        const first = this.#waiting[0] as Buffer;
        if (written >= first.length) {
          written -= first.length;
          this.#waiting.shift();
        } else {
          this.#waiting[0] = first.subarray(written);
          written = 0;
        }
      }
    }
    return true;
  }

  /** Once all that waited is written: one line says how many were dropped meanwhile. */
  #reportDropped(): void {
    if (this.#dropped === 0 || this.#ended) return;
    const dropped = this.#dropped;
    const bytes = this.#droppedBytes;
    this.#dropped = 0;
    this.#droppedBytes = 0;
    this.#reporter?.warn(
      { dropped, droppedBytes: bytes, logBufferBytes: LOG_BUFFER_BYTES },
      `${dropped} log line${dropped === 1 ? ' was' : 's were'} dropped: stdout did not take them (more than ${LOG_BUFFER_BYTES / 1024 / 1024} MiB waited for a reader that did not read, or a disk was full)`,
    );
    // The warning itself lost (the disk is still full; its write armed the next try): the count
    // stands for that try, as it was, not as the one line of the lost warning.
    if (this.#dropped > 0) {
      this.#dropped = dropped;
      this.#droppedBytes = bytes;
    }
  }

  /**
   * What a failed write means: `again`, stdout takes nothing for now (EAGAIN: the pipe is
   * full); `lost`, what was to be written is dropped and counted, and the next line is tried
   * (ENOSPC: stdout is a file on a full disk); `ended`, nothing will ever be written again
   * (EPIPE: the reader has gone; EBADF: stdout is closed; EIO: its terminal hung up), and the
   * log goes on nowhere, as pino's did on EPIPE. Herald itself goes on in each case.
   */
  #failure(e: unknown): 'again' | 'lost' | 'ended' {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EINTR') return 'again';
    if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG') return 'lost';
    this.#ended = true;
    this.#waiting.length = 0;
    this.#waitingBytes = 0;
    return 'ended';
  }

  /**
   * In the process's 'exit': no event loop any more, so what waits is written synchronously,
   * trying again every few ms while stdout takes nothing, for LOG_EXIT_FLUSH_MS at most.
   */
  #flushAtExit(): void {
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    // The monotonic clock: a step back of the wall clock would hold the exit for its length.
    const deadline = performance.now() + LOG_EXIT_FLUSH_MS;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.#drain() && performance.now() < deadline) Atomics.wait(pause, 0, 0, 10);
    if (this.#waiting.length === 0) this.#reportDropped();
    // Given up. A line logged after this (another 'exit' listener's) is still written if stdout takes it at once.
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#retry = undefined;
    this.#waiting.length = 0;
    this.#waitingBytes = 0;
  }
}
