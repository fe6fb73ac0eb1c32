/**
 * `herald run --aid 1 [--timeout 5] [--wait] -- ping -c 3 -q 127.0.0.1`:
 * starts a background command for an admin (their tabs see its progress and
 * its end). Without --wait it prints the command id; with --wait it streams
 * the output by polling the command's status and exits with the program's
 * status: its exit code, 124 on timeout (as timeout(1)), 128+n for a
 * signal, 130 when cancelled (Ctrl-C here cancels it on the server too),
 * 1 when the server's shutdown stopped it, or when the CLI lost the server
 * while following it (the command may then still be running there).
 */
import { constants } from 'node:os';
import type { CommandInfo } from '../sdk/types.js';
import type { BrowserSender } from '../sdk/browser-sender.js';
import { CliError, clientContext, decimalFlag, Exit, onOutputLost, personId, printable, type GlobalFlags } from './context.js';
import { lostAnswer, mayHaveRun, sdkFailure } from './client-commands.js';
import { HeraldSdkError } from '../sdk/errors.js';
import { parseDurationSec } from './duration.js';

export interface RunFlags extends GlobalFlags {
  aid?: string;
  timeout?: string;
  id?: string;
  wait?: boolean;
  pollMs?: string;
}

const ACTIVE = new Set(['queued', 'running']);

/** The status `herald run --wait` exits with for a finished command. */
export function exitStatusOf(info: CommandInfo): number {
  switch (info.state) {
    case 'succeeded':
      return 0;
    case 'timed_out':
      return 124;
    case 'cancelled':
      return 130;
    default: {
      if (typeof info.EXIT_CODE === 'number' && info.EXIT_CODE !== 0) return Math.min(info.EXIT_CODE, 255);
      if (info.SIGNAL) {
        const n = (constants.signals as Record<string, number | undefined>)[info.SIGNAL];
        if (n !== undefined) return 128 + n;
      }
      return 1;
    }
  }
}

