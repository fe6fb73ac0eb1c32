/**
 * Herald's options: one schema with defaults and units, parsed once at the
 * boundary (defaults < config file < environment < flags), then frozen.
 * README's configuration table is generated from this schema
 * (`node dist/cli/main.js config --markdown`), and a test keeps the two in step.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { configFileProblem } from './path-trust.js';
import { HeraldError } from './errors.js';
import { SERVER_STOP_GRACE_MS } from './auth/sql-pool.js';

const Port = (description: string, dflt: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: dflt, description });
const Millis = (description: string, dflt: number, minimum = 0, maximum?: number) =>
  Type.Integer({ minimum, ...(maximum === undefined ? {} : { maximum }), default: dflt, description, unit: 'ms' });
/**
 * The longest delay Node's setTimeout/setInterval take (its TIMEOUT_MAX, 2^31 − 1 ms, about
 * 24.8 days). Past it Node warns (TimeoutOverflowWarning) and fires after 1 ms: a kill grace
 * of 3,000,000,000 ms would SIGKILL at once, a prune interval would prune every millisecond.
 * Every option that sets a timer is bounded by it (a smaller bound where the value is
 * multiplied or added to first), so such a value is refused at start instead.
 */
export const TIMER_MAX_MS = 2_147_483_647;
/** The browser library drops a connection silent for 2.5 heartbeats (DEAD_FACTOR in src/client/herald-client.ts), on a timer of that length. */
const HEARTBEAT_MAX_MS = Math.floor(TIMER_MAX_MS / 2.5);
/** `herald start` forces the exit 5 s after the shutdown grace (src/cli/start.ts), on a timer. */
const SHUTDOWN_GRACE_MAX_MS = TIMER_MAX_MS - 5000;
/** The sql resolver's pools give a query SERVER_STOP_GRACE_MS past sqlTimeoutMs before giving its connection up, on a timer. */
const SQL_TIMEOUT_MAX_MS = TIMER_MAX_MS - SERVER_STOP_GRACE_MS;
/**
 * The longest lifetime of a browser token, 31 days: what `herald token --ttl`, POST
 * /api/v1/tokens and the SDK (MAX_CONNECT_TOKEN_TTL_SEC) allow when one is asked for. The
 * default lifetime is bounded by it too: without a bound, HERALD_TOKEN_TTL_MS=9007199254740991
 * minted tokens valid for 287,000 years, with an expiry past what a JavaScript Date holds.
 */
const TOKEN_TTL_MAX_MS = 31 * 86_400_000;
const StringList = (description: string, dflt: string[], extra: Record<string, unknown> = {}) =>
  Type.Array(Type.String(), { default: dflt, description, ...extra });

/**
 * The option schema. Each entry: type, default, unit, and why you would change it.
 * `secret: true` keeps a value out of logs and `herald config`; `secretValues: true`
 * marks a KEY=VALUE list whose values may be secrets (shown as KEY=(set)); `secretQuery: true`
 * a URL whose query's values may be (shown as NAME=(set)); `generated: true`
 * marks the secrets ensureSecrets (secrets.ts) generates when left empty, the
 * only ones README's table shows as "(generated)".
 */
