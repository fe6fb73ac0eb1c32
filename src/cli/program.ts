/**
 * The `herald` command (its entry is main.ts): what an operator types. `start` runs the server;
 * the others talk to a running one through the SDK or read the same
 * configuration (config file < environment < flags) the server reads.
 *
 * Exit statuses: 0 done; 1 the operation failed (unreachable, refused, not
 * delivered); 2 bad usage or configuration (nothing was attempted); 3 `ping`
 * and `status`: the server answered but is not healthy (UNHEALTHY_EXIT); 4
 * `send`: not sent again, a repeat of a live-only send's key (REPEATED_EXIT);
 * `run --wait` exits with the program's own status.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { HeraldError } from '../server/errors.js';
import { CliError, decimalFlag, Exit, onlyOnce, outputFailed, printable, stderrFailed, type GlobalFlags } from './context.js';
import { runConfig, runOnline, runPing, runSend, runStatus, runToken } from './client-commands.js';
import { runRun } from './run.js';
import { outOfDescriptors } from './out-of-descriptors.js';

function packageVersion(): string {
  try {
    // src/cli/program.ts and dist/cli/program.js are both two levels below the package root.
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

const collect = (value: string, previous: string[] = []) => [...previous, value];
/** A port flag in decimal digits only (0: any free port); its range is the option's to check, and name (start.ts). */
const portFlag = (flag: string) => (value: string) => String(decimalFlag(flag, value, 'a port number', 0));