export async function runRun(argv: string[], flags: RunFlags): Promise<void> {
  if (flags.aid === undefined) throw new CliError('give --aid N: the admin whose tabs are told about the run', Exit.USAGE);
  const aid = personId('--aid', flags.aid);
  const [program, ...args] = argv;
  if (!program) throw new CliError('give the program after --, e.g. herald run --aid 1 -- ping -c 3 -q 127.0.0.1', Exit.USAGE);
  let timeout: number | undefined;
  if (flags.timeout !== undefined) {
    timeout = parseDurationSec(flags.timeout);
    if (timeout === undefined || timeout <= 0) throw new CliError(`--timeout must be a positive duration (5, 30s, 2m), got ${JSON.stringify(flags.timeout)}`, Exit.USAGE);
  }
  // A timer's bound: a longer delay fires after 1 ms instead (with a TimeoutOverflowWarning each time).
  const pollMs = flags.pollMs === undefined ? 200 : decimalFlag('--poll-ms', flags.pollMs, 'a number of milliseconds', 10, MAX_TIMER_MS);
  const { sender, url, timeoutMs } = clientContext(flags);
  // With --wait, Ctrl-C, SIGTERM or SIGHUP cancels the command on the server, also
  // when it comes before the server has named the command; so does stdout failing.
  const interrupts = flags.wait ? new Interrupts(sender) : undefined;
  try {
    let id: string | false;
    try {
      id = await sender.runInBackground(program, {
        aid, args, door: 'cli',
        ...(timeout === undefined ? {} : { timeout }),
        ...(flags.id === undefined ? {} : { id: flags.id }),
      });
    } catch (e) {
      if (mayHaveRun(e)) {
        // The server may have started it: running it again may run it twice.
        throw new CliError(`${lostAnswer(e, url, timeoutMs)}: the command may or may not have been started, and may be running now; running it again may run it twice. Look for it in GET /api/v1/commands (newest first: its program, args${flags.id === undefined ? '' : `, taskId ${JSON.stringify(flags.id)}`} and door "cli"; herald has no command that lists them), and stop it with POST /api/v1/commands/ID/cancel`);
      }
      sdkFailure(e, url);
    }
    if (id === false) throw new CliError('commands are disabled');
    // The server's id, as printed: nothing of it acts on the terminal.
    const shown = printable(id, 200);
    if (!interrupts) {
      process.stdout.write(`${shown}\n`);
      return;
    }
    process.stderr.write(`command ${shown} started for admin ${aid}\n`);
    interrupts.started(id);
    const info = await follow(sender, id, pollMs, url);
    const summary = `command ${shown} ${info.state}${info.EXIT_CODE !== null ? `, exit code ${info.EXIT_CODE}` : ''}${info.SIGNAL ? `, signal ${info.SIGNAL}` : ''}${info.TRUNCATED ? ', output cut' : ''} after ${info.DURATION_MS} ms${info.error ? `: ${String(info.error).slice(0, 500)}` : ''}`;
    // Every part of it but the URL is the server's to say.
    process.stderr.write(`${printable(summary, 1000)}\n`);
    if (fromAudit(info)) {
      // The server that ran it is gone; the new one knows its end from the audit trail only.
      process.stderr.write(`(Herald at ${url} restarted: this is the command's final record from its audit trail, which does not keep output; any output after what was printed above is lost)\n`);
    }
    if (stoppedByShutdown(info) && interrupts.signal === undefined) {
      // Not the user's Ctrl-C (130): the program did not fail either, the server stopped it.
      throw new CliError(`command ${shown} was stopped by the server's shutdown (Herald at ${url} stops every command it runs when it shuts down, and does not run them again)`);
    }
    // Cancelled by our SIGTERM or SIGHUP: 128 + its number, as a program ended by it would give.
    const signal = interrupts.signal;
    process.exitCode = info.state === 'cancelled' && signal !== undefined && signal !== 'SIGINT' ? 128 + constants.signals[signal] : exitStatusOf(info);
  } finally {
    interrupts?.dispose();
  }
}