export const OptionsSchema = Type.Object({
  host: Type.String({ default: '127.0.0.1', description: 'Address of the public listener (HTTP API, WebSocket endpoints, demo page); an IPv6 address without brackets (::1). Use 0.0.0.0 behind a reverse proxy only with an Origin allowlist.' }),
  port: Port('Port of the public listener. 0 picks a free port (tests).', 19443),
  publicUrl: Type.String({ default: '', description: 'The URL browsers use to reach Herald (e.g. https://panel.example.net/herald). Used for the default Origin allowlist and printed hints. Empty: http://HOST:PORT.' }),
  legacyEnabled: Type.Boolean({ default: true, description: 'Run the old daemon\'s TCP control protocol ("Internal" plugin).' }),
  legacyHost: Type.String({ default: '127.0.0.1', description: 'Address of the legacy TCP listener (an IPv6 address without brackets). Anything but loopback requires legacyToken: the protocol trusts its peers by address.' }),
  legacyPort: Port('Port of the legacy TCP listener (the old daemon used 19444).', 19444),
  legacyToken: Type.String({ default: '', description: 'Shared secret of the legacy protocol, sent as TOKEN. On a loopback listener, MESSAGE requests must carry it (the old client sends it only with MESSAGE) and a wrong TOKEN on any request is refused; on any other address every request must carry it, and it is required.', secret: true }),
  legacyMaxRequestBytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Largest single legacy request, in bytes; a longer value closes the connection with an error.', unit: 'bytes' }),
  legacyMaxBufferedBytes: Type.Integer({ minimum: 1024, default: 67108864, description: 'Bytes of unfinished legacy requests held at once, over all connections (each up to legacyMaxRequestBytes). A connection whose request would pass it is answered with an error and closed: 1024 connections each holding a 1 MiB request unfinished would otherwise hold 1 GiB. Requests that arrive whole in one read are never held, but for the rest of a read behind 64 queued requests. At least legacyMaxRequestBytes.', unit: 'bytes' }),
  legacyMaxConnections: Type.Integer({ minimum: 1, default: 1024, description: 'Most legacy TCP connections open at once; further ones are closed at once. Each backend process holds one. Fewer where the open-file limit leaves fewer beside the tabs (logged at start; docs/deploy.md).' }),
  legacyIdleTimeoutMs: Millis('Closes a legacy connection that sent nothing for this long. 0 = never: the old client keeps one connection open for its whole life and does not reconnect, so only set this if every client reconnects.', 0, 0, TIMER_MAX_MS),
  legacyRequestTimeoutMs: Millis('A legacy request that has started arriving must be complete within this, or the connection is closed (a stalled or hostile peer cannot hold a buffer forever).', 30000, 100, TIMER_MAX_MS),
  adminPort: Port('Compatibility: a separate WebSocket port for admins where any path is accepted (the old daemon used 19443 on its own). 0 = off.', 0),
  userPort: Port('Compatibility: a separate WebSocket port for users, any path (the old daemon used 19445). 0 = off.', 0),
  dataDir: Type.String({ default: './data', description: 'Where state lives: the SQLite store, generated secrets.' }),
  secret: Type.String({ default: '', description: 'Secret that signs browser tokens (at least 32 characters). Empty: generated on first start and kept in DATA_DIR/secrets.json (mode 0600).', secret: true, generated: true }),
  previousSecret: Type.String({ default: '', description: 'The secret before a rotation: tokens signed with it are still accepted, so tabs are not dropped while the new one spreads.', secret: true }),
  apiToken: Type.String({ default: '', description: 'Bearer token for the HTTP API (at least 16 characters, printable ASCII). Empty: generated on first start and kept in DATA_DIR/secrets.json.', secret: true, generated: true }),
  allowedOrigins: StringList('Origins allowed to open a WebSocket: exact (https://panel.example.net) or wildcard subdomains (https://*.example.net). Empty: the public URL\'s origin and http(s)://localhost / 127.0.0.1 / [::1] on any port. "*" allows any (not recommended).', []),
  allowMissingOrigin: Type.Boolean({ default: true, description: 'Admit handshakes with no Origin header (non-browser clients: browsers always send one). Credentials are still required.' }),
  demo: Type.Union([Type.Literal('auto'), Type.Boolean()], { default: 'auto', description: 'Serve the demo page at /demo and its endpoints, which mint a token for any person and send to anyone: a development tool, never for production. auto = on only while the public listener is on loopback (host), no publicUrl and no allowedOrigins are set and authResolver is token, as on a developer\'s machine (it is logged when on); true forces it on (a warning is logged where it is reachable from elsewhere); false = off. On a loopback listener it answers only to a loopback Host (localhost, 127.x, [::1]), so a web site re-pointed at 127.0.0.1 (DNS rebinding) gets 403.' }),
  logLevel: Type.Union([Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'), Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')], { default: 'info', description: 'Log level.' }),
  logPretty: Type.Union([Type.Literal('auto'), Type.Boolean()], { default: 'auto', description: 'Pretty logs: auto = when stdout is a terminal, otherwise JSON lines.' }),
  heartbeatMs: Millis('How often the server PINGs each tab. A tab that has not answered by the next PING is closed (4408). At most 858993458 (about 9.9 days): the browser library gives up on a silent connection after 2.5 heartbeats, on a timer, and a timer cannot exceed 2147483647 ms.', 25000, 100, HEARTBEAT_MAX_MS),
  acksPerSecond: Type.Integer({ minimum: 0, default: 250, description: 'About how many acks of people\'s own streams this node\'s tabs send a second, all together: each new tab is asked (WELCOME\'s ACK_MS) to wait at least tabs/this seconds between its acks, the tabs counted up to a power of two so that the wait does not tell a page how many there are (the browser library waits 1 s when that is longer, so below this many tabs nothing changes), and a tab that acks is told the wait asked for now (a PACE frame, with its next frame) once the tabs doubled or halved since it was told. Each ack costs the server a wake-up and a frame, and with many busy tabs acks outnumber the sends. Lower: less CPU, later `acknowledged` statuses. 0 = no pacing (every tab acks about once a second).' }),
  maxFrameBytes: Type.Integer({ minimum: 256, default: 65536, description: 'Largest frame a browser may send; a larger one closes the tab with 4413 after a close notice (past twice this, `ws` closes it with 1009 unread). Browsers only send small control frames.', unit: 'bytes' }),
  maxBodyBytes: Type.Integer({ minimum: 1024, default: 1048576, description: 'Largest HTTP API request body.', unit: 'bytes' }),
  requestTimeoutMs: Millis('An HTTP request must arrive whole, headers and body, within this, or Herald answers 408 and closes the connection: a client that trickles a body cannot hold a connection and its buffer for ever. Checked a few times per period (at most every 5 s), so a request may have up to a quarter more. WebSocket tabs are not affected once connected. 0 = no limit (behind a proxy that enforces its own).', 30000),
  maxBufferedBytes: Type.Integer({ minimum: 65536, default: 4194304, description: 'A tab whose unsent backlog exceeds this is a slow consumer and is closed (it resumes on reconnect).', unit: 'bytes' }),
  closeTimeoutMs: Millis('How long a closing tab may take to answer the close handshake (a close of Herald\'s: slow consumer, kick, heartbeat, shutdown; or of its own, or a TCP half-close) before Herald destroys the socket and frees what it still held unsent for it (up to maxBufferedBytes). A peer that stops reading never answers: `ws` alone waited 30 s. A browser answers in one round trip, after reading what was queued before the close frame; a tab cut off sooner sees 1006 instead of the close code, and reconnects. At most 2147483647 (a timer).', 3000, 100, TIMER_MAX_MS),
  maxTabsPerPerson: Type.Integer({ minimum: 0, default: 100, description: 'Most tabs one person (an admin or a user) may have open on this node; a handshake past it is refused with 429 HERALD_ERR_TOO_MANY_TABS before the upgrade, and the browser library retries later (a tab that closes frees a place). A bound on what one valid credential can hold open: each tab costs memory and a share of every send to that person. 0 = no limit.' }),
  maxTabs: Type.Integer({ minimum: 0, default: 0, description: 'Most tabs open on this node at once, over all people; a handshake past it is refused with 503 HERALD_ERR_UNAVAILABLE before the upgrade (logged, at most every 10 s), and the browser library retries later. Each tab is a file descriptor, and past the process\'s open-file limit connections are dropped unanswered while the API, the store and commands fail too. 0 = what the open-file limit allows (read at start from /proc/self/limits; Node raises the soft limit to the hard one): the limit less a tenth of it, at least 256 kept for everything else but never more than half (a limit of 256 gives 128 tabs); no limit where it cannot be read.' }),
  heapGrowingPercent: Type.Integer({ minimum: 0, maximum: 1000, default: 300, description: 'How far V8 lets the old generation grow past what its last full collection kept before the next one (V8\'s --heap-growing-percent, set at start; set for the whole process). Herald keeps its retained notifications outside the heap, and from so small a heap V8 ran a full collection every half second under load. 0 = V8\'s own choice; a --heap-growing-percent on node\'s command line wins.', unit: '%' }),
  parallelScavenge: Type.Union([Type.Literal('auto'), Type.Boolean()], { default: 'auto', description: 'Whether V8 splits each young-generation collection (scavenge) across helper threads (V8\'s --parallel-scavenge, set at start; set for the whole process). auto = false on a machine with 2 CPUs or fewer as os.availableParallelism() counts them (a container\'s CPU quota is not seen): there the helpers wait for a core that the event loop and everything else on the box want, which lengthens the pause and costs CPU; else V8\'s own default (true). A --parallel-scavenge or --no-parallel-scavenge on node\'s command line wins.' }),
  allocationSitePretenuring: Type.Boolean({ default: false, description: 'Whether V8 may allocate the objects of an allocation site straight into the old generation once many of them outlived a young collection (V8\'s --allocation-site-pretenuring, set at start; set for the whole process). Off by default: the short-lived objects of a batch (a store flush, an ack flush) are all alive while it runs, a young collection that lands inside one makes V8 pretenure them for good, and every young collection after is slower (with 10,000 tabs, 14 ms a pause against 8–9). A --allocation-site-pretenuring or --no-allocation-site-pretenuring on node\'s command line wins.' }),
  store: Type.Union([Type.Literal('memory'), Type.Literal('sqlite')], { default: 'sqlite', description: 'Where notifications wait for tabs: sqlite (durable: the file sqliteFile under DATA_DIR) or memory (lost on restart: every stream gets a new EPOCH and tabs are told so).' }),
  sqliteFile: Type.String({ default: 'herald.sqlite', description: 'The SQLite store\'s file, relative to DATA_DIR (or absolute). Deleting it while Herald is stopped starts every stream over with a new EPOCH.' }),
  sqliteSynchronous: Type.Union([Type.Literal('normal'), Type.Literal('full')], { default: 'normal', description: 'SQLite durability under WAL. normal: a killed process loses nothing; commits are fsynced in the background within about a second, so a power cut may lose the last second of sends. full: one fsync per write batch; survives power cuts, costs send rate on slow disks.' }),
  pruneIntervalMs: Millis('How often expired notifications are deleted from the store, in the background and in small batches. 0 = never (expired ones are still never delivered).', 60000, 0, TIMER_MAX_MS),
  defaultTtlMs: Millis('How long a notification waits for a tab when the sender gives no TTL. 0 = only tabs open now.', 86400000),
  maxTtlMs: Millis('Upper bound of a sender\'s TTL (at most ten years).', 604800000, 0, 315_360_000_000),
  maxPerStream: Type.Integer({ minimum: 1, default: 1000, description: 'Notifications kept per person (and per broadcast stream); beyond it the oldest are dropped.' }),
  maxSendBytes: Type.Integer({ minimum: 1024, default: 16777216, description: 'Most a send or a batch (one request: POST /api/v1/send, /send/batch, a legacy MESSAGE) may make Herald store and deliver: the size of each notification\'s JSON, counted once per recipient (a broadcast once). Past it the whole request is refused with 413 HERALD_ERR_TOO_LARGE before anything is stored. A body of maxBodyBytes can name 10,000 people, and one large text sent to each was copied, framed and stored for each: 100 × 800 KB held the event loop 8.7 s, 10,000 × 820 KB crashed the process. The default is 80,000 panel notifications of 200 bytes, or one of 160 KB to 100 people.', unit: 'bytes' }),
  maxRetainedBytes: Type.Integer({ minimum: 0, default: 268435456, description: 'Most the notifications the store retains for tabs (acknowledged or not, until they expire or maxPerStream drops them) may come to, counted as their JSON\'s length (a byte a character for ASCII; text in other scripts takes two in memory); a stored send that would pass it is refused with 503 HERALD_ERR_UNAVAILABLE (details.reason "store full") until older ones expire or maxPerStream drops them (what has expired is let go as soon as a send needs the room, not at the next pruning pass), while live-only sends (ttl 0) still go. The store holds them all in memory (the SQLite store loads them at start), those over 16,384 characters on the JavaScript heap: without a bound, about 4,000 retained sends of 1 MiB ended the process out of heap, and again at every restart. The default, 1.3 million notifications of 200 bytes, is a small share of node\'s default heap (2–4 GB on 64-bit machines with 8 GB or more); with a smaller heap (--max-old-space-size) keep it under a quarter of that. 0 = no cap. `/api/v1/status` shows storeCounts.retainedBytes against it.', unit: 'bytes' }),
  replayBatch: Type.Integer({ minimum: 1, default: 500, description: 'Notifications replayed at most per store read, and at most per turn of the event loop by all the tabs replaying on the node together: a long replay lets other tabs, requests and heartbeats be served between its batches.' }),
  tokenTtlMs: Millis('Default lifetime of a browser token minted by `herald token` or the API. At most 31 days (2678400000), as a lifetime asked for explicitly (`herald token --ttl`, POST /api/v1/tokens).', 43200000, 1000, TOKEN_TTL_MAX_MS),
  tokenClockSkewMs: Millis('How far the clock of a backend that mints browser tokens itself (the SDK\'s mintConnectToken, on another host) may be from Herald\'s: a token is admitted until this long after its `exp` (and this long before its `nbf`), and a tab is closed for an expired token (4419) only then. Without it, a backend whose clock is a minute behind mints tokens that live a minute less, and short-lived ones not at all. 0 = exact. At most an hour.', 0, 0, 3_600_000),
  commandsEnabled: Type.Boolean({ default: true, description: 'Run background commands for admins (legacy COMMAND, POST /api/v1/commands, `herald run`). Off: every request is refused with HERALD_ERR_COMMANDS_DISABLED.' }),
  commandsAllow: StringList('Programs that may run: names (resolved once at start-up against commandsPath) or absolute paths. A request may name a program by its name or by any path that resolves to the same file; symlinks and `..` are resolved first. Never a shell.', ['ping']),
  commandsArgRules: StringList('Optional per-program argument rules, each "PROGRAM=REGEX": every argument of that program must match REGEX entirely (e.g. "ping=^(-[cqnW]|[0-9]{1,3}|127\\.0\\.0\\.1)$"). A rule holds for every allowed entry that runs the same file (cat and /bin/cat under a rule for /usr/bin/cat). Programs without a rule accept any arguments (they are never interpreted by a shell). In the environment or --set give the list as JSON (\'["ping=…"]\'): a comma splits the list there, and a regular expression may hold one.', []),
  commandsPath: Type.String({ default: '', description: 'Colon-separated directories searched (once, at start-up) for allowed program names. Empty: the server\'s own PATH, without its relative entries and directories inside a node_modules (npm start puts node_modules/.bin first, where a dependency\'s bin would shadow the system\'s program). A directory or file another user could write is skipped (docs/commands.md).' }),
  commandsCwd: Type.String({ default: '', description: 'Working directory of every command. Empty: the system temporary directory. Must exist at start-up.' }),
  commandsEnv: StringList('The whole environment of every command, as KEY=VALUE entries (nothing is inherited from the server: its secrets are not in a program\'s environment; a program runs as Herald\'s user, so one that reads /proc/PID/environ of its parent or DATA_DIR/secrets.json can still see them: allow only programs that do not). Its values are never logged; herald config shows them as KEY=(set), except PATH, LANG, LANGUAGE, LC_* and TZ.', ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8'], { secretValues: true }),
  commandsNotes: StringList('The bracketed lines the default final notification of a command adds after its output (a command sent without SUCCESS or ERROR: docs/commands.md), in the panel\'s language, as NAME=TEXT entries; a note not given keeps its English default, and an empty TEXT leaves the line out. The notes and their placeholders: exitStatus ({code}), killedBy ({signal}), timedOut ({seconds}), cancelledByAdmin ({admin}), cancelledByApi, cancelledAtShutdown, couldNotRun ({error}: the system\'s message), outputCut, leftRunning. An unknown name or placeholder stops start-up. In the environment or --set give the list as JSON when an entry holds a comma.', []),
  commandsTimeoutSec: Type.Number({ minimum: 0.001, maximum: 604800, default: 600, description: 'Timeout of a command that asks for none (the old daemon used 600 s). On timeout the whole process group gets SIGTERM, then SIGKILL after commandsKillGraceMs.', unit: 's' }),
  commandsMaxTimeoutSec: Type.Number({ minimum: 0.001, maximum: 604800, default: 3600, description: 'Upper bound of a requested timeout; a longer one is cut to this.', unit: 's' }),
  commandsKillGraceMs: Millis('After SIGTERM (timeout, cancel, shutdown), how long the process group has before SIGKILL. Also how long a finished program\'s left-over children may keep its output open. At shutdown, at most what is left of shutdownGraceMs.', 2000, 0, TIMER_MAX_MS),
  commandsOutputCap: Type.Integer({ minimum: 1024, default: 1048576, description: 'Output (stdout and stderr together) kept per command; beyond it output is read and dropped, and the run is marked TRUNCATED.', unit: 'bytes' }),
  commandsConcurrency: Type.Integer({ minimum: 1, default: 4, description: 'Commands running at once on this node.' }),
  commandsPerAdminConcurrency: Type.Integer({ minimum: 1, default: 2, description: 'Commands running at once for one admin.' }),
  commandsQueueSize: Type.Integer({ minimum: 0, default: 32, description: 'Commands waiting for a free slot; when full, a request is refused with HERALD_ERR_QUEUE_FULL. One admin may have at most commandsQueueSize × commandsPerAdminConcurrency / commandsConcurrency of them (rounded up), so one admin cannot fill it.' }),
  commandsProgressMs: Millis('Least time between two COMMAND_PROGRESS frames of one command (live output to the admin\'s tabs).', 500, 50, TIMER_MAX_MS),
  commandsAuditFile: Type.String({ default: 'commands-audit.sqlite', description: 'SQLite file that keeps the audit trail of commands (who asked, through which door, program, arguments, times, outcome; also every refusal), read with GET /api/v1/commands/audit. Relative to DATA_DIR. Empty: structured log lines only.' }),
  commandsAuditKeep: Type.Integer({ minimum: 1, default: 100000, description: 'Audit records of runs kept in commandsAuditFile; the oldest go first. Refused requests are kept apart, a tenth as many, so they cannot push a run out.' }),
  commandsHistory: Type.Integer({ minimum: 1, default: 200, description: 'Finished commands kept in memory for status look-ups and GET /api/v1/commands.' }),
  // --- Session resolvers (docs/auth.md) ---
  authResolver: Type.Union([Type.Literal('token'), Type.Literal('sql'), Type.Literal('http')], { default: 'token', description: 'Who decides which admin or user a WebSocket belongs to: token (signed tokens, the embedded default), sql (look the panel\'s session id up in its own database), http (ask the panel over HTTP).' }),
  sqlUrl: Type.String({ default: '', description: 'Database of the panel for the sql resolver: mysql://USER:PASS@HOST:PORT/DB (MySQL/MariaDB) or postgres://USER:PASS@HOST:PORT/DB (PostgreSQL).', secret: true }),
  sqlPreset: Type.Union([Type.Literal('abills'), Type.Literal('custom')], { default: 'abills', description: 'abills: the old daemon\'s look-ups (admins by the sid cookie or ADMINSID header in web_online, users by the USERSID header in web_users_sessions); every sql* field left empty takes the preset\'s value. custom: only what you configure.' }),
  sqlAdminQuery: Type.String({ default: '', description: 'Query that turns an admin\'s session id into an admin id (first column of the first row), with exactly one parameter: ? for MySQL, $1 for PostgreSQL. abills: SELECT aid FROM web_online WHERE sid = ?. Empty with custom: admins are refused.' }),
  sqlUserQuery: Type.String({ default: '', description: 'Query that turns a user\'s session id into a user id, one parameter (? or $1). abills: SELECT uid FROM web_users_sessions WHERE sid = ?. Empty with custom: users are refused.' }),
  sqlAdminCookie: Type.String({ default: '', description: 'Cookie holding an admin\'s session id. abills: sid.' }),
  sqlAdminHeader: Type.String({ default: '', description: 'Header holding an admin\'s session id (non-browser clients; it wins over the cookie). abills: ADMINSID.' }),
  sqlUserCookie: Type.String({ default: '', description: 'Cookie holding a user\'s session id. abills: none (set it if your portal\'s cookie reaches Herald).' }),
  sqlUserHeader: Type.String({ default: '', description: 'Header holding a user\'s session id (it wins over the cookie). abills: USERSID.' }),
  sqlPoolSize: Type.Integer({ minimum: 1, maximum: 100, default: 5, description: 'Connections the sql resolver keeps open to the panel\'s database at most.' }),
  sqlTimeoutMs: Millis(`Longest a sql resolver look-up takes: the wait for a pooled connection, connecting and the query together; beyond it the look-up is "unavailable" (HTTP 503). A look-up that has no connection after half of it gets 503 at once, so that every query started has the other half. The database also stops a query after this long (statement_timeout, max_statement_time or max_execution_time). At most ${SQL_TIMEOUT_MAX_MS} (a query's connection is given up ${SERVER_STOP_GRACE_MS} ms after it, on a timer, and a timer cannot exceed ${TIMER_MAX_MS} ms).`, 3000, 100, SQL_TIMEOUT_MAX_MS),
  httpResolverUrl: Type.String({ default: '', description: 'URL the http resolver POSTs each handshake to (with its Cookie header and httpResolverHeaders). 200 {"kind","id"} admits, 401/403 refuse, anything else is "unavailable". herald config shows its query\'s values as (set): a key for the panel may be there.', secretQuery: true }),
  httpResolverTimeoutMs: Millis('Longest an http resolver look-up takes, its wait for a turn (httpResolverConcurrency) and the panel\'s answer together; beyond it the look-up is "unavailable" (HTTP 503).', 3000, 50, TIMER_MAX_MS),
  httpResolverConcurrency: Type.Integer({ minimum: 1, maximum: 1000, default: 16, description: 'Look-ups the http resolver has at the panel at once at most (a reconnect storm of many sessions must not become as many requests at once). More wait their turn at most half of httpResolverTimeoutMs, then get HTTP 503 (the panel is always left the other half); past 100 × this many waiting, a handshake gets HTTP 503 at once and the tab retries later.' }),
  httpResolverHeaders: StringList('Handshake headers forwarded to httpResolverUrl besides Cookie (e.g. ADMINSID, Authorization).', []),
  authCacheMs: Millis('How long a positive sql/http answer is reused for the same session id. Bounds how many queries a reconnect storm makes. 0 = no cache.', 5000),
  authNegativeCacheMs: Millis('How long a refusal is reused for the same session id (shorter: a fresh login must work at once). 0 = no cache.', 1000),
  authCacheMaxEntries: Type.Integer({ minimum: 1, default: 100000, description: 'Session ids the resolver cache holds at most; the oldest are forgotten first. An entry takes about 300 bytes whatever the credential (100,000: about 30 MB), and is dropped when its answer expires.' }),
  sessionRecheckMs: Millis('How often live sessions are looked up again. Tabs whose session ended (logout: its row is gone; or it now admits someone else) are closed with 4401 "session ended" and the browser library stops; tabs whose signed token expired are closed with 4419 "credential expired" and the browser library reconnects, calling its token function for a fresh one. 0 = never.', 30000, 0, TIMER_MAX_MS),
  shutdownGraceMs: Millis('On SIGTERM, how long requests in flight may take before the process exits anyway. At most 2147478647 (`herald start` exits 5 s after it, on a timer, and a timer cannot exceed 2147483647 ms).', 10000, 0, SHUTDOWN_GRACE_MAX_MS),
});

