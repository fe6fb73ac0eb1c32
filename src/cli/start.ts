/**
 * `herald start`: the server in the foreground. Options from the config
 * file, the environment and flags; secrets generated on first start; logs
 * as JSON lines (pretty on a terminal); SIGTERM/SIGINT close every tab with
 * the close frame, let requests in flight finish, and exit 0; so does SIGHUP
 * when Herald runs on a terminal, and it is ignored (said in the log) when not.
 */
import type { TSchema } from '@sinclair/typebox';
import { carriesSecret, carryOptionSources, configFileWarnings, envName, fromEnvString, OptionsSchema, unknownEnvironmentNames, whereSet, withOptionSource, type OptionKey } from '../server/options.js';
import { createLogger } from '../server/logger.js';
import { resolve } from 'node:path';
import { isatty } from 'node:tty';
import { ensureSecrets, secretsFile, type SecretsResult } from '../server/secrets.js';
import { createHerald, type Herald } from '../server/herald.js';
import { isHeraldError } from '../server/errors.js';
import { fileInPath } from '../server/store/index.js';
import { CloseReason } from '../protocol/close-codes.js';
import { CliError, Exit, loadCliOptions, serverUrl, type GlobalFlags } from './context.js';
import type { HeraldOptions } from '../server/options.js';

export interface StartFlags extends GlobalFlags {
  host?: string;
  port?: string;
  publicUrl?: string;
  legacyPort?: string;
  /** From `--no-legacy`; only taken when given on the command line. */
  legacy?: boolean;
  store?: string;
  logLevel?: string;
  /** `--set key=value`, repeatable: any option by its schema name, but for one that carries a secret (see parseSetFlags). */
  set?: string[];
}

/** A number when the flag looks like one, else the raw text, so that loadOptions names the bad value. */
function numeric(value: string | undefined): unknown {
  if (value === undefined) return undefined;
  return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
}

/**
 * `--set heartbeatMs=1000`: the value is JSON when it parses as JSON and
 * fits the option; a string option takes the text as typed (a store file
 * `2026` is not the number 2026, which the schema would refuse), and
 * a list option takes `a,b` as its environment variable does. A value that
 * carries a secret (options.ts, carriesSecret) is refused: it belongs in the
 * environment or the config file, not in argv.
 */
export function parseSetFlags(items: readonly string[]): Partial<Record<OptionKey, unknown>> {
  // No prototype: `--set __proto__=…` is then a key like any other (which loadOptions refuses as
  // unknown), not a write to the object's prototype that dropped it without a word.
  const out = Object.create(null) as Record<string, unknown>;
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`--set takes key=value, got ${JSON.stringify(item)}`, Exit.USAGE);
    const key = item.slice(0, eq);
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a bare string
    }
    // A string or list option reads the text as its environment variable
    // would. An unknown key keeps its value: loadOptions names the key.
    const type = (OptionsSchema.properties as Record<string, TSchema | undefined>)[key]?.type;
    if ((type === 'string' && typeof value !== 'string') || (type === 'array' && !Array.isArray(value))) value = fromEnvString(key, raw);
    // A command line is every user's to read (ps, /proc/PID/cmdline), and docs/cli.md says the
    // API token has no flag for that reason; `--set previousSecret=…` put one there all the same.
    if (carriesSecret(key, value)) {
      throw new CliError(`--set ${key}=… would put a secret on the command line, where every user of this machine can read it (ps): set ${envName(key)} in Herald's environment, or "${key}" in the config file (mode 0600), instead`, Exit.USAGE);
    }
    out[key] = value;
  }
  return out as Partial<Record<OptionKey, unknown>>;
}

/**
 * The options `herald start` was given: `--set` ones, and the dedicated
 * flags over them when given (`--port 8080 --set port=9090` is 8080). A
 * dedicated flag that was not given must not be there at all: as `undefined`
 * it hid the `--set` value, so `--set port=8080` started on the default port.
 */
export function startOverrides(flags: StartFlags, legacyFromCli: boolean): Partial<Record<OptionKey, unknown>> {
  const out: Partial<Record<OptionKey, unknown>> = parseSetFlags(flags.set ?? []);
  const given: Partial<Record<OptionKey, unknown>> = {
    host: flags.host,
    port: numeric(flags.port),
    publicUrl: flags.publicUrl,
    legacyPort: numeric(flags.legacyPort),
    legacyEnabled: legacyFromCli ? flags.legacy : undefined,
    store: flags.store,
    logLevel: flags.logLevel,
  };
  for (const [key, value] of Object.entries(given) as Array<[OptionKey, unknown]>) if (value !== undefined) out[key] = value;
  return out;
}