export function buildProgram(): Command {
  const program = new Command('herald')
    .description('Herald: real-time notifications for your panel\'s browser tabs, and background commands')
    .version(packageVersion())
    .option('-c, --config <file>', 'JSON config file (or HERALD_CONFIG)')
    .option('--data-dir <dir>', 'data directory: SQLite store, generated secrets.json (or HERALD_DATA_DIR)')
    .option('--url <url>', 'client commands: the server\'s URL (or HERALD_URL; default http://HOST:PORT from the configuration)')
    .option('--timeout-ms <ms>', 'client commands: deadline of each request', undefined)
    .configureHelp({ showGlobalOptions: true })
    .showHelpAfterError('(herald --help lists the commands; herald <command> --help their options)')
    .exitOverride();

  const globals = (cmd: Command): GlobalFlags => cmd.optsWithGlobals();

  program
    .command('start')
    .description('run the server in the foreground (logs: JSON lines, pretty on a terminal)')
    .option('--host <address>', 'address of the public listener (HERALD_HOST)')
    .option('-p, --port <port>', 'port of the public listener (HERALD_PORT)', portFlag('--port'))
    .option('--public-url <url>', 'the URL browsers use to reach Herald (HERALD_PUBLIC_URL)')
    .option('--legacy-port <port>', 'port of the legacy TCP protocol (HERALD_LEGACY_PORT)', portFlag('--legacy-port'))
    .option('--no-legacy', 'do not run the legacy TCP listener (HERALD_LEGACY_ENABLED=false)')
    .option('--store <kind>', 'memory or sqlite (HERALD_STORE)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (HERALD_LOG_LEVEL)')
    .option('--set <key=value>', 'any option by name, repeatable (herald config --markdown lists them)', collect)
    .action(async (_opts, cmd: Command) => {
      const { runStart } = await import('./start.js');
      await runStart(cmd.optsWithGlobals(), cmd.getOptionValueSource('legacy') === 'cli');
    });

  program
    .command('token')
    .description('print a browser token (and nothing else), signed with the configured secret')
    .addOption(new Option('--aid <n>', 'for admin N').conflicts('uid').argParser(onlyOnce('--aid')))
    .addOption(new Option('--uid <n>', 'for user N').argParser(onlyOnce('--uid')))
    .option('--ttl <duration>', 'lifetime: 90s, 15m, 1h, 2d (default: tokenTtlMs)')
    .action((_opts, cmd: Command) => runToken(cmd.optsWithGlobals()));

  program
    .command('send')
    .description('send a notification to every tab of an admin, a user, or everyone')
    .option('--aid <n>', 'to admin N', onlyOnce('--aid'))
    .option('--uid <n>', 'to user N', onlyOnce('--uid'))
    .option('--aids <list>', 'to admins 1,2,3', onlyOnce('--aids'))
    .option('--uids <list>', 'to users 1,2,3', onlyOnce('--uids'))
    .option('--all-admins', 'to every admin')
    .option('--all-users', 'to every user')
    .option('--title <text>', 'TITLE')
    .option('--text <text>', 'TEXT (a little HTML is allowed)')
    .option('--type <type>', 'TYPE (default MESSAGE)')
    .option('--json <object>', 'the whole notification as JSON instead of --title/--text')
    .option('--ttl <duration>', 'how long it waits for tabs that are not open now: 0, 30s, 1h (default: defaultTtlMs)')
    .option('--idempotency-key <key>', 'the same key is delivered once')
    .option('--print-json', 'print the server\'s answer (per recipient, for a list) as one line of JSON instead of the summary')
    .action((_opts, cmd: Command) => runSend(cmd.optsWithGlobals()));

  program
    .command('online')
    .description('list the admins (or users) with a tab open, one id a line')
    .option('--users', 'users instead of admins')
    .option('--json', 'print {"kind","ids"}')
    .action((_opts, cmd: Command) => runOnline(cmd.optsWithGlobals()));

  program
    .command('ping')
    .description('check that the server answers and accepts the API token (exit 3: it answers but is not healthy)')
    .action((_opts, cmd: Command) => runPing(globals(cmd)));

  program
    .command('status')
    .description('health (exit 3 when not healthy), version, uptime, connections, store, broker, resolver, commands')
    .option('--json', 'print the raw answer')
    .action((_opts, cmd: Command) => runStatus(cmd.optsWithGlobals()));

  program
    .command('run')
    .description('run a program for an admin in the background: herald run --aid 1 -- ping -c 3 -q 127.0.0.1')
    .argument('<program>', 'the program (it must be allowed by the server\'s command policy)')
    .argument('[args...]', 'its arguments, after --')
    .option('--aid <n>', 'the admin whose tabs are told about the run', onlyOnce('--aid'))
    .option('--timeout <duration>', 'kill it after this long: 5, 30s, 2m (default: the server\'s)')
    .option('--id <task>', 'your own id for the task, returned in the notifications')
    .option('--wait', 'stream the output here and exit with the program\'s status')
    .option('--poll-ms <ms>', 'with --wait: how often to poll', '200')
    .action((program_: string, args: string[], _opts, cmd: Command) => runRun([program_, ...args], cmd.optsWithGlobals()));

  program
    .command('config')
    .description('print the effective configuration (secrets masked)')
    .option('--markdown', 'print the table of every option instead (README)')
    .action((_opts, cmd: Command) => runConfig(cmd.optsWithGlobals()));

  return program;
}

/**
 * `herald run --aid 1 ping -c 3 127.0.0.1`: the program's arguments are its
 * own, as if written after `--`. Without this, commander reads them as
 * herald's options wherever they match one (`-c 3` as the global --config,
 * "cannot read config file 3"), and a `--` later among them made every
 * option before it herald's (`herald run --aid 1 prog --aid 2 -- x` ran for
 * admin 2). Returns `argv` with a `--` put before the program, or unchanged
 * when the command is not `run` or has a `--` before the program already.
 */