/**
 * Every integer option without a bound of its own is at most 2^53 − 1: past it a number is no
 * longer an exact integer, and parts refused it at start with a stack trace instead of a
 * configuration error (node's HTTP server for requestTimeoutMs 1e16, the SQLite store for
 * maxPerStream 1e300).
 */
for (const schema of Object.values(OptionsSchema.properties) as TSchema[]) {
  if (schema.type === 'integer' && schema.maximum === undefined) schema.maximum = Number.MAX_SAFE_INTEGER;
}

export type HeraldOptions = Readonly<Static<typeof OptionsSchema>>;
export type OptionKey = keyof HeraldOptions;

/** `legacyPort` → `HERALD_LEGACY_PORT`. */
export function envName(key: string): string {
  return `HERALD_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

/** HERALD_* variables that are not options but are read: the config file's path, the client commands' server URL. */
const OTHER_ENV_NAMES: readonly string[] = ['HERALD_CONFIG', 'HERALD_URL'];

/**
 * HERALD_* variables in `env` that Herald does not read, each with the option's variable it
 * most likely meant, if one is close. A misspelt one (HERALD_APITOKEN, HERALD_DEMO_ENABLED)
 * is otherwise ignored without a word, and its option keeps its default. Not an error, as an
 * unknown key in the config file is: the prefix is not Herald's alone.
 */
export function unknownEnvironmentNames(env: NodeJS.ProcessEnv): Array<{ name: string; meant?: string }> {
  const known = Object.keys(OptionsSchema.properties).map(envName);
  const squash = (name: string) => name.replace(/_/g, '');
  const out: Array<{ name: string; meant?: string }> = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith('HERALD_') || known.includes(name) || OTHER_ENV_NAMES.includes(name)) continue;
    // The same letters but for underscores, or one or two letters off.
    const meant = known.find((k) => squash(k) === squash(name)) ?? known.find((k) => editDistance(k, name) <= 2);
    out.push(meant === undefined ? { name } : { name, meant });
  }
  return out;
}

/** Levenshtein distance (insertions, deletions, substitutions). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

function schemaOf(key: string): TSchema | undefined {
  // Own keys only: `constructor`, `toString` or `__proto__` in a config file or a --set are
  // unknown options, not the schema object's inherited members.
  return Object.hasOwn(OptionsSchema.properties, key) ? (OptionsSchema.properties as Record<string, TSchema>)[key] : undefined;
}

/** Turns an environment string (or a CLI `--set` value) into the type its option expects (numbers, booleans, lists). */
export function fromEnvString(key: string, raw: string): unknown {
  const schema = schemaOf(key);
  if (!schema) return raw;
  const type = schema.type as string | undefined;
  if (type === 'integer' || type === 'number') {
    // Plain decimal only, as the flags take it (context.ts, decimalFlag; a fraction where the
    // option is not an integer option): Number() also read 0xA4D2, 0b1, 0o17 and 1e3, so
    // HERALD_PORT=0xA4D2 listened on 42194 while --port 0xA4D2 was refused; and trimmed, `070`
    // was 70 where a shell user may mean octal, and `-0` was 0 (port 0: a random one). A minus
    // before any other number is kept, for the option's range to refuse (or take) it by its value.
    // Infinity is read as the number it names, so that its refusal shows it as such.
    if (/^-?Infinity$/.test(raw)) return Number(raw);
    const decimal = type === 'integer' ? /^-?(0|[1-9]\d*)$/ : /^-?(0|[1-9]\d*)(\.\d+)?$/;
    const n = Number(raw);
    if (!decimal.test(raw) || Object.is(n, -0)) {
      // Only the environment gets here (`--set` reads a number as JSON): the variable is the source.
      throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}" (environment ${envName(key)}): expected ${describeType(schema)} in plain decimal digits, as a flag takes it (no spaces, leading zero, sign, exponent or hex), got ${JSON.stringify(raw)}`);
    }
    return n;
  }
  if (type === 'boolean') return parseBool(raw);
  if (type === 'array') {
    const t = raw.trim();
    if (t.startsWith('[')) {
      try {
        return JSON.parse(t);
      } catch {
        return raw;
      }
    }
    return t === '' ? [] : t.split(',').map((s) => s.trim()).filter(Boolean);
  }
  if (schema.anyOf) {
    const b = parseBool(raw);
    return typeof b === 'boolean' ? b : raw;
  }
  return raw;
}