export async function runStart(flags: StartFlags, legacyFromCli: boolean): Promise<void> {
  const loaded = loadCliOptions(flags, startOverrides(flags, legacyFromCli));
  // A data dir that is a file (a typo in the unit's configuration): said so, before the secrets,
  // the store and the audit trail each failed in it their own way (a stack trace among them).
  const notDir = fileInPath(loaded.dataDir);
  if (notDir !== undefined) {
    const under = notDir === resolve(loaded.dataDir) ? '' : `, and ${loaded.dataDir} would be under it`;
    throw new CliError(`cannot start: the data dir ${notDir} is a file, not a directory${under} (option "dataDir", ${whereSet(loaded, 'dataDir')}): name a directory; Herald creates it when it is missing`, Exit.FAILURE);
  }
  let secured: ReturnType<typeof ensureSecrets>;
  try {
    secured = ensureSecrets(loaded);
  } catch (e) {
    // A dataDir this user may not write (one that is a file was refused above): one line, not a stack trace.
    const err = e as NodeJS.ErrnoException;
    if (typeof err.syscall === 'string' && err.syscall !== 'uv_cwd') throw new CliError(`cannot start: cannot keep the generated secrets in ${secretsFile(loaded.dataDir)}: ${err.message}`, Exit.FAILURE);
    // A data dir or secrets.json another user controls: said with where dataDir came from.
    throw withOptionSource(e, loaded);
  }
  // The options with the secrets filled in: a configuration error found later still says where its value came from.
  // The config file's warnings (secrets in a file others may read) with the data dir's.
  // Secrets generated by a start that fails (a port in use, a store locked) are kept, with the
  // notice of where they are still owed: the next start prints it (secrets.ts, noticeFile).
  const warnings = [...configFileWarnings(loaded), ...secured.warnings];
  await serve(carryOptionSources(loaded, secured.options), flags, { ...secured, warnings });
}