export function separateRunArguments(program: Command, argv: readonly string[]): string[] {
  const takesValue = (options: readonly Option[], token: string): boolean | undefined => {
    const option = options.find((o) => o.short === token || o.long === token);
    return option === undefined ? undefined : option.required || option.optional;
  };
  const run = program.commands.find((c) => c.name() === 'run');
  let options: readonly Option[] = program.options;
  let inRun = false;
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') return [...argv];
    // A long option with its value after `=`, a short one with its value attached, or an option commander will judge.
    if (token.startsWith('-') && token !== '-') {
      if (!token.includes('=') && (token.startsWith('--') || token.length === 2) && takesValue(options, token)) i++;
      continue;
    }
    // Everything from the program on is its own, a `--` among it too: `grep -e x -- file`.
    if (inRun) return [...argv.slice(0, i), '--', ...argv.slice(i)];
    if (token !== 'run' || run === undefined) return [...argv];
    inRun = true;
    options = [...run.options, ...program.options];
  }
  return [...argv];
}

/**
 * `herald help nope`: commander printed the whole help and exited 2 without a word about `nope`.
 * Returns `argv` with that `help` left out, so that commander answers as for `herald nope`
 * ("unknown command 'nope'", with a suggestion when one is close); unchanged otherwise.
 */
export function helpTopicAsCommand(program: Command, argv: readonly string[]): string[] {
  const known = new Set(['help', ...program.commands.flatMap((c) => [c.name(), ...c.aliases()])]);
  for (let i = 2; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') return [...argv];
    if (token.startsWith('-') && token !== '-') {
      // A global option, with its value when it takes one and it is not attached.
      const option = program.options.find((o) => o.short === token || o.long === token);
      if (option !== undefined && (option.required || option.optional)) i++;
      continue;
    }
    if (token !== 'help') return [...argv];
    const topic = argv[i + 1];
    return topic === undefined || topic.startsWith('-') || known.has(topic) ? [...argv] : [...argv.slice(0, i), ...argv.slice(i + 1)];
  }
  return [...argv];
}

/** What the CLI says when the directory it runs in has been removed. */
export const CWD_GONE = 'the current directory no longer exists; cd elsewhere or give absolute paths';

/** process.cwd()'s failure in a directory that has been removed (ENOENT, syscall uv_cwd), as path.resolve throws it. */
function isCwdGone(e: unknown): boolean {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code === 'ENOENT' && err.syscall === 'uv_cwd';
}

export async function main(argv: string[]): Promise<void> {
  // Watched once here, for every command, since each writes its own way (context.ts).
  process.stdout.on('error', outputFailed);
  process.stderr.on('error', stderrFailed);
  const program = buildProgram();
  try {
    await program.parseAsync(separateRunArguments(program, helpTopicAsCommand(program, argv)));
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has printed the message (or the help) already.
      process.exitCode = e.exitCode === 0 ? Exit.OK : Exit.USAGE;
      return;
    }
    if (e instanceof CliError) {
      // Most messages quote something from elsewhere (a flag, a file, a server's words): no
      // escape sequence of it reaches the terminal. Its own length is cut where it is quoted.
      process.stderr.write(`herald: ${printable(e.message, Number.POSITIVE_INFINITY, true)}\n`);
      process.exitCode = e.exitCode;
      return;
    }
    if (e instanceof HeraldError && e.code === 'HERALD_ERR_CONFIG') {
      // It quotes what was configured (a key of the config file, a --set, a path): as above.
      process.stderr.write(`herald: invalid configuration: ${printable(e.message, Number.POSITIVE_INFINITY, true)}\n`);
      process.exitCode = Exit.USAGE;
      return;
    }
    const code = (e as { code?: unknown } | undefined)?.code;
    if (isCwdGone(e)) {
      // Every command reads paths relative to it (the data dir, ./data by default; a config
      // file; the store): node's path.resolve asks for it, and threw a stack trace.
      process.stderr.write(`herald: ${CWD_GONE}\n`);
      process.exitCode = Exit.FAILURE;
      return;
    }
    if (code === 'EMFILE' || code === 'ENFILE') {
      // Loading `start`'s modules, or a file: said as main.ts says it of the command's own load.
      process.stderr.write(`herald: ${outOfDescriptors(code)}\n`);
      process.exitCode = Exit.FAILURE;
      return;
    }
    process.stderr.write(`herald: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = Exit.FAILURE;
  }
}