function parseBool(raw: string): unknown {
  const t = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  return raw;
}

/**
 * Whether `value`, given for option `key`, carries a secret: a secret option's value, except
 * sqlUrl's without a password or query (a URL that names only a user, host and database, for
 * a socket's or .pgpass's credentials); httpResolverUrl's with a password or a query (a key for
 * the panel may be there); a commandsEnv entry other than PATH, LANG, LC_* or TZ (herald config
 * shows its value as (set)). A value of the wrong type counts as a secret: loadOptions refuses it.
 */
export function carriesSecret(key: string, value: unknown): boolean {
  if (value === undefined || value === null || value === '') return false;
  if (key === 'sqlUrl' || SECRET_QUERY_OPTION_KEYS.includes(key)) return typeof value !== 'string' || urlCarriesSecret(value);
  if (SECRET_OPTION_KEYS.includes(key)) return true;
  if (SECRET_VALUES_OPTION_KEYS.includes(key)) {
    return !Array.isArray(value) || value.some((e) => typeof e !== 'string' || !PLAIN_VARIABLES.test(e.slice(0, Math.max(0, e.indexOf('=')))));
  }
  return false;
}

/** A password in the URL's user information, or a query with anything in it. */
function urlCarriesSecret(url: string): boolean {
  const q = url.indexOf('?');
  const query = q < 0 ? '' : url.slice(q + 1).split('#')[0]!;
  return maskUrlPassword(url) !== url || query !== '';
}

