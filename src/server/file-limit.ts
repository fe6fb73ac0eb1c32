/**
 * The process's open-file limit, and how many tabs fit under it. Each tab
 * holds a file descriptor. Past the limit the kernel refuses the accept and
 * libuv drops the connection unanswered: the browser sees a hang-up, the log
 * says nothing, and the API's connections, the store's files and the
 * commands' pipes fail with EMFILE as well. Herald refuses tabs (503) before
 * that, keeping descriptors for everything else.
 */
import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ThrottledLog } from './throttled-log.js';

/**
 * The soft limit on open files (Node raises it to the hard limit as it
 * starts), or undefined where it cannot be read (not Linux) or is unlimited.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Tabs that fit under `fileLimit`, the rest kept for the API's and the
 * legacy door's connections, the store's files, the commands' pipes and the
 * logs: a tenth of the limit and at least 256, but never more than half.
 */
export function tabsWithin(fileLimit: number): number {
  return Math.max(Math.floor(fileLimit / 2), fileLimit - Math.max(256, Math.ceil(fileLimit / 10)));
}

/**
 * Descriptors kept for what is not a connection, whatever the load: node's own (the event loop
 * and its threads, the standard streams), the listeners, the store's files (the database, its
 * WAL and shared memory, the lock), the audit file and its journal, the logs. About 40 at rest
 * (measured with every listener open); the rest is room.
 */
export const FILES_RESERVE = 64;
/** Per command running at once: its /dev/null, its stdout and stderr pipes, and a /proc read. */
export const FILES_PER_COMMAND = 4;
/** The fewest connections the legacy door and the HTTP listeners each keep, however tight the limit (the start warns then). */
export const CONNECTIONS_MIN = 8;

/** The HTTP API connections (besides the tabs) the legacy door leaves when the limit leaves room for both. */
export const API_CONNECTIONS = 64;

/** What an open-file limit leaves for each kind of connection, besides the tabs. */
export interface ConnectionCaps {
  /** Legacy TCP connections at once: legacyMaxConnections, or less when the limit leaves less. */
  legacy: number;
  /** HTTP connections at once over all the HTTP listeners, tabs (upgraded connections) included. */
  http: number;
  /** What was kept for the rest: FILES_RESERVE, the commands' pipes, the resolver's connections (the sql pool, or the http resolver's look-ups). */
  reserve: number;
}

/**
 * Shares out `fileLimit` (see tabsWithin): `tabs` for the tabs, `reserve` for files, pipes and
 * the resolver's connections, and what is left between the legacy door (half, or
 * `legacyMaxConnections` when that is less) and the API's HTTP connections (the rest, on top of
 * the tabs, which are HTTP connections too until they close). Past these, connections are
 * closed as they come, so that the descriptors of the store, the audit and the commands stay
 * theirs: without caps, 128 tabs and 93 idle legacy connections took all 256 descriptors, and
 * handshakes were dropped unanswered, commands failed with "spawn EMFILE", the store's writes
 * failed and audit records were lost.
 */
export function connectionCaps(fileLimit: number, tabs: number, legacyMaxConnections: number, reserve: number): ConnectionCaps {
  const spare = Math.max(0, fileLimit - tabs - reserve);
  // Half, or all but API_CONNECTIONS where that is more: a backend's API clients are few, and
  // halving would lower the default legacyMaxConnections (and warn) at every common limit.
  const legacy = Math.min(legacyMaxConnections, Math.max(CONNECTIONS_MIN, Math.floor(spare / 2), spare - API_CONNECTIONS));
  return { legacy, http: tabs + Math.max(CONNECTIONS_MIN, spare - legacy), reserve };
}

/** What filesReserve reads of the options. */
export interface ReserveOptions {
  commandsEnabled: boolean;
  commandsConcurrency: number;
  authResolver: string;
  sqlPoolSize: number;
  httpResolverConcurrency: number;
}

/**
 * The descriptors `connectionCaps` keeps for everything but the listeners' connections, for these
 * options: the resolver's connections to the panel among them, one per connection of the sql
 * resolver's pool, or one per look-up the http resolver has at the panel at once. Left out, a
 * storm of handshakes with made-up cookies at a slow panel (each a look-up) took the descriptors
 * the reserve was for, and commands failed with "spawn EMFILE".
 */
export function filesReserve(options: ReserveOptions): number {
  return FILES_RESERVE
    + (options.commandsEnabled ? FILES_PER_COMMAND * options.commandsConcurrency : 0)
    + (options.authResolver === 'sql' ? options.sqlPoolSize : 0)
    + (options.authResolver === 'http' ? options.httpResolverConcurrency : 0);
}

/**
 * The caps for a server holding `tabs` tabs at most, from the open-file limit read now;
 * undefined where it cannot be read (no caps then, as for the tabs). Said at start when the
 * limit leaves the legacy door fewer connections than legacyMaxConnections, and when the reserve
 * does not fit beside the tabs: the tabs and the fewest connections of each listener then take
 * descriptors the reserve counts on, and under load commands and the store may fail with EMFILE.
 */