/** Runs Herald with its secrets in place, until a signal stops it; throws when it cannot start. */
async function serve(options: HeraldOptions, flags: StartFlags, secured: SecretsResult): Promise<void> {
  const { file, noticeKeys } = secured;
  const logger = createLogger(options);
  for (const warning of secured.warnings) logger.warn(warning);
  // A signal while Herald starts (opening a large store takes seconds) ended the process
  // by the signal itself: no close, the store left unclean, the lock file behind. It is
  // held until Herald is up, then shuts it down as any other; a second one exits now.
  let early: NodeJS.Signals | undefined;
  // One listener for the whole life, never removed: removing a signal's last listener closes
  // node's watcher of it, and a signal it had caught but not yet handed over was lost (a
  // SIGTERM during listen() left Herald running).
  let onSignal = (signal: NodeJS.Signals): void => {
    if (early) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(Exit.FAILURE);
    }
    early = signal;
    logger.info({ signal }, 'signal while starting: shutting down once started');
  };
  const hangupStops = onTerminal();
  for (const signal of STOP_SIGNALS) {
    process.on(signal, (s: NodeJS.Signals) => {
      if (s === 'SIGHUP' && !hangupStops) {
        // No terminal to hang up: a `kill -HUP` or `systemctl kill -s HUP`, as to reload another
        // daemon's configuration. Stopping on it exited 0, and Restart=on-failure (deploy/herald.service)
        // then left Herald stopped for good.
        logger.warn({ signal: s }, 'SIGHUP ignored: Herald does not reload its configuration on SIGHUP; restart it to apply a change (systemctl restart herald)');
        return;
      }
      onSignal(s);
    });
  }
  // The name only, and the name it may have meant: never the value, which may be a secret.
  for (const { name, meant } of unknownEnvironmentNames(process.env)) {
    logger.warn({ variable: name, ...(meant ? { meant } : {}) }, `environment variable ${name} is not an option and is ignored${meant ? ` (did you mean ${meant}?)` : ''}`);
  }
  let herald: Herald;
  try {
    herald = await createHerald(options, { logger });
  } catch (e) {
    // A signal that came while the store was opening (synchronously, waiting for its lock) waits
    // in the event loop: it is handled before this start ends, and said in the log ('signal
    // while starting'). The first immediate runs in this turn's check phase, the second in the
    // next turn's, after that turn's poll has read the signal. The log's writes are synchronous
    // (logger.ts): no write in flight keeps the loop alive for a turn, and the process ended with
    // the signal unread.
    for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
    // A store in use by another Herald, a file that cannot be opened: one line, not a stack
    // trace. A configuration error goes on to main, which says so and exits 2.
    if (isHeraldError(e) && e.code !== 'HERALD_ERR_CONFIG') throw new CliError(`cannot start: ${e.message}`, Exit.FAILURE);
    // A file-system failure of the store's (its directory cannot be made: EACCES, or a data dir
    // under /proc, make-directory.ts): one line too. A deleted working directory goes on to main.
    const err = e as NodeJS.ErrnoException;
    if (typeof err.syscall === 'string' && err.syscall !== 'uv_cwd') throw new CliError(`cannot start: ${err.message}`, Exit.FAILURE);
    throw e;
  }
  if (early) {
    // Not opened to anyone: closed again at once; the notice of what it generated stays owed (see runStart).
    await herald.close(CloseReason.SHUTDOWN);
    logger.info('stopped');
    process.exit(Exit.OK);
  }
  try {
    await herald.listen();
  } catch (e) {
    // Whatever was already listening, the store and its lock: all released before the exit.
    await herald.close().catch(() => undefined);
    const err = e as NodeJS.ErrnoException;
    // EADDRINUSE, EACCES, EADDRNOTAVAIL (a host this machine does not have), …; and a host
    // or legacyHost that is a name nothing resolves (getaddrinfo ENOTFOUND), which printed a stack trace.
    if (err.syscall === 'listen' || err.syscall === 'getaddrinfo') throw new CliError(`cannot listen: ${err.message}`, Exit.FAILURE);
    throw e;
  }
  if (noticeKeys.length > 0) {
    // Where a browser on this machine reaches the listener: on a wildcard host the listener's own
    // address (http://0.0.0.0:PORT, http://[::]:PORT) is where nothing connects, so loopback instead.
    const reachable = serverUrl({ ...options, port: Number(new URL(herald.urls.http).port) }, {}, {});
    // A browser token is a credential only for the token resolver: with sql or http the
    // panel's session cookie is, and the token line only sent operators after a useless token.
    const tokenEndpoint = options.authResolver === 'token' ? adminEndpoint(options.publicUrl, reachable) : undefined;
    // The config file these options came from (--config, or HERALD_CONFIG): the hint's commands
    // read the secrets and the server's address from it too, run from any directory or shell.
    const configFile = flags.config ?? (process.env.HERALD_CONFIG || undefined);
    const config = configFile === undefined ? undefined : resolve(configFile);
    printFirstStart(file, noticeKeys, tokenEndpoint, options.dataDir, flags.dataDir !== undefined, config, hintUrl(options, config, reachable));
    secured.announced();
  }

  let closing = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (closing) {
      // A second signal: the operator does not want to wait for the grace period.
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(Exit.FAILURE);
    }
    closing = true;
    logger.info({ signal }, 'shutting down');
    // If something hangs past the grace period, exit anyway (and say so by the status).
    const force = setTimeout(() => {
      logger.error('shutdown did not finish in time: exiting');
      process.exit(Exit.FAILURE);
    }, options.shutdownGraceMs + 5000);
    force.unref();
    herald.close(CloseReason.SHUTDOWN).then(
      () => {
        logger.info('stopped');
        process.exit(Exit.OK);
      },
      (e: unknown) => {
        logger.error({ err: e }, 'error while shutting down');
        process.exit(Exit.FAILURE);
      },
    );
  };
  // SIGTERM, SIGINT, and SIGHUP on a terminal: the terminal it ran in went away (an ssh session
  // closed on `npm start`): node's default ends the process at once, and the tabs got no close
  // notice, the lock file stayed.
  onSignal = shutdown;
  if (early) shutdown(early);
}