/**
 * What the config file's mode tells other users, for the secrets it sets: a warning when
 * users other than Herald's may read it (docs/deploy.md: `root:herald` mode 0640). Readable by
 * its group is fine when that group is this process's own (the deploy recipe's); by others never.
 */
function configFileExposure(file: string, st: Stats | undefined, keys: readonly string[]): string | undefined {
  if (st === undefined || keys.length === 0) return undefined;
  const group = st.gid === process.getegid?.() ? undefined : st.gid;
  const readable = (st.mode & 0o004) !== 0 || ((st.mode & 0o040) !== 0 && group !== undefined);
  if (!readable) return undefined;
  const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
  const names = keys.map((k) => `"${k}"`).join(', ');
  return `config file ${file} sets secrets (${names}) and is readable by other users (mode ${mode}${group === undefined ? '' : `, group ${group}`}): chmod 600 it, or 640 with the group Herald runs as (gid ${process.getegid?.() ?? '?'})`;
}

/** The warnings about the config file (see configFileExposure) of the options loadOptions built, by those options. */
const FILE_WARNINGS = new WeakMap<HeraldOptions, readonly string[]>();

/** Warnings to log at start about the configuration itself: a config file that sets secrets and other users may read. */
export function configFileWarnings(options: HeraldOptions): readonly string[] {
  return FILE_WARNINGS.get(options) ?? [];
}

export interface LoadOptionsInput {
  /** Path of a JSON config file (`--config` or HERALD_CONFIG). */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Already-typed overrides (CLI flags, tests). */
  overrides?: Partial<Record<OptionKey, unknown>>;
}

/**
 * Builds the frozen options. A bad value throws HERALD_ERR_CONFIG naming the
 * key, where it came from, and what was expected.
 */