/** The signals that cancel the command `run --wait` follows. */
const CANCELLING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Longest delay setTimeout takes (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP (the terminal closed, an SSH session
 * dropped) while `run --wait` follows a command: cancel it on the server,
 * once its id is known, and go on following it to its end; a second signal
 * ends the CLI at once (128 + its number: 130, 143, 129). Without this a
 * service manager stopping the CLI, or a closed terminal, would leave the
 * command running on the server. stdout failing (its reader gone: EPIPE; a
 * full disk) cancels it too, as a program in a local pipeline is stopped by
 * SIGPIPE or by its failed write; the CLI then exits (context.ts, outputFailed).
 */
class Interrupts {
  readonly #sender: BrowserSender;
  #id: string | undefined;
  #signal: NodeJS.Signals | undefined;
  #cancelling: Promise<void> | undefined;
  readonly #on = (signal: NodeJS.Signals): void => {
    if (this.#signal) process.exit(128 + constants.signals[signal]);
    this.#signal = signal;
    if (this.#id === undefined) process.stderr.write('cancelling once the server has started the command…\n');
    else void this.#cancel(this.#id);
  };

  constructor(sender: BrowserSender) {
    this.#sender = sender;
    for (const signal of CANCELLING_SIGNALS) process.on(signal, this.#on);
    // Nothing is written to stdout before the id is known (the start is said on stderr).
    onOutputLost(() => (this.#id === undefined ? Promise.resolve() : this.#cancel(this.#id)));
  }

  /** The signal that asked for the cancel, if one did. */
  get signal(): NodeJS.Signals | undefined {
    return this.#signal;
  }

  started(id: string): void {
    this.#id = id;
    if (this.#signal) void this.#cancel(id);
  }

  /** Asks the server once to cancel the command; resolves when it has answered (or failed to). */
  #cancel(id: string): Promise<void> {
    this.#cancelling ??= (async () => {
      process.stderr.write(`cancelling ${printable(id, 200)}…\n`);
      try {
        await this.#sender.cancelCommand(id);
      } catch (e) {
        process.stderr.write(`cancel failed: ${printable(String((e as Error)?.message ?? e))}\n`);
      }
    })();
    return this.#cancelling;
  }

  dispose(): void {
    for (const signal of CANCELLING_SIGNALS) process.off(signal, this.#on);
    onOutputLost(undefined);
  }
}

/**
 * A command the server cancelled because it shut down: the runner ends every
 * command it runs with the error "server shutting down" (src/server/commands/runner.ts,
 * close()); a cancel through the API or from a browser says who asked.
 */
export function stoppedByShutdown(info: CommandInfo): boolean {
  return info.state === 'cancelled' && typeof info.error === 'string' && info.error.startsWith('server shutting down');
}

/** Polls until the command ends, writing new output as it appears. */
async function follow(sender: BrowserSender, id: string, pollMs: number, url: string): Promise<CommandInfo> {
  const shown = printable(id, 200);
  let printed = 0;
  for (;;) {
    let info: CommandInfo | null;
    try {
      info = await sender.commandStatus(id, { since: printed });
    } catch (e) {
      // The SDK has kept trying for its retryForMs already.
      if (!(e instanceof HeraldSdkError)) throw e;
      throw new CliError(pollFailure(e, url, shown));
    }
    if (info === null) {
      // It was running a moment ago, and a server forgets a finished command only long after, and
      // then answers from its audit trail: this is a new server (restarted), which does not run the
      // commands of the old one again, and keeps no audit trail that holds this one.
      throw new CliError(`command ${shown} is no longer known to Herald at ${url}: the server restarted, which stops every command it ran, and the new one does not run it again (nor does its audit trail, commandsAuditFile, hold how it ended)`);
    }
    if (typeof info.outputLength === 'number') {
      // The server sent only what came after `since`.
      if (info.output !== '') process.stdout.write(info.output);
      printed = info.outputLength;
    } else if (info.output.length > printed) {
      // A server without `since` sends the whole output (kept from the start, up to its cap).
      process.stdout.write(info.output.slice(printed));
      printed = info.output.length;
    }
    if (!ACTIVE.has(info.state)) return info;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/**
 * An answer from the server's audit trail (`source: "audit"`): the command ran in a process
 * that has since restarted. Its state is final; its output was not kept.
 */
function fromAudit(info: CommandInfo): boolean {
  return (info as { source?: unknown }).source === 'audit';
}

/**
 * What `run --wait` says when it can no longer ask how command `shown` stands. Only a server
 * that answered it is shutting down has stopped it (a server that shuts down stops every command
 * it runs, docs/commands.md). A connection cut or refused, or no answer within --timeout-ms, is
 * as likely a proxy or a network between the two, or a busy server, and the command goes on
 * there: a script that took exit 1 for "it did not run" and ran it again ran it twice.
 */
function pollFailure(e: HeraldSdkError, url: string, shown: string): string {
  const said = `${printable(e.code, 100)}${e.status ? `, HTTP ${e.status}` : ''}: ${printable(e.message)}`;
  if (e.code === 'HERALD_ERR_SHUTTING_DOWN') {
    return `Herald at ${url} is shutting down (${said}), which stops every command it runs: command ${shown} was stopped with it, and is not run again`;
  }
  const what = e.status === 0 ? `lost Herald at ${url} while following command ${shown}` : `Herald at ${url} answered the poll of command ${shown} with an error`;
  return `${what} (${said}): the command may still be running there (unless that server shut down, which stops every command it runs), and running it again may run it twice; see how it stands with GET /api/v1/commands/${shown} and stop it with POST /api/v1/commands/${shown}/cancel (docs/commands.md; herald has no command for either)`;
}