export function connectionLimits(
  options: ReserveOptions & { legacyEnabled: boolean; legacyMaxConnections: number },
  tabs: number,
  logger: Pick<Logger, 'warn'>,
  fileLimit: number | undefined = openFileLimit(),
): ConnectionCaps | undefined {
  if (fileLimit === undefined) return undefined;
  const caps = connectionCaps(fileLimit, tabs, options.legacyEnabled ? options.legacyMaxConnections : 0, filesReserve(options));
  // The HTTP listener holds the tabs and CONNECTIONS_MIN more at least, the legacy door CONNECTIONS_MIN.
  if (tabs + caps.reserve + (options.legacyEnabled ? 2 : 1) * CONNECTIONS_MIN > fileLimit) {
    // What the options add to FILES_RESERVE, named so that the operator knows what to lower.
    const takers = {
      ...(options.commandsEnabled ? { commandsConcurrency: options.commandsConcurrency } : {}),
      ...(options.authResolver === 'sql' ? { sqlPoolSize: options.sqlPoolSize } : {}),
      ...(options.authResolver === 'http' ? { httpResolverConcurrency: options.httpResolverConcurrency } : {}),
    };
    const named = Object.entries(takers).map(([name, n]) => `${name} ${n}`).join(', ');
    logger.warn(
      { openFileLimit: fileLimit, maxTabs: tabs, reserve: caps.reserve, ...takers },
      `the open-file limit (${fileLimit}) leaves too few descriptors beside ${tabs} tabs for the ${caps.reserve} kept for the store, the audit file, commands and the resolver's connections${named === '' ? '' : ` (${named})`}: under load, commands and the store may fail with EMFILE; raise the limit (LimitNOFILE= in a systemd unit, ulimit -n), or lower maxTabs or those options`,
    );
  }
  if (options.legacyEnabled && caps.legacy < options.legacyMaxConnections) {
    logger.warn(
      { legacyMaxConnections: options.legacyMaxConnections, maxConnections: caps.legacy, openFileLimit: fileLimit, maxTabs: tabs, httpConnections: caps.http },
      `legacyMaxConnections (${options.legacyMaxConnections}) is more than the open-file limit (${fileLimit}) leaves for the legacy door: it takes ${caps.legacy} connections at most, the HTTP listeners ${caps.http} (tabs included), ${caps.reserve} descriptors are kept for the store, the audit file and commands; raise the limit (LimitNOFILE= in a systemd unit, ulimit -n) for more`,
    );
  }
  return caps;
}

const OUT_OF_DESCRIPTORS = new Set(['EMFILE', 'ENFILE']);

/** Whether `err` says the process (EMFILE) or the system (ENFILE) has no descriptor left. */
export function outOfDescriptors(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && OUT_OF_DESCRIPTORS.has(code);
}

/**
 * At most `most` connections open at once over the servers it watches (the public HTTP
 * listener and the old daemon's ports share one count, as they share the descriptors): one
 * past it is closed as it is accepted, unanswered, and said in a throttled log line. An accept
 * that fails for want of a descriptor is said there too: libuv otherwise closes such
 * connections without a word.
 */
export class ConnectionCap {
  readonly most: number;
  readonly #log: ThrottledLog;
  readonly #logger: Pick<Logger, 'warn' | 'info' | 'error'>;
  /** The connections open now: a Set, not a count, as node emits `connection` again for one handed back from an `Upgrade: h2c` (other-upgrade.ts), and each such request counted it once more until new connections were all refused. */
  readonly #sockets = new Set<Socket>();
  /** One function for every connection's close, not a closure each (the connect path is measured). */
  readonly #closed: (this: Socket) => void;

  constructor(most: number, logger: Pick<Logger, 'warn' | 'info' | 'error'>, now: () => number = () => performance.now()) {
    this.most = most;
    this.#logger = logger;
    const sockets = this.#sockets;
    this.#closed = function (this: Socket): void {
      sockets.delete(this);
    };
    this.#log = new ThrottledLog(logger, now, {
      summary: (byReason, windowMs, perWindow) => ({
        fields: { refused: Object.values(byReason).reduce((a, b) => a + b, 0), byReason, windowMs, most },
        message: `HTTP connections refused and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
      }),
    });
  }

  /** Connections open now over the watched servers. */
  get open(): number {
    return this.#sockets.size;
  }

  /** The connections open now over the watched servers, tabs included (a shutdown ends those that sent nothing). */
  get sockets(): ReadonlySet<Socket> {
    return this.#sockets;
  }

  watch(server: Server): void {
    // Before node's own listener: a connection past the cap is closed before a parser is made for it.
    server.prependListener('connection', (socket: Socket) => {
      if (this.#sockets.has(socket)) return;
      if (this.#sockets.size >= this.most) {
        socket.destroy();
        this.#log.log('warn', 'cap', { peer: socket.remoteAddress, most: this.most }, `HTTP connection closed unanswered: ${this.most} are open, what the open-file limit allows (tabs included); raise the limit (LimitNOFILE=, ulimit -n)`);
        return;
      }
      this.#sockets.add(socket);
      // `on`, not `once`: 'close' comes once, and `once` wraps the listener in a new closure each time.
      socket.on('close', this.#closed);
    });
    server.on('error', (err: Error) => {
      if (outOfDescriptors(err)) this.#log.log('warn', 'descriptors', { err: err.message }, 'HTTP connection not accepted: the process has no file descriptor left (EMFILE); raise the limit (LimitNOFILE=, ulimit -n)');
      // A listen that fails (a port in use) is its caller's to report; once listening, only an accept fails.
      else if (server.listening) this.#logger.error({ err: err.message }, 'HTTP listener error');
    });
  }

  /** Says what the window counted and did not log one by one (at shutdown). */
  flush(): void {
    this.#log.flush();
  }
}