export function loadOptions(input: LoadOptionsInput = {}): HeraldOptions {
  const env = input.env ?? process.env;
  const merged: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  const file = input.file ?? env.HERALD_CONFIG;
  // HERALD_CONFIG= (a variable left empty in an environment file) was skipped without a word, and
  // Herald ran on its defaults without the file; `--config ''` is refused (src/cli/context.ts).
  if (file !== undefined && file.trim() === '') {
    throw new HeraldError('HERALD_ERR_CONFIG', `${input.file === undefined ? 'HERALD_CONFIG' : 'the config file\'s path'} is empty: unset it, or name the config file`);
  }
  const warnings: string[] = [];
  if (file !== undefined) {
    const distrusted = configFileProblem(file);
    if (distrusted !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', distrusted);
    let parsed: unknown;
    let st: Stats | undefined;
    try {
      // A byte order mark (editors on Windows write one) is not JSON, and V8's message for it
      // quotes the text, so it was refused as "not valid JSON" with nothing to go on. Node's own
      // require() of a .json file skips it too.
      parsed = JSON.parse(readFileSync(file, 'utf8').replace(/^\uFEFF/, ''));
      // Its mode, for the warning below: a file it just read is there (but for a race, which only costs a warning).
      st = statSync(file, { throwIfNoEntry: false });
    } catch (e) {
      // V8 quotes the text around some syntax errors (`Unexpected token 'h',
      // ..."piToken": hunter2"... is not valid JSON`), and the file holds
      // secrets: such a message is not repeated. (Its other messages give a
      // position and no text.)
      const message = (e as Error).message;
      const why = /is not valid JSON$/.test(message) ? 'not valid JSON' : message;
      throw new HeraldError('HERALD_ERR_CONFIG', `cannot read config file ${file}: ${why}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new HeraldError('HERALD_ERR_CONFIG', `config file ${file} must hold a JSON object`);
    }
    for (const [k, v] of Object.entries(parsed)) {
      if (k === '$schema' || k.startsWith('//')) continue;
      // Quoted as JSON: a key is anyone's text, and a control character in it must not reach the terminal as it is.
      if (!schemaOf(k)) throw new HeraldError('HERALD_ERR_CONFIG', `config file ${file}: unknown option ${JSON.stringify(k)}`);
      merged[k] = v;
      source[k] = `config file ${file}`;
    }
    const exposure = configFileExposure(file, st, Object.keys(merged).filter((k) => carriesSecret(k, merged[k])));
    if (exposure !== undefined) warnings.push(exposure);
  }
  for (const k of Object.keys(OptionsSchema.properties)) {
    const raw = env[envName(k)];
    if (raw !== undefined) {
      merged[k] = fromEnvString(k, raw);
      source[k] = `environment ${envName(k)}`;
    }
  }
  for (const [k, v] of Object.entries(input.overrides ?? {})) {
    if (v === undefined) continue;
    if (!schemaOf(k)) throw new HeraldError('HERALD_ERR_CONFIG', `unknown option ${JSON.stringify(k)}`);
    merged[k] = v;
    source[k] = 'command line';
  }
  const withDefaults = Value.Default(OptionsSchema, Value.Clone(merged)) as Record<string, unknown>;
  const first = [...Value.Errors(OptionsSchema, withDefaults)][0];
  if (first) {
    const key = first.path.split('/')[1] ?? '';
    const schema = schemaOf(key);
    const expected = schema ? describeType(schema) : 'a known option';
    // A secret's value is never printed, not even a wrong one: this message
    // reaches stderr and the service manager's journal.
    // JSON writes Infinity (HERALD_PORT=Infinity, --set port=1e999) and NaN as null: shown as they are.
    const got = schema?.secret === true
      ? `${kindOf(first.value)} (not shown: the option is a secret)`
      : schema?.secretValues === true
        ? `${kindOf(first.value)} (not shown: it may hold secrets)`
      // A URL whose query may hold a key for the panel: `herald config` masks it, and so does this.
      : schema?.secretQuery === true
        ? `${kindOf(first.value)} (not shown: it may hold a secret)`
      : typeof first.value === 'number' && !Number.isFinite(first.value) ? String(first.value) : JSON.stringify(first.value);
    throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}" (${source[key] ?? 'default'}): ${first.message}; expected ${expected}, got ${got}`);
  }
  const options = withDefaults as HeraldOptions;
  checkConsistency(options, sourceNote(source));
  Object.freeze(options);
  SOURCES.set(options, Object.freeze(source));
  if (warnings.length > 0) FILE_WARNINGS.set(options, Object.freeze(warnings));
  return options;
}

/** Where each option's value came from (`config file PATH`, `environment HERALD_…`, `command line`), by the options it was loaded into. */
const SOURCES = new WeakMap<HeraldOptions, Readonly<Record<string, string>>>();

/**
 * Where an option's value came from, as errors say it: `set in config file
 * PATH`, `set in environment HERALD_…`, `set on the command line`, or `its
 * default`. Known for options loadOptions built (and those given
 * carryOptionSources); `its default` for others.
 */
export function whereSet(options: HeraldOptions, key: OptionKey): string {
  return saidSource(SOURCES.get(options) ?? {}, key);
}

function saidSource(source: Readonly<Record<string, string>>, key: OptionKey): string {
  const from = source[key];
  if (from === undefined) return 'its default';
  return from === 'command line' ? 'set on the command line' : `set in ${from}`;
}

/**
 * Options made from loaded ones (ensureSecrets fills in the secrets: a new
 * object) keep their values' sources, for the errors found later (see
 * withOptionSource). Returns `to`.
 */
export function carryOptionSources(from: HeraldOptions, to: HeraldOptions): HeraldOptions {
  const source = SOURCES.get(from);
  if (source !== undefined && !SOURCES.has(to)) SOURCES.set(to, source);
  return to;
}

type SourceNote = (...keys: OptionKey[]) => string;

/**
 * How a message says where the values of `keys` came from, appended to it:
 * ` (set in environment HERALD_SECRET)`; for two, each named. Appended, not
 * after the key as a schema error has it (`option "port" (environment
 * HERALD_PORT): …`): these messages go on after the key with its value.
 */
function sourceNote(source: Readonly<Record<string, string>>): SourceNote {
  const said = (key: OptionKey): string => saidSource(source, key);
  return (...keys) => (keys.length === 1 ? ` (${said(keys[0]!)})` : ` (${keys.map((k) => `"${k}" ${said(k)}`).join(', ')})`);
}

/**
 * A configuration error found once the options are loaded, by the part that
 * reads the option (the Origin allowlist, the command policy, the store, a
 * resolver), names it first: `option "KEY"…`. This adds where its value came
 * from, as loadOptions's own errors do; any other error is returned as it is,
 * and so is one about options loadOptions did not build (their sources are
 * not known: a program's own object).
 */
export function withOptionSource(err: unknown, options: HeraldOptions): unknown {
  const source = SOURCES.get(options);
  if (!(err instanceof HeraldError) || err.code !== 'HERALD_ERR_CONFIG' || source === undefined) return err;
  const key = /^option "(\w+)"/.exec(err.message)?.[1];
  if (key === undefined || !schemaOf(key)) return err;
  const note = sourceNote(source)(key as OptionKey);
  if (err.message.endsWith(note)) return err;
  const sourced = new HeraldError('HERALD_ERR_CONFIG', `${err.message}${note}`, err.details);
  sourced.stack = err.stack;
  return sourced;
}

/** Options that contradict each other throw naming both (as `ws` does); each error says where the values came from. */
function checkConsistency(o: HeraldOptions, from: SourceNote): void {
  // An empty value here is no "default": node listens on every interface for an empty host, and
  // an empty dataDir put the secrets and the store in whatever directory Herald was started from.
  // An unset variable in an environment file (HERALD_HOST=) must not do either without a word.
  for (const [key, what] of [['host', 'every interface: 0.0.0.0 or ::'], ['legacyHost', 'every interface: 0.0.0.0 or ::'], ['dataDir', 'the current directory: .']] as const) {
    // legacyHost is read only when the legacy listener runs: a setup that turned it off keeps working.
    if (key === 'legacyHost' && !o.legacyEnabled) continue;
    if (o[key].trim() === '') throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}" is empty: leave it unset for the default (${JSON.stringify(OptionsSchema.properties[key].default)}), or name ${what}${from(key)}`);
  }
  for (const key of ['host', 'legacyHost'] as const) {
    if (key === 'legacyHost' && !o.legacyEnabled) continue;
    // `[::1]` is how a URL writes the address, not an address: listen() looked it up as a
    // host name and the start failed with "getaddrinfo ENOTFOUND [::1]".
    const bare = /^\[(.*)\]$/.exec(o[key].trim())?.[1];
    if (bare !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}" is ${JSON.stringify(o[key])}: write an IPv6 address without brackets (${JSON.stringify(bare)}); brackets belong in URLs only${from(key)}`);
  }
  checkPortsDistinct(o, from);
  // A token of spaces is no token: anyone who can reach the listener sends one.
  if (o.legacyEnabled && !isLoopback(o.legacyHost) && o.legacyToken.trim() === '') {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "legacyHost" is ${JSON.stringify(o.legacyHost)} (not loopback${o.legacyHost.trim() !== o.legacyHost ? ': it has white space around it' : ''}) but "legacyToken" is ${o.legacyToken === '' ? 'empty' : 'blank'}: set a token or bind to 127.0.0.1${from('legacyHost', 'legacyToken')}`);
  }
  // Only where the store is read: a memory store never opens the file.
  if (o.store === 'sqlite' && o.sqliteFile.trim() === '') {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "sqliteFile" is empty: leave it unset for the default (${JSON.stringify(OptionsSchema.properties.sqliteFile.default)}), or name a file${from('sqliteFile')}`);
  }
  for (const key of ['secret', 'previousSecret', 'apiToken'] as const) {
    const problem = credentialProblem(key, o[key]);
    if (problem !== undefined) throw new HeraldError('HERALD_ERR_CONFIG', `option "${key}" ${problem}${from(key)}`);
  }
  if (o.commandsTimeoutSec > o.commandsMaxTimeoutSec) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsTimeoutSec" (${o.commandsTimeoutSec}) exceeds "commandsMaxTimeoutSec" (${o.commandsMaxTimeoutSec})${from('commandsTimeoutSec', 'commandsMaxTimeoutSec')}`);
  }
  if (o.commandsPerAdminConcurrency > o.commandsConcurrency) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsPerAdminConcurrency" (${o.commandsPerAdminConcurrency}) exceeds "commandsConcurrency" (${o.commandsConcurrency})${from('commandsPerAdminConcurrency', 'commandsConcurrency')}`);
  }
  if (o.legacyMaxBufferedBytes < o.legacyMaxRequestBytes) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "legacyMaxBufferedBytes" (${o.legacyMaxBufferedBytes}) is less than "legacyMaxRequestBytes" (${o.legacyMaxRequestBytes})${from('legacyMaxBufferedBytes', 'legacyMaxRequestBytes')}`);
  }
  checkAuthConsistency(o, from);
  if (o.defaultTtlMs > o.maxTtlMs) throw new HeraldError('HERALD_ERR_CONFIG', `option "defaultTtlMs" (${o.defaultTtlMs}) exceeds "maxTtlMs" (${o.maxTtlMs})${from('defaultTtlMs', 'maxTtlMs')}`);
}

/**
 * What is wrong with a value of `secret`, `previousSecret` or `apiToken` (an empty one is unset:
 * nothing), or undefined. The same rules hold wherever the value comes from, the configuration or
 * DATA_DIR/secrets.json (secrets.ts), which an operator may edit by hand as well.
 */
export function credentialProblem(key: 'secret' | 'previousSecret' | 'apiToken', value: string): string | undefined {
  if (value === '') return undefined;
  if (key !== 'apiToken') return value.length < 32 ? 'must be at least 32 characters' : undefined;
  if (value.length < 16) return 'must be at least 16 characters';
  // It travels in an HTTP header, which holds bytes: a non-ASCII token started and then matched no request.
  if (!/^[\x21-\x7e]*$/.test(value)) return 'must be printable ASCII without spaces (it is sent in the Authorization header)';
  return undefined;
}

/**
 * Two listeners on one port: the second failed at listen() with EADDRINUSE, which reads as
 * another program holding the port (exit 1), not as two options that name the same one.
 * adminPort and userPort listen on `host` like `port`; the legacy listener on `legacyHost`,
 * which collides when it is the same address or either is a wildcard. Port 0 is "off" for
 * adminPort and userPort and "any free port" for the others: never a collision.
 */
function checkPortsDistinct(o: HeraldOptions, from: SourceNote): void {
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::' || h === '[::]';
  const listeners: Array<{ key: OptionKey; port: number; host: string }> = [
    { key: 'port', port: o.port, host: o.host },
    { key: 'adminPort', port: o.adminPort, host: o.host },
    { key: 'userPort', port: o.userPort, host: o.host },
    ...(o.legacyEnabled ? [{ key: 'legacyPort' as const, port: o.legacyPort, host: o.legacyHost }] : []),
  ];
  for (const [i, a] of listeners.entries()) {
    for (const b of listeners.slice(i + 1)) {
      if (a.port === 0 || a.port !== b.port) continue;
      if (a.host !== b.host && !wildcard(a.host) && !wildcard(b.host)) continue;
      const where = a.host === b.host ? `on ${a.host}` : `on ${a.host} and ${b.host}`;
      throw new HeraldError('HERALD_ERR_CONFIG', `options "${a.key}" and "${b.key}" are both ${a.port} ${where}: each listener needs a port of its own${from(a.key, b.key)}`);
    }
  }
}

/** The resolver options that must agree with `authResolver`. */
function checkAuthConsistency(o: HeraldOptions, from: SourceNote): void {
  if (o.authResolver === 'sql') {
    if (!/^(mysql|mariadb|postgres|postgresql):\/\//i.test(o.sqlUrl)) {
      throw new HeraldError('HERALD_ERR_CONFIG', `option "authResolver" is sql but "sqlUrl" is not a mysql://, mariadb://, postgres:// or postgresql:// URL${from('authResolver', 'sqlUrl')}`);
    }
    if (o.sqlPreset === 'custom' && o.sqlAdminQuery === '' && o.sqlUserQuery === '') {
      throw new HeraldError('HERALD_ERR_CONFIG', `option "sqlPreset" is custom but neither "sqlAdminQuery" nor "sqlUserQuery" is set${from('sqlPreset')}`);
    }
  }
  if (o.authResolver === 'http' && !/^https?:\/\//i.test(o.httpResolverUrl)) {
    throw new HeraldError('HERALD_ERR_CONFIG', `option "authResolver" is http but "httpResolverUrl" is not an http:// or https:// URL${from('authResolver', 'httpResolverUrl')}`);
  }
}