/** The signals that stop Herald gracefully (SIGHUP only on a terminal: see onTerminal). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/**
 * Whether Herald runs on a terminal: its standard input, output or error is
 * one. Asked once, at start (a terminal that hung up is still a terminal to
 * isatty, but asked afterwards /dev/tty would say otherwise). A SIGHUP means
 * "the terminal went away" only then; under a service manager, nohup or with
 * every stream redirected it is someone's `kill -HUP`.
 */
function onTerminal(): boolean {
  return isatty(0) || isatty(1) || isatty(2);
}

/**
 * The admin WebSocket endpoint a browser uses: under publicUrl when it is set
 * (README: publicUrl is used for printed hints), as the proxy in front serves
 * it (`https://panel.example.net/herald` → `wss://panel.example.net/herald/ws/admin`);
 * else on the listener itself.
 */
function adminEndpoint(publicUrl: string, reachable: string): string {
  // publicUrl was checked when Herald was built (an http or https URL), before this runs.
  const base = publicUrl !== '' ? new URL(publicUrl) : new URL(reachable);
  return `${base.protocol === 'https:' ? 'wss:' : 'ws:'}//${base.host}${base.pathname.replace(/\/+$/, '')}/ws/admin`;
}

/**
 * First start: where the generated secrets are and how to use them (never the secrets
 * themselves). tokenEndpoint: where a minted browser token is used, or undefined to leave
 * the `herald token` line out (a resolver other than token).
 */
function printFirstStart(file: string, generatedKeys: ReadonlyArray<'secret' | 'apiToken'>, tokenEndpoint: string | undefined, dataDir: string, flagsGaveDataDir: boolean, config: string | undefined, url: string | undefined): void {
  // The other commands find the secrets through the same data dir: spell it out unless it is the
  // default one here. A config file Herald was started with holds what the data dir does not (a
  // configured apiToken or secret, the port): without it `herald send` found no API token. Given
  // with its absolute path, the lines work from any directory, so the data dir is spelt out too.
  const spellDataDir = config !== undefined || flagsGaveDataDir || dataDir !== './data';
  const dd = `${config === undefined ? '' : ` --config ${shellQuote(config)}`}${spellDataDir ? ` --data-dir ${shellQuote(resolve(dataDir))}` : ''}`;
  const apiToken = generatedKeys.includes('apiToken');
  // Only what was generated: an API token from the environment is not in the file, and the
  // hint's `export` would have set HERALD_API_TOKEN to the file's empty one.
  const what = generatedKeys.includes('secret') ? (apiToken ? 'token-signing secret and API token' : 'token-signing secret') : 'API token';
  process.stderr.write(
    [
      '',
      `Herald generated its ${what} in ${file} (readable by this user only).`,
      `The herald command reads ${generatedKeys.length > 1 ? 'them' : 'it'} from there:`,
      ...(tokenEndpoint === undefined ? [] : [`  herald token --aid 1${dd}          # a browser token for ${tokenEndpoint}?token=…`]),
      `  herald send --aid 1 --title Hello --text "Just<br/>some<br/>text"${dd}${url === undefined ? '' : ` --url ${shellQuote(url)}`}`,
      ...(apiToken
        ? ['Your backend needs the API token (Authorization: Bearer …):', `  export HERALD_API_TOKEN="$(node -p 'require(process.argv[1]).apiToken' ${shellQuote(file)})"`]
        : ['Your backend uses the API token you configured (Authorization: Bearer …).']),
      '',
    ].join('\n'),
  );
}

/**
 * The `--url` the hint's `herald send` needs, or undefined when it finds this
 * server without one. The client commands find the server through the config
 * file (`config`, which the hint passes them), the environment and the data dir,
 * not through `herald start`'s own flags: after `herald start --port 8080` a
 * bare `herald send` asked port 19443 and could not reach Herald.
 */
function hintUrl(options: HeraldOptions, config: string | undefined, wanted: string): string | undefined {
  let found: string | undefined;
  try {
    found = serverUrl(loadCliOptions({ dataDir: options.dataDir, ...(config === undefined ? {} : { config }) }), {}, process.env);
  } catch {
    // The environment or config file alone is not a valid configuration (a flag fixed it): name the URL.
  }
  return found === wanted ? undefined : wanted;
}

/**
 * A path as one POSIX shell word: these lines are pasted into a shell, and a
 * data dir with a space (or a quote, or a `$`) must stay one argument.
 */
function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
