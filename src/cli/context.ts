/**
 * What every `herald` command needs from the configuration: the same
 * options the server loads (defaults < config file < environment < flags),
 * plus, for the client commands, the server's URL and API token — from
 * `--url`/HERALD_URL or the server's own host/port (never publicUrl), and from
 * HERALD_API_TOKEN / the config file / DATA_DIR/secrets.json.
 */
import { loadOptions, type HeraldOptions, type OptionKey } from '../server/options.js';
import { readSecrets, secretsFile } from '../server/secrets.js';
import { BrowserSender } from '../sdk/browser-sender.js';
import { MAX_TIMEOUT_MS } from '../sdk/http-transport.js';

/** Exit statuses of the `herald` command. */
export const Exit = {
  OK: 0,
  /** The operation failed: unreachable server, refused request, not delivered. */
  FAILURE: 1,
  /** Bad usage or bad configuration: nothing was attempted. */
  USAGE: 2,
} as const;

/** An error the CLI reports as one line on stderr, exiting with `exitCode`. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = Exit.FAILURE) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * Text from elsewhere (a server's error message, a field of its answer) made
 * safe to print on a terminal: every control character — C0 but for tab,
 * DEL, C1 — is shown as `\xNN` instead of acted on (ESC starts sequences that
 * retitle the window, rewrite earlier lines, or hide what follows; CR
 * overwrites the line), and it is cut to `max` characters, saying how much
 * was left out. Newlines are kept only with `keepNewlines` (our own messages).
 */