/**
 * Whether the demo page and its endpoints are served. `auto` turns them on
 * only as the quick start runs Herald (a loopback listener, no publicUrl, no
 * allowedOrigins, the token resolver): anyone who can reach them can mint a
 * token for any admin and read that admin's notifications, so a server set
 * up to be reached from elsewhere must not serve them by default. A loopback
 * listener alone does not say that: a reverse proxy that passes its
 * upstream's address as Host (nginx's proxy_pass without proxy_set_header
 * Host, Apache's ProxyPass) reaches it with a loopback Host, but such a
 * server names its panel's origin, or browsers on the panel could not
 * connect.
 */
export function demoEnabled(o: Pick<HeraldOptions, 'demo' | 'host' | 'publicUrl' | 'allowedOrigins' | 'authResolver'>): boolean {
  if (o.demo !== 'auto') return o.demo;
  return isLoopback(o.host) && o.publicUrl === '' && o.allowedOrigins.length === 0 && o.authResolver === 'token';
}

// 127.0.0.0/8 (RFC 1122 §3.2.1.3) and ::1 (RFC 4291 §2.5.3). BlockList also matches an IPv4
// rule against the IPv4-mapped form (`::ffff:127.0.0.1`, which the URL parser writes `::ffff:7f00:1`),
// and compares addresses, not spellings: `0:0:0:0:0:0:0:1` is ::1.
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Whether a listener address or a Host header's host name stays on this machine:
 * `localhost`, 127.x.x.x, ::1 and their IPv4-mapped forms, with or without brackets.
 */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h.toLowerCase() === 'localhost') return true;
  const family = isIP(h);
  return family !== 0 && LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}