export function printable(text: string, max = 500, keepNewlines = false): string {
  const cut = text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
  return cut.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, (c) => (keepNewlines && c === '\n' ? c : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/** Options every command accepts (commander global options). */
export interface GlobalFlags {
  config?: string;
  dataDir?: string;
  url?: string;
  timeoutMs?: string;
}

export function loadCliOptions(flags: GlobalFlags, overrides: Partial<Record<OptionKey, unknown>> = {}): HeraldOptions {
  // `--config "$CONF"` with CONF unset: the file was skipped without a word and the server ran
  // on defaults (demo page on, generated secrets). As for --url, an empty flag is a mistake.
  if (flags.config !== undefined && flags.config.trim() === '') throw new CliError('--config must not be empty', Exit.USAGE);
  return loadOptions({ file: flags.config, overrides: { ...overrides, ...(flags.dataDir === undefined ? {} : { dataDir: flags.dataDir }) } });
}

/** The URL a client on this machine uses to reach the server the options describe. */
export function serverUrl(options: HeraldOptions, flags: GlobalFlags, env: NodeJS.ProcessEnv = process.env): string {
  // `--url ''` (an unset shell variable, say) is a mistake to report, not a
  // wish for the configured server; an empty HERALD_URL is unset, as usual.
  if (flags.url !== undefined && flags.url.trim() === '') throw new CliError('--url must not be empty', Exit.USAGE);
  const explicit = flags.url ?? env.HERALD_URL;
  if (explicit) return explicit;
  // The server's own listener, not publicUrl: that is where browsers reach Herald,
  // usually through the panel's proxy, which need not serve the API (deploy/nginx.conf
  // answers 404 there), so `herald ping --config …` on the server's machine failed.
  // A wildcard bind address is reachable through loopback.
  const host = options.host === '0.0.0.0' || options.host === '' ? '127.0.0.1' : options.host === '::' ? '::1' : options.host;
  return `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${options.port}`;
}

export interface ClientContext {
  options: HeraldOptions;
  url: string;
  sender: BrowserSender;
  /** The deadline of each request, ms (--timeout-ms). */
  timeoutMs: number;
}

/** Builds a BrowserSender for the server the configuration describes. */
export function clientContext(flags: GlobalFlags): ClientContext {
  const options = loadCliOptions(flags);
  const url = serverUrl(options, flags);
  const apiToken = options.apiToken || readSecrets(options.dataDir).apiToken || '';
  if (!apiToken) {
    throw new CliError(
      `no API token: set HERALD_API_TOKEN or "apiToken" in the config file, or run herald where the server's data dir is (looked for ${secretsFile(options.dataDir)})`,
      Exit.USAGE,
    );
  }
  // The SDK's bound: a longer Node timer fires after 1 ms instead.
  const timeoutMs = flags.timeoutMs === undefined ? 10000 : decimalFlag('--timeout-ms', flags.timeoutMs, 'a positive number of milliseconds', 1, MAX_TIMEOUT_MS);
  try {
    return { options, url, timeoutMs, sender: new BrowserSender({ url, apiToken, timeoutMs }) };
  } catch (e) {
    // The SDK's message names the fix for a bare IPv6 address (http://::1:19443) too.
    throw new CliError((e as Error).message.replace('option "url"', '--url / HERALD_URL'), Exit.USAGE);
  }
}

/** A positive integer id from a flag, or a usage error naming the flag. */
export function personId(flag: string, value: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new CliError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`, Exit.USAGE);
  return Number(value);
}

/**
 * A whole number from a flag (--timeout-ms, --poll-ms, --port): decimal
 * digits only, as an id is read. Number() also took `0x10`, `1e3`, `1.5`
 * and ` 5000 `, and `070` as 70 where a shell user may mean octal; each is
 * refused with the flag's name (exit 2), as is a value under `min` or past
 * `max` (for a delay, a timer's 2147483647 ms: a longer one fires after
 * 1 ms). Without `max`, the bound is the option's to check and name
 * (--port: the port option). `what` says what the flag takes: "a positive
 * number of milliseconds".
 */
export function decimalFlag(flag: string, value: string, what: string, min: number, max?: number): number {
  const range = max === undefined ? '' : ` up to ${max}`;
  if (!/^(0|[1-9][0-9]*)$/.test(value)) {
    throw new CliError(`${flag} must be ${what}${range}, written in decimal digits (no sign, fraction, exponent, leading zero or spaces), got ${JSON.stringify(value)}`, Exit.USAGE);
  }
  const n = Number(value);
  if (n < min || (max !== undefined && n > max)) throw new CliError(`${flag} must be ${what}${min > 1 ? ` from ${min}` : ''}${range}, got ${JSON.stringify(value)}`, Exit.USAGE);
  return n;
}

/**
 * A commander parser for a flag that may be given once only (a recipient:
 * `--aid 1 --aid 2` sent to admin 2 alone, the last one winning without a word).
 */
export function onlyOnce(flag: string): (value: string, previous: string | undefined) => string {
  return (value, previous) => {
    if (previous !== undefined) throw new CliError(`${flag} is given twice (${JSON.stringify(previous)} and ${JSON.stringify(value)}): give it once (a list is --aids/--uids 1,2)`, Exit.USAGE);
    return value;
  };
}

// ---- output that cannot be written --------------------------------------------

/** What a command does before the CLI exits because its stdout failed (run --wait cancels its command). */
let outputLostHook: (() => Promise<void>) | undefined;
let outputLost = false;

/** Sets (or clears, with undefined) what to do before exiting when stdout cannot be written. */
export function onOutputLost(hook: (() => Promise<void>) | undefined): void {
  outputLostHook = hook;
}

/**
 * stdout failed. EPIPE: `herald status | head -1`, the reader has gone, so
 * what is left to print has nobody to read it. Not a failure of the command:
 * exit 0 without a word, as other command-line tools do on SIGPIPE, rather
 * than an unhandled EPIPE's stack trace and status 1. Any other error
 * (ENOSPC: `herald status > /dev/full`, EIO: the terminal gone) is one line
 * and status 1. Either way the command's hook runs first: `run --wait`
 * cancels the command it follows, as a program in a local pipeline would be
 * stopped by SIGPIPE or by its failed write.
 */
export function outputFailed(e: NodeJS.ErrnoException): void {
  if (outputLost) return;
  outputLost = true;
  const reader = e.code === 'EPIPE';
  if (!reader) process.stderr.write(`herald: cannot write output: ${printable(e.code ?? e.message, 100)}\n`);
  const hook = outputLostHook;
  const status = reader ? Exit.OK : Exit.FAILURE;
  if (hook === undefined) process.exit(status);
  hook().catch(() => undefined).finally(() => process.exit(status));
}

/**
 * stderr failed (its reader gone, `2>&1 | head -1`): nothing can be said
 * there any more, and the command's outcome stands as it is. Unhandled, the
 * error ended a command that had done its work with status 1.
 */
export function stderrFailed(): void {
  // Nowhere left to say anything; the exit status still tells.
}