/** What a value is, without the value: `a number`, `a list`, `null`. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function describeType(schema: TSchema): string {
  if (schema.anyOf) return (schema.anyOf as TSchema[]).map(describeType).join(' or ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const type = schema.type as string;
  const range = schema.minimum !== undefined ? ` ≥ ${schema.minimum as number}${schema.maximum !== undefined ? ` and ≤ ${schema.maximum as number}` : ''}` : '';
  if (type === 'array') return 'a list of strings (comma-separated in the environment)';
  return `${type === 'integer' ? 'an integer' : `a ${type}`}${range}`;
}

/** The bounds a number option is checked against at start, as the table gives them: `; 1024 or more`, `; 0 to 1000`. */
function range(schema: TSchema): string {
  const min = schema.minimum as number | undefined;
  // MAX_SAFE_INTEGER is every integer's own bound (a larger one is not exact), not a limit of the option.
  const max = schema.maximum === Number.MAX_SAFE_INTEGER ? undefined : schema.maximum as number | undefined;
  if (min === undefined && max === undefined) return '';
  if (max === undefined) return `; ${min} or more`;
  if (min === undefined) return `; at most ${max}`;
  return `; ${min} to ${max}`;
}

/** The README's configuration table, generated from the schema. */
export function optionsMarkdownTable(): string {
  const rows = ['| option | environment | default | meaning |', '| --- | --- | --- | --- |'];
  for (const [key, schema] of Object.entries(OptionsSchema.properties as Record<string, TSchema>)) {
    const unit = schema.unit ? ` (${schema.unit as string})` : '';
    // Only what ensureSecrets (secrets.ts) fills in is generated; the other secrets default to "" like any string.
    const dflt = schema.generated ? '(generated)' : JSON.stringify(schema.default);
    rows.push(`| \`${key}\` | \`${envName(key)}\` | \`${dflt}\`${unit}${range(schema)} | ${(schema.description as string).replace(/\|/g, '\\|')} |`);
  }
  return rows.join('\n');
}

/** Keys whose values must never be logged or printed. */
export const SECRET_OPTION_KEYS: readonly string[] = Object.entries(OptionsSchema.properties as Record<string, TSchema>)
  .filter(([, s]) => s.secret === true)
  .map(([k]) => k);

/** Keys whose KEY=VALUE entries may hold secrets in their values (commandsEnv). */
export const SECRET_VALUES_OPTION_KEYS: readonly string[] = Object.entries(OptionsSchema.properties as Record<string, TSchema>)
  .filter(([, s]) => s.secretValues === true)
  .map(([k]) => k);

/** Keys whose URL may carry a secret in its query string (httpResolverUrl). */
export const SECRET_QUERY_OPTION_KEYS: readonly string[] = Object.entries(OptionsSchema.properties as Record<string, TSchema>)
  .filter(([, s]) => s.secretQuery === true)
  .map(([k]) => k);

/**
 * A URL as `herald config` shows it: each query parameter's value is
 * `(set)` (a bare parameter, which may be a key itself, is `(set)` whole),
 * a password in its user information is `(set)` (`herald start` refuses
 * such a URL, but `herald config` is what people paste into a ticket), and
 * a fragment is dropped. Without either it is shown as it is.
 */
export function maskUrlQuery(text: string): string {
  const url = maskUrlPassword(text);
  const q = url.indexOf('?');
  if (q < 0) return url;
  const hash = url.indexOf('#', q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  if (query === '') return url.slice(0, q);
  const masked = query.split('&').map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? '(set)' : `${p.slice(0, eq)}=(set)`;
  });
  return `${url.slice(0, q)}?${masked.join('&')}`;
}

/** `scheme://user:password@host…` with the password as `(set)`. */
function maskUrlPassword(url: string): string {
  const start = url.indexOf('://');
  if (start < 0) return url;
  const from = start + 3;
  let end = url.length;
  for (const c of ['/', '?', '#']) {
    const at = url.indexOf(c, from);
    if (at >= 0 && at < end) end = at;
  }
  const atSign = url.lastIndexOf('@', end - 1);
  if (atSign < from) return url;
  const colon = url.indexOf(':', from);
  if (colon < 0 || colon > atSign) return url;
  return `${url.slice(0, colon + 1)}(set)${url.slice(atSign)}`;
}

/** Variables whose values are never secrets, shown as they are by `herald config`. */
const PLAIN_VARIABLES = /^(PATH|LANG|LANGUAGE|LC_[A-Z]+|TZ)$/;

/**
 * KEY=VALUE entries as `herald config` shows them: the names, and the value
 * only of PATH, LANG, LC_* and TZ; any other value is `(set)` (it may be a
 * password), an entry that is not KEY=VALUE is `(not KEY=VALUE)`.
 */
export function maskEnvEntries(entries: readonly string[]): string[] {
  return entries.map((e) => {
    const eq = e.indexOf('=');
    if (eq <= 0) return '(not KEY=VALUE)';
    const key = e.slice(0, eq);
    return PLAIN_VARIABLES.test(key) ? e : `${key}=(set)`;
  });
}
