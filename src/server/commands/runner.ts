/**
 * The CommandRunner (DESIGN.md): runs allowed programs for admins without a
 * shell, with a timeout that kills the whole process group, bounded output,
 * global and per-admin concurrency with a bounded queue, cancellation, live
 * progress frames to the admin's tabs and a final notification, and an audit
 * record per run. Only the composition root constructs it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import type { Logger } from 'pino';
import type { CommandProgressFrame, CommandState } from '../../protocol/commands.js';
import type { NotificationObject, NotificationPayload } from '../../protocol/frames.js';
import { isPersonId, type Principal } from '../../protocol/principal.js';
import { HeraldError, isHeraldError } from '../errors.js';
import { serialise, type Notifier } from '../notifier.js';
import type { HeraldOptions } from '../options.js';
import { ThrottledLog } from '../throttled-log.js';
import type {
  CommandDoor, CommandInfo, CommandRequest, CommandRunJournal, CommandService, CommandStats, CommandWaitOptions, RecordedCommandInfo,
  RefusedCommandRequest, RunningCommandRecord,
} from './command-service.js';
import {
  finalNotification, finishedRecord, parseCommandNotes, recordedInfo, refusedRecord,
  type AuditQuery, type CommandNotes, type RunEnd, type CommandAuditRecord, type CommandAuditSink, type CommandAuditStore, type StoredAuditRecord,
} from './outcome.js';
import { OutputBuffer } from './output-buffer.js';
import { CommandPolicy, MAX_PROGRAM_CHARS, serverSearchPath, type ResolvedProgram } from './policy.js';
import { childExited, groupAlive, processIdentity, sameProcess, signalGroup } from './process-group.js';
import { splitLegacyArgs } from './split-args.js';

/** Most arguments a command may have after splitting. */
export const MAX_ARGS = 1024;
/** Largest OUTPUT of one progress frame, in characters (the tail is kept: a live view shows the latest lines). */
export const PROGRESS_MAX_CHARS = 65536;
/** Longest caller task id, in characters. */
const MAX_TASK_ID_CHARS = 256;
/**
 * How long a run's output has to reach its end after its group's SIGKILL before Herald stops
 * reading it and calls what holds it left running (#cutLoose), in ms: at least this, whatever
 * commandsKillGraceMs, and at shutdown this alone. A killed group's pipes end only once what
 * they hold has been read, and past the output cap that is one read every DROPPED_OUTPUT_READ_MS:
 * with commandsKillGraceMs 0 (or a few ms) as this wait, 6 runs in 10 of a program that simply
 * wrote past the cap and exited were cut loose, reported as leaving a process running, and a
 * timed-out run lost its SIGNAL.
 */
const CUT_LOOSE_AFTER_KILL_MS = 1000;
/**
 * Past the output cap, how often a stream of a run is read again, in ms: one read (at most
 * 64 KiB) each time, ~6 MiB/s. Read as fast as it came, `yes` cost Herald 42 % of a core for
 * as long as it ran, all of it dropped; read at this pace, 3 %, the full pipe blocking `yes`
 * instead. 100 ms cost 1 %, but a program writing 21 MB past the cap took 39 s (10 ms: 4.4 s).
 */
export const DROPPED_OUTPUT_READ_MS = 10;
/** How often a run whose program left processes in its group, output closed, looks whether they are still there (#watchGroup). */
const GROUP_POLL_MS = 50;
/**
 * Refused requests recorded one by one (a log line and an audit record each) in every
 * REFUSALS_WINDOW_MS, for each door and error code; the rest are counted, and each door and
 * code's count is one log line and one audit record when the window ends (#refusals).
 */
export const REFUSALS_RECORDED_PER_WINDOW = 20;
/** The window of REFUSALS_RECORDED_PER_WINDOW, in ms. */
export const REFUSALS_WINDOW_MS = 10_000;
/** The `program` of the audit record that counts the refusals of a window not recorded one by one. */
export const REFUSALS_COUNTED_PROGRAM = '[refused requests not recorded one by one]';

type RunnerOptions = Pick<
  HeraldOptions,
  | 'commandsEnabled' | 'commandsAllow' | 'commandsArgRules' | 'commandsPath' | 'commandsCwd' | 'commandsEnv' | 'commandsNotes'
  | 'commandsTimeoutSec' | 'commandsMaxTimeoutSec' | 'commandsKillGraceMs' | 'commandsOutputCap'
  | 'commandsConcurrency' | 'commandsPerAdminConcurrency' | 'commandsQueueSize' | 'commandsProgressMs' | 'commandsHistory'
  | 'maxSendBytes'
>;

export interface CommandRunnerDeps {
  /** Progress frames go out live-only (TTL 0); the final notification with the default TTL. */
  notifier: Pick<Notifier, 'send'>;
  logger: Logger;
  options: RunnerOptions;
  /**
   * Persists audit records besides the log line (optional); one with `recent` also answers
   * `audit()`, and the runner closes it when it closes (after the last record). One that is
   * also a CommandRunJournal keeps the runs in progress, and the runner closes at start-up
   * those an earlier Herald left unfinished (killed, crashed).
   */
  audit?: CommandAuditSink | CommandAuditStore | (CommandAuditStore & CommandRunJournal) | undefined;
  /** The server's environment, for an empty `commandsPath` (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** The wall clock, ms since the epoch: the audit's and the API's queuedAt, startedAt, endedAt. Default Date.now; for tests. */
  now?: () => number;
  /**
   * The clock of durations and of the progress frames' pace, in ms: monotonic, default
   * performance.now; for tests. Not the wall clock: a step back of it stopped COMMAND_PROGRESS
   * for the length of the step and made DURATION_MS negative.
   */
  monotonicNow?: () => number;
}

interface Run {
  readonly id: string;
  readonly request: CommandRequest;
  readonly program: ResolvedProgram;
  readonly args: string[];
  readonly timeoutSec: number;
  readonly output: OutputBuffer;
  state: CommandState;
  readonly queuedAt: number;
  /** Arrival order, for listing (several requests share a millisecond). */
  readonly order: number;
  startedAt?: number;
  endedAt?: number;
  /** When it started and ended on the monotonic clock (#tick): its DURATION_MS. */
  startedTick?: number;
  endedTick?: number;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Why it was stopped (cancel, shutdown) or could not start. */
  error?: string;
  stopping?: 'timeout' | 'cancel' | 'shutdown';
  /** Who cancelled it (its final text says so in the panel's words: commandsNotes). */
  cancelledBy?: RunEnd['cancelledBy'];
  child?: ChildProcess;
  pid?: number;
  exited: boolean;
  /**
   * Whether any process of its group was left when Node reported the program's exit (set then).
   * The group id is the program's pid, which the kernel keeps allocated while a member of the
   * group lives: with none left at the exit, the pid may go to another process, which may lead
   * a group of that id, so nothing is signalled to the group from then on.
   */
  groupLeftAtExit?: boolean;
  /**
   * Its output reached its end ('close') while processes it started stayed in its group with
   * their output closed or redirected (`sleep 300 >/dev/null 2>&1 &`): the run ends when the
   * grace after the program's exit kills them (or a cancel does), as it would for children
   * that held its output.
   */
  outputClosed?: boolean;
  /** Herald sent its group SIGKILL: what is left of it is dying, not left behind. */
  killed?: boolean;
  /** A signal to its group was refused (EPERM): logged once. */
  signalDenied?: boolean;
  /** Its output was still held open when Herald stopped reading it (#cutLoose): something it started runs on. */
  cutLoose?: boolean;
  timers: Set<NodeJS.Timeout>;
  /** The run's timeout (also in `timers`); cleared when the program exits. */
  timeoutTimer?: NodeJS.Timeout;
  progressTimer?: NodeJS.Timeout;
  /** When the last progress frame went out, on the monotonic clock (#tick). */
  lastProgressAt: number;
  finished: boolean;
  /** Its final info, set once its final notification is stored: from then on a wait answers at once. */
  final?: CommandInfo;
  /**
   * Whoever waits for its end (long polls, cancels, close), each until it ends or stops
   * waiting. Not reactions on one long-lived promise: a timed-out long poll could not take
   * its own back, and every poll of a long run stayed on it until the run ended (~480 B each).
   */
  readonly waiters: Set<(info: CommandInfo) => void>;
}

export class CommandRunner implements CommandService {
  readonly #notifier: Pick<Notifier, 'send'>;
  readonly #log: Logger;
  readonly #o: RunnerOptions;
  readonly #audit: CommandRunnerDeps['audit'];
  readonly #now: () => number;
  readonly #tick: () => number;
  readonly #policy: CommandPolicy;
  readonly #cwd: string;
  readonly #env: Record<string, string>;
  readonly #notes: CommandNotes;
  /** Every run not yet in history: queued and running. */
  readonly #active = new Map<string, Run>();
  readonly #queue: Run[] = [];
  readonly #runningByAdmin = new Map<number, number>();
  #running = 0;
  /** Finished runs, oldest first, at most `commandsHistory`. */
  readonly #history = new Map<string, Run>();
  #closing = false;
  /** close() has closed the audit store: a refusal after it is logged, not written to a file that is shut. */
  #auditClosed = false;
  #arrivals = 0;
  /**
   * Refused requests, bounded. A refusal costs a caller nothing (on loopback the legacy door
   * asks no token for COMMAND), and each was a warning of ~330 bytes and an audit record,
   * written synchronously: hundreds a second of them filled the log, and 100,000 pushed every
   * run out of the trail (commandsAuditKeep). Keyed by door and error code, each with a
   * budget of its own, so that a flood through the legacy door hides neither the API's
   * refusals nor another code's; the most frequent programs asked are named in the count.
   */
  readonly #refusals: ThrottledLog;
  /**
   * The server process is ending without close() having finished: a forced exit (a second
   * Ctrl-C, a shutdown past its grace) or a crash. Programs run detached, in their own
   * session, so nothing else would stop them: they would run on, unreported and untracked.
   */
  readonly #killOnExit = (): void => {
    for (const run of this.#active.values()) {
      // A run without a pid (queued, or its spawn failing) has nothing to kill.
      this.#signal(run, 'SIGKILL');
      if (run.finished) continue;
      // Its end, as far as this process will ever know it, while the audit file can still take it
      // (better-sqlite3 writes synchronously, as an 'exit' listener must); without it, the next
      // start would find the run open and call it lost. A queued run too: accepted (201, `queued`),
      // skipped here it left no trace at all, and its id answered 404 after the restart.
      // A program that had ended (only what it left in its group was still there) keeps its outcome,
      // and so does one being stopped already (a cancel, a timeout, the shutdown, in their grace):
      // this SIGKILL only ends that stop early, and the audit keeps who cancelled it.
      if (!run.exited && run.stopping === undefined) {
        run.stopping = 'shutdown';
        run.error = run.pid === undefined
          ? 'Herald exited before it ran (a crash, or a forced exit)'
          : 'Herald exited without stopping it (a crash, or a forced exit): killed';
      }
      run.endedAt = this.#now();
      run.endedTick = this.#tick();
      run.state = this.#outcome(run);
      try {
        this.#record(finishedRecord(this.#info(run), run.output.bytes));
      } catch {
        // Exiting: nothing more can be done about it, and an 'exit' listener must not throw.
      }
    }
  };

  constructor(deps: CommandRunnerDeps) {
    this.#notifier = deps.notifier;
    this.#log = deps.logger;
    this.#o = deps.options;
    this.#audit = deps.audit;
    if (this.#audit && 'useLogger' in this.#audit) this.#audit.useLogger?.(this.#log);
    this.#now = deps.now ?? Date.now;
    this.#tick = deps.monotonicNow ?? (() => performance.now());
    this.#refusals = new ThrottledLog(this.#log, this.#now, {
      budget: 'per key',
      perWindow: REFUSALS_RECORDED_PER_WINDOW,
      windowMs: REFUSALS_WINDOW_MS,
      summary: (byKey, windowMs, perWindow, samples) => {
        for (const [key, count] of Object.entries(byKey)) this.#storeCounted(key, count, samples[key] ?? {}, windowMs, perWindow);
        return {
          fields: { audit: 'command', refused: Object.values(byKey).reduce((a, b) => a + b, 0), byDoorAndCode: byKey, programs: samples, windowMs },
          message: `command requests refused and not recorded one by one: more than ${perWindow} of a door and error code in ${windowMs / 1000} s (each door and code counted in one audit record)`,
        };
      },
    });
    const env = deps.env ?? process.env;
    const serverPath = this.#o.commandsPath === '' ? serverSearchPath(env.PATH ?? '') : undefined;
    this.#policy = new CommandPolicy({
      allow: this.#o.commandsAllow,
      argRules: this.#o.commandsArgRules,
      searchPath: serverPath?.searchPath ?? this.#o.commandsPath,
      warn: (fields, message) => {
        if (this.#o.commandsEnabled) this.#log.warn(fields, message);
      },
    });
    this.#cwd = this.#o.commandsCwd !== '' ? this.#o.commandsCwd : tmpdir();
    if (this.#o.commandsEnabled) {
      let isDir = false;
      try {
        isDir = statSync(this.#cwd).isDirectory();
      } catch {
        // reported below
      }
      if (!isDir) throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsCwd": ${this.#cwd} is not an existing directory`);
    }
    this.#env = parseEnv(this.#o.commandsEnv);
    this.#notes = parseCommandNotes(this.#o.commandsNotes);
    if (this.#o.commandsEnabled) {
      process.on('exit', this.#killOnExit);
      if (serverPath !== undefined && serverPath.skipped.length > 0) {
        this.#log.info({ skipped: serverPath.skipped }, 'commandsPath is empty: allowed names are looked up in the server\'s PATH without its relative entries and node_modules directories');
      }
      this.#closeLostRuns();
      for (const e of this.#policy.entries()) {
        if (e.path === null) this.#log.warn({ program: e.entry }, 'allowed program is not installed: requests for it will be refused until it is');
        else this.#log.info({ program: e.entry, path: e.path }, 'allowed program');
      }
      // Commands run as the server's user: as root, `ping -f` floods and a script's `sudo` asks
      // nobody. docs/commands.md says to run Herald unprivileged; a careless start is told so.
      if (process.getuid?.() === 0) {
        // The argument rules are the other remedy: once set, advising them read as unheeded advice.
        const remedy = this.#o.commandsArgRules.length > 0 ? '' : ', or set commandsArgRules';
        this.#log.warn(`Herald runs as root, and so does every command it runs (ping -f floods as root): run it as an unprivileged user (docs/deploy.md)${remedy}`);
      }
    }
  }

  async start(request: CommandRequest): Promise<CommandInfo> {
    const queuedAt = this.#now();
    try {
      return this.#start(request, queuedAt);
    } catch (e) {
      this.#refused(refusedRecord(request, queuedAt, e), e);
      throw e;
    }
  }

  refused(request: RefusedCommandRequest, error: HeraldError): void {
    this.#refused(refusedRecord(request, this.#now(), error), error);
  }

  #start(request: CommandRequest, queuedAt: number): CommandInfo {
    if (this.#closing) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN');
    if (!this.#o.commandsEnabled) throw new HeraldError('HERALD_ERR_COMMANDS_DISABLED', 'background commands are disabled (commandsEnabled is false)');
    if (!isPersonId(request.aid)) throw new HeraldError('HERALD_ERR_VALIDATION', 'aid must be a positive integer');
    if (!Array.isArray(request.args) || !request.args.every((a) => typeof a === 'string')) {
      throw new HeraldError('HERALD_ERR_VALIDATION', 'args must be a list of strings');
    }
    const args = request.splitArgs ? splitLegacyArgs(request.args) : [...request.args];
    if (args.length > MAX_ARGS) throw new HeraldError('HERALD_ERR_VALIDATION', `too many arguments (${args.length} > ${MAX_ARGS})`);
    for (const a of args) {
      if (a.length > MAX_PROGRAM_CHARS) throw new HeraldError('HERALD_ERR_VALIDATION', `an argument is longer than ${MAX_PROGRAM_CHARS} characters`);
      if (a.includes('\0')) throw new HeraldError('HERALD_ERR_VALIDATION', 'an argument contains a NUL character');
    }
    const timeoutSec = this.#timeout(request.timeoutSec);
    if (request.taskId !== undefined && !validTaskId(request.taskId)) {
      throw new HeraldError('HERALD_ERR_VALIDATION', `the task id must be a string of at most ${MAX_TASK_ID_CHARS} characters or a number`);
    }
    // The final notification is sent when the run ends: one that cannot be
    // serialised (nested past the stack) is refused now, not lost then.
    for (const p of [request.success, request.error]) if (typeof p === 'object' && p !== null) serialise(p);
    const program = this.#policy.resolve(request.program);
    this.#policy.checkArgs(program, args);

    const startNow = this.#hasSlot(request.aid);
    if (!startNow) {
      const o = this.#o;
      const mine = this.#queuedFor(request.aid);
      const share = this.#queueShare();
      // The admin's own share first: when it is what refuses them, waiting for others would not help.
      // No queue at all (commandsQueueSize 0) is no one's share: the message below says so.
      if (o.commandsQueueSize > 0 && mine >= share) {
        throw new HeraldError(
          'HERALD_ERR_QUEUE_FULL',
          `admin ${request.aid} already has ${mine} commands waiting, their share of the queue (${share}: commandsQueueSize ${o.commandsQueueSize} × commandsPerAdminConcurrency ${o.commandsPerAdminConcurrency} / commandsConcurrency ${o.commandsConcurrency}); try again when one of theirs has started`,
        );
      }
      if (this.#queue.length >= o.commandsQueueSize) {
        throw new HeraldError(
          'HERALD_ERR_QUEUE_FULL',
          `too many commands: ${this.#running} running and ${this.#queue.length} waiting (commandsQueueSize ${o.commandsQueueSize}); try again later`,
        );
      }
    }
    const run: Run = {
      id: randomUUID(), request: { ...request, args: [...request.args] }, program, args, timeoutSec,
      output: new OutputBuffer(this.#o.commandsOutputCap), state: 'queued', queuedAt, order: ++this.#arrivals,
      exitCode: null, signal: null, timedOut: false, exited: false, timers: new Set(),
      lastProgressAt: -Infinity, finished: false, waiters: new Set(),
    };
    this.#active.set(run.id, run);
    if (startNow) {
      this.#launch(run);
    } else {
      this.#queue.push(run);
      // Kept in the audit file from now, not from its launch: a Herald killed while it waits
      // (SIGKILL, the OOM killer) left no trace of a command it had answered `queued`, and its id
      // answered 404 after the restart. A run started at once gets its row in #launch, this turn.
      this.#journalRun(run);
      this.#progress(run);
      this.#log.debug({ id: run.id, aid: request.aid, queued: this.#queue.length }, 'command queued');
    }
    return this.#info(run);
  }

  get(id: string): CommandInfo | undefined {
    const run = this.#active.get(id) ?? this.#history.get(id);
    return run && this.#info(run);
  }

  recorded(id: string): RecordedCommandInfo | undefined {
    if (!this.#audit || !('finished' in this.#audit)) return undefined;
    let rec: StoredAuditRecord | undefined;
    try {
      rec = this.#audit.finished(id);
    } catch (err) {
      // A lookup that failed does not know: answered "unknown" (404), a caller gave up on a
      // command that ran (the SDK's commandStatus turned it into null) while an operator's
      // sqlite3 shell held the file locked. Unavailable (503) is "ask again".
      if (isHeraldError(err) && err.code === 'HERALD_ERR_UNAVAILABLE') throw err;
      // What failed is the log's: the answer reaches an API caller or an admin's tab (a cancel's ERROR frame).
      this.#log.warn({ id, err: (err as Error).message }, 'command audit lookup failed');
      throw new HeraldError('HERALD_ERR_UNAVAILABLE', 'the command audit trail cannot be read now: try again');
    }
    if (rec?.id === undefined || rec.state === undefined) return undefined;
    return recordedInfo({ ...rec, id: rec.id, state: rec.state });
  }

  list(limit = 50): CommandInfo[] {
    const all = [...this.#history.values(), ...this.#active.values()];
    all.sort((a, b) => b.order - a.order);
    return all.slice(0, Math.max(0, limit)).map((r) => this.#info(r));
  }

  wait(id: string, options: CommandWaitOptions = {}): Promise<CommandInfo | undefined> {
    const run = this.#active.get(id) ?? this.#history.get(id);
    return run ? this.#waitFor(run, options) : Promise.resolve(undefined);
  }

  /** How many callers wait for the command's end now (long polls, cancels): 0 for an unknown or ended one. For tests. */
  waiters(id: string): number {
    return (this.#active.get(id) ?? this.#history.get(id))?.waiters.size ?? 0;
  }

  /**
   * The run's final info once it has ended, or its info as it is when `timeoutMs` passes or
   * `signal` aborts first. A wait that stops early leaves nothing on the run.
   */
  #waitFor(run: Run, { timeoutMs, signal }: CommandWaitOptions = {}): Promise<CommandInfo> {
    if (run.final) return Promise.resolve(run.final);
    if (signal?.aborted || (timeoutMs !== undefined && !(timeoutMs > 0))) return Promise.resolve(this.#info(run));
    return new Promise<CommandInfo>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (info: CommandInfo): void => {
        run.waiters.delete(settle);
        clearTimeout(timer);
        signal?.removeEventListener('abort', early);
        resolve(info);
      };
      const early = (): void => settle(this.#info(run));
      run.waiters.add(settle);
      if (timeoutMs !== undefined) timer = setTimeout(early, timeoutMs);
      signal?.addEventListener('abort', early, { once: true });
    });
  }

  stats(): CommandStats {
    return { enabled: this.#o.commandsEnabled, running: this.#running, queued: this.#queue.length, allowed: this.#policy.entries() };
  }

  audit(query?: AuditQuery): StoredAuditRecord[] | undefined {
    return this.#audit && 'recent' in this.#audit ? this.#audit.recent(query) : undefined;
  }

  async cancel(id: string, by?: Principal): Promise<CommandInfo> {
    const run = this.#active.get(id) ?? this.#history.get(id);
    if (!run) {
      // Ran before a restart (or left the history): it has ended, as the trail says.
      const rec = this.recorded(id);
      if (!rec) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no command ${id}`);
      if (by !== undefined && !(by.kind === 'admin' && by.id === rec.aid)) {
        throw new HeraldError('HERALD_ERR_FORBIDDEN', `only the admin who owns command ${id} may cancel it`);
      }
      throw new HeraldError('HERALD_ERR_CONFLICT', `command ${id} has already ended (${rec.state})`);
    }
    if (by !== undefined && !(by.kind === 'admin' && by.id === run.request.aid)) {
      throw new HeraldError('HERALD_ERR_FORBIDDEN', `only the admin who owns command ${id} may cancel it`);
    }
    if (run.finished) throw new HeraldError('HERALD_ERR_CONFLICT', `command ${id} has already ended (${run.state})`);
    this.#log.info({ id, by: by ? `${by.kind}:${by.id}` : 'api' }, 'command cancel requested');
    this.#stop(run, 'cancel', by ? `by ${by.kind} ${by.id}` : 'through the API', by ? by.id : 'api');
    return this.#waitFor(run);
  }

  async close(graceMs = this.#o.commandsKillGraceMs): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const pending = [...this.#active.values()];
    for (const run of pending) this.#stop(run, 'shutdown', 'server shutting down');
    const ended = Promise.all(pending.map((r) => this.#waitFor(r)));
    // At most graceMs, then SIGKILL, then CUT_LOOSE_AFTER_KILL_MS, whatever commandsKillGraceMs:
    // a program that ignores SIGTERM is killed when the shutdown's grace ends (so is one whose
    // cancel began before, with its own grace). Waiting for the runs' own chains (SIGTERM, the
    // kill grace, SIGKILL, another wait, cut loose) took up to twice the kill grace (close(5000)
    // with a kill grace of 5 s: 10 s, not 6): past `herald start`'s deadline (shutdownGraceMs +
    // 5 s) it exited 1 with the run unrecorded and its admin never told.
    if (!(await settlesWithin(ended, graceMs))) {
      const late = pending.filter((run) => !run.finished);
      for (const run of late) this.#signal(run, 'SIGKILL');
      // A process SIGKILL cannot reach (another user's, one that left the group holding the
      // output) is cut loose after a short wait, as the HTTP server's connections are (herald.ts,
      // #closeHttp), not after another kill grace: its run still gets its record and notification.
      if (!(await settlesWithin(ended, CUT_LOOSE_AFTER_KILL_MS))) {
        for (const run of late) this.#cutLoose(run);
      }
    }
    await ended;
    process.off('exit', this.#killOnExit);
    // The refusals counted and not yet said, before the store closes under their record.
    this.#refusals.flush();
    this.#auditClosed = true;
    // The audit store is closed last, after the final records of the runs stopped above.
    if (this.#audit && 'close' in this.#audit) this.#audit.close();
  }

  // ---- running ---------------------------------------------------------------

  /**
   * How many runs one admin may have waiting: the share of the queue they have of the slots,
   * commandsQueueSize × commandsPerAdminConcurrency / commandsConcurrency, rounded up (16 of 32
   * by default). An admin's queued runs start only in that admin's own slots, so without it one
   * admin's flood of long runs (40 × `sleep 3600`) filled the queue, and every other admin was
   * refused for as long as they ran, slots free or not. Counted by `aid`, the admin the run is
   * for: every request names one, and the API token (requestedBy) is one for the whole backend.
   */
  #queueShare(): number {
    return Math.ceil((this.#o.commandsQueueSize * this.#o.commandsPerAdminConcurrency) / this.#o.commandsConcurrency);
  }

  #queuedFor(aid: number): number {
    let n = 0;
    for (const run of this.#queue) if (run.request.aid === aid) n++;
    return n;
  }

  #hasSlot(aid: number): boolean {
    return this.#running < this.#o.commandsConcurrency && (this.#runningByAdmin.get(aid) ?? 0) < this.#o.commandsPerAdminConcurrency;
  }

  #launch(run: Run): void {
    const aid = run.request.aid;
    this.#running++;
    this.#runningByAdmin.set(aid, (this.#runningByAdmin.get(aid) ?? 0) + 1);
    run.state = 'running';
    run.startedAt = this.#now();
    run.startedTick = this.#tick();
    let child: ChildProcess;
    try {
      // No shell, ever: the program and its argument vector go to execve as they are.
      // `detached` makes the program lead its own process group, so the group can be killed whole.
      // argv[0] is the allowed name, as a shell would have given it (see ResolvedProgram.entry).
      child = spawn(run.program.path, run.args, {
        argv0: run.program.entry,
        cwd: this.#cwd, env: this.#env, detached: true, shell: false, stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true,
      });
    } catch (e) {
      run.error = this.#spawnError(run, e as NodeJS.ErrnoException);
      this.#finish(run);
      return;
    }
    run.child = child;
    child.on('error', (e) => {
      // Emitted when the spawn itself failed (ENOENT, EACCES…), or a later signal could not be sent.
      if (child.pid === undefined || run.pid === undefined) {
        run.error = this.#spawnError(run, e);
        this.#finish(run);
      } else {
        this.#log.warn({ id: run.id, err: e.message }, 'command process error');
      }
    });
    if (child.pid === undefined) return; // the 'error' event follows
    run.pid = child.pid;
    this.#journalRun(run, child.pid);
    child.stdout?.on('data', (chunk: Buffer) => this.#output(run, 'stdout', chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.#output(run, 'stderr', chunk));
    child.on('exit', (code, signal) => {
      // A run already ended (cut loose at shutdown before Node reported the exit) keeps the
      // outcome it was reported with, and gets no timer: one added now would outlive its
      // #finish, and cut it loose, and warn, once more.
      if (run.finished) return;
      run.exited = true;
      run.exitCode = code;
      run.signal = signal;
      // Node emits 'exit' right after libuv reaped the program, on the same turn: a group
      // alive now has kept its id allocated since, and keeps it while a member lives.
      run.groupLeftAtExit = groupAlive(child.pid as number);
      // The program ended within its time: left-over children are the grace's business below,
      // and must not turn the run into a timed-out one if they outlast the timeout.
      if (run.timeoutTimer !== undefined) {
        clearTimeout(run.timeoutTimer);
        run.timers.delete(run.timeoutTimer);
      }
      // Left-over children may hold the pipes open, or stay in the group with their output
      // closed; give them the grace, then the group goes ('close' follows once they are dead,
      // or came already). Something that still holds the pipes after another grace, and at least
      // CUT_LOOSE_AFTER_KILL_MS (outside the group, or not ours to kill), is cut loose.
      this.#timer(run, this.#o.commandsKillGraceMs, () => {
        if (run.finished) return;
        this.#signal(run, 'SIGKILL');
        if (run.outputClosed) this.#finish(run);
        else this.#timer(run, this.#cutLooseMs(), () => this.#cutLoose(run));
      });
    });
    child.on('close', () => {
      // Nothing holds the output, but the group lives on: a child the program left behind
      // without detaching (setsid). It must not outlive the run; the grace above ends both.
      // A daemon that detaches within the grace is left alone.
      // Not once Herald killed the group: its members are dying then (exiting, or zombies their new
      // parent has yet to reap, which still count as members), not left behind.
      if (run.exited && run.stopping === undefined && !run.killed && run.groupLeftAtExit !== false && groupAlive(child.pid as number)) {
        run.outputClosed = true;
        this.#watchGroup(run);
        return;
      }
      this.#finish(run);
    });
    run.timeoutTimer = this.#timer(run, run.timeoutSec * 1000, () => {
      this.#stop(run, 'timeout', `timed out after ${run.timeoutSec} s`);
    });
    this.#log.debug({ id: run.id, aid, pid: run.pid, program: run.program.path, args: run.args }, 'command started');
    this.#progress(run);
  }

  /**
   * Why a spawn failed, as the run's error and its admin's `[could not run: …]`. The system names
   * the program (`spawn /usr/bin/ping ENOENT`) also when what is missing is the working directory:
   * commandsCwd removed after start-up (a temporary-file cleaner, a redeploy) made every run fail
   * so, with an installed program. Herald does not make the directory again: it was checked at
   * start-up, and what removed it may have meant to.
   */
  #spawnError(run: Run, e: NodeJS.ErrnoException): string {
    if (e.code !== 'ENOENT' && e.code !== 'ENOTDIR' && e.code !== 'EACCES') return e.message;
    let problem: string | undefined;
    try {
      if (!statSync(this.#cwd).isDirectory()) problem = 'is no longer a directory';
      else accessSync(this.#cwd, fsConstants.X_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problem = code === 'ENOENT' || code === 'ENOTDIR' ? 'is gone' : `cannot be entered (${code ?? (err as Error).message})`;
    }
    if (problem === undefined) return e.message;
    this.#log.warn({ id: run.id, cwd: this.#cwd, program: run.program.path, err: e.message }, `the commands' working directory ${problem} (commandsCwd): commands cannot run until it is back`);
    // The system's message stays in the log: it names the program, which is not what is missing.
    return `the working directory ${this.#cwd} ${problem} (commandsCwd)`;
  }

  /** Stops a queued or running command: the queue forgets it; a process group gets SIGTERM, then SIGKILL after the grace. */
  #stop(run: Run, why: 'timeout' | 'cancel' | 'shutdown', reason: string, by?: RunEnd['cancelledBy']): void {
    if (run.finished || run.stopping) return;
    // Node reports a program's exit a turn of the event loop after it happened: a cancel in
    // between found `exited` false and counted, and the SIGTERM reached a group whose leader
    // was already dead, so a program that ended 0 on its own was reported `cancelled` with
    // EXIT_CODE 0 (1 to 3 in 40 cancels of `sleep 0.05` sent after 45-60 ms). The kernel
    // knows: a child that has exited is a zombie until reaped, and one exiting is flagged so.
    // A program that starts exiting between this read and the signal below is still counted
    // as cancelled: microseconds, but a loaded machine that preempts the server there widens
    // it (once in ~180 such cancels with six test processes at once; none in 240 alone).
    if (run.exited || (run.pid !== undefined && run.state === 'running' && childExited(run.pid))) {
      // The program already ended on its own (a cancel that crossed its end): its outcome
      // stands. Only left-over children still hold its output or its group; they go now, not
      // after the grace.
      this.#signal(run, 'SIGKILL');
      if (run.outputClosed) this.#finish(run);
      return;
    }
    run.stopping = why;
    // Set here, past the check above: a program that ended just as its time ran out ended in time.
    if (why === 'timeout') {
      run.timedOut = true;
    } else {
      run.error = reason;
      run.cancelledBy = by ?? 'shutdown';
    }
    if (run.state === 'queued') {
      const i = this.#queue.indexOf(run);
      if (i >= 0) this.#queue.splice(i, 1);
      this.#finish(run);
      return;
    }
    if (run.pid === undefined) return; // spawning failed; its 'error' finishes it
    this.#signal(run, 'SIGTERM');
    this.#timer(run, this.#o.commandsKillGraceMs, () => {
      if (run.finished) return;
      this.#signal(run, 'SIGKILL');
      // A program that even SIGKILL could not end (it runs as another user) must not hold
      // the run, its slot and whoever waits for it for ever: after one more grace, cut loose.
      this.#timer(run, this.#cutLooseMs(), () => this.#cutLoose(run));
    });
  }

  /**
   * How long after its group's SIGKILL a run's output has to end before it is cut loose: another
   * grace, and at least CUT_LOOSE_AFTER_KILL_MS, which a killed group's pipes need to reach
   * their end (with a grace of 0 they were cut loose in the same turn, their SIGNAL lost).
   */
  #cutLooseMs(): number {
    return Math.max(this.#o.commandsKillGraceMs, CUT_LOOSE_AFTER_KILL_MS);
  }

  /**
   * While a run waits out the grace for what its program left in its group
   * with the output closed (`outputClosed`): looks every GROUP_POLL_MS
   * whether that group still has a member. Such members end without an
   * event (they hold no pipe of ours), and once the last has gone the id is
   * free for the kernel to give to another process, which may lead a group
   * of that id: the grace's SIGKILL to it killed a stranger's group. So the
   * run ends as soon as its group is empty, and nothing is signalled to that
   * id from then on.
   */
  #watchGroup(run: Run): void {
    this.#timer(run, GROUP_POLL_MS, () => {
      if (run.finished || run.pid === undefined) return;
      if (groupAlive(run.pid)) {
        this.#watchGroup(run);
        return;
      }
      run.groupLeftAtExit = false;
      this.#finish(run);
    });
  }

  /** Signals the run's process group; a group we may not signal is logged (once per run), never thrown. */
  #signal(run: Run, signal: NodeJS.Signals): void {
    if (run.pid === undefined) return;
    // Reaped with nothing left in its group: the id is free for the kernel to give out again.
    if (run.groupLeftAtExit === false) return;
    const result = signalGroup(run.pid, signal);
    if (result === 'sent' && signal === 'SIGKILL') run.killed = true;
    if (result === 'denied' && !run.signalDenied) {
      run.signalDenied = true;
      this.#log.warn(
        { id: run.id, aid: run.request.aid, pid: run.pid, program: run.program.path, signal },
        'command processes run as another user (sudo? a set-user-ID program?) and cannot be stopped: they are left running',
      );
    }
  }

  /**
   * Stops reading output still held open by processes we cannot end, and ends the run.
   * A program that is itself still running no longer keeps Node's event loop alive:
   * an application that embeds Herald exits after close() instead of waiting for it.
   */
  #cutLoose(run: Run): void {
    // Ended meanwhile (its output closed in the same turn as the timer that calls this): nothing is left running.
    if (run.finished) return;
    run.cutLoose = true;
    // A process we could not signal is already logged (#signal); one that left the group
    // (`setsid prog &`) while holding the output got every signal sent to nobody and is
    // otherwise never mentioned: the run ends as the program did, and that process runs on.
    if (!run.signalDenied) {
      this.#log.warn(
        { id: run.id, aid: run.request.aid, pid: run.pid, program: run.program.path },
        'a process the command started left its process group (setsid?) and still holds its output: it is left running; Herald stops reading its output',
      );
    }
    run.child?.stdout?.destroy();
    run.child?.stderr?.destroy();
    run.child?.unref();
    this.#finish(run);
  }

  #output(run: Run, stream: 'stdout' | 'stderr', chunk: Buffer): void {
    run.output.push(stream, chunk);
    if (run.output.hasPending) this.#scheduleProgress(run);
    if (run.output.truncated) {
      // Past the cap what comes is dropped: read it at a trickle. The stream stops reading its pipe
      // while paused, the pipe fills, and the program waits in write() until the next read; its
      // end (or its timeout) still comes through, at most one pause later.
      const pipe = run.child?.[stream];
      if (pipe && !pipe.isPaused()) {
        pipe.pause();
        this.#timer(run, DROPPED_OUTPUT_READ_MS, () => pipe.resume());
      }
    }
  }

  #scheduleProgress(run: Run): void {
    if (run.progressTimer !== undefined || run.finished) return;
    const wait = Math.max(0, run.lastProgressAt + this.#o.commandsProgressMs - this.#tick());
    run.progressTimer = setTimeout(() => {
      run.progressTimer = undefined;
      this.#progress(run);
    }, wait);
  }

  /** A live-only progress frame (TTL 0: never stored) with the output since the previous one. */
  #progress(run: Run): void {
    run.lastProgressAt = this.#tick();
    const frame: CommandProgressFrame = {
      TYPE: 'COMMAND_PROGRESS', COMMAND_ID: run.id, PROGRAM: run.request.program, STATE: run.state, OUTPUT: '',
    };
    if (run.request.taskId !== undefined) frame.ID = run.request.taskId;
    const output = run.output.takePending(PROGRESS_MAX_CHARS);
    // The notifier refuses a send over maxSendBytes, counted as its JSON: 64 Ki characters of
    // control characters are 384 KiB of it (\u001b), and the frame was lost. The tail that fits.
    if (output !== '') frame.OUTPUT = jsonTail(output, this.#o.maxSendBytes - JSON.stringify(frame).length);
    void this.#notify(run, { ...frame }, 0);
  }

  #finish(run: Run): void {
    if (run.finished) return;
    run.finished = true;
    run.endedAt = this.#now();
    run.endedTick = this.#tick();
    for (const t of run.timers) clearTimeout(t);
    run.timers.clear();
    if (run.progressTimer !== undefined) clearTimeout(run.progressTimer);
    run.output.end();
    run.state = this.#outcome(run);
    // Nothing the run started may outlive it in its group (a stopped run's members that closed
    // their output early; children left behind, see outputClosed). Only a process that left
    // the group (setsid) is beyond this, as docs/commands.md says.
    if (run.pid !== undefined && groupAlive(run.pid)) this.#signal(run, 'SIGKILL');
    // The run stays in the history (commandsHistory of them) for its status: its ChildProcess,
    // about 4.8 KB with its pipes and handles, must not stay with it. Nothing reads it after
    // this: signals go to the group by pid, and output arriving late is dropped (output.end()).
    run.child = undefined;
    // A run that was launched held a slot, even if its spawn failed.
    if (run.startedAt !== undefined) this.#releaseSlot(run.request.aid);
    this.#active.delete(run.id);
    this.#history.set(run.id, run);
    while (this.#history.size > this.#o.commandsHistory) {
      const oldest = this.#history.keys().next().value;
      if (oldest === undefined) break;
      this.#history.delete(oldest);
    }
    const info = this.#info(run);
    // The live view ends with whatever output it had not seen yet, and the final state.
    this.#progress(run);
    const sent = this.#notify(run, this.#finalNotification(run, info), undefined);
    this.#record(finishedRecord(info, run.output.bytes));
    // Whoever waits for the run (a long poll, shutdown) hears of its end once the final notification is stored.
    void sent.then(() => {
      run.final = info;
      for (const settle of run.waiters) settle(info);
      run.waiters.clear();
    });
    this.#drain();
  }

  /**
   * The run's final notification, within maxSendBytes: the notifier refuses a send past it, counted
   * as its JSON, and the admin heard nothing of the run's end. Only the default notification holds
   * the output (up to commandsOutputCap, up to six times that as JSON: a control character is
   * \u001b), so that is what gives way: its TEXT keeps the head of the output that fits, then the
   * outputCut note, and its COMMAND says TRUNCATED. The command info (GET /api/v1/commands/:id)
   * keeps the whole output. Refusing at start-up a commandsOutputCap over a sixth of maxSendBytes
   * instead would have cut every run's kept output, and stopped servers that start today, for
   * outputs of control characters that few programs write.
   */
  #finalNotification(run: Run, info: CommandInfo): NotificationObject {
    const given = { success: run.request.success, error: run.request.error };
    const end: RunEnd = { cancelledBy: run.cancelledBy, leftRunning: run.cutLoose === true };
    const whole = finalNotification(info, given, end, this.#notes);
    const chosen = info.state === 'succeeded' ? given.success : given.error;
    // The caller's own SUCCESS or ERROR holds no output (and was serialised when the request came).
    if (typeof chosen === 'string' || (typeof chosen === 'object' && chosen !== null) || info.output === '') return whole;
    const max = this.#o.maxSendBytes;
    const cut: CommandInfo = { ...info, output: '', TRUNCATED: true };
    // The notification without its output, but with the outputCut note, and 2 for the line break
    // (`\n`) before the notes: the most all but the output may take.
    const rest = serialise(finalNotification(cut, given, end, this.#notes)).length + 2;
    // Each UTF-16 unit of output is at most 6 of JSON: with the default options, never more (1 MiB of
    // output in 16 MiB), and nothing is serialised here.
    if (rest + info.output.length * 6 <= max || serialise(whole).length <= max) return whole;
    cut.output = jsonHead(info.output, max - rest);
    this.#log.info(
      { id: run.id, aid: run.request.aid, outputChars: info.output.length, keptChars: cut.output.length, maxSendBytes: max },
      'command output cut in its final notification to fit maxSendBytes (the command info keeps all of it)',
    );
    return finalNotification(cut, given, end, this.#notes);
  }

  #releaseSlot(aid: number): void {
    this.#running--;
    const n = (this.#runningByAdmin.get(aid) ?? 1) - 1;
    if (n === 0) this.#runningByAdmin.delete(aid);
    else this.#runningByAdmin.set(aid, n);
  }

  #outcome(run: Run): CommandState {
    if (run.stopping === 'cancel' || run.stopping === 'shutdown') return 'cancelled';
    if (run.timedOut) return 'timed_out';
    if (run.error !== undefined) return 'failed';
    return run.exitCode === 0 ? 'succeeded' : 'failed';
  }

  /** Starts queued runs, in order, as slots allow; a run whose admin is at their limit does not hold up the others. */
  #drain(): void {
    if (this.#closing) return;
    for (let i = 0; i < this.#queue.length && this.#running < this.#o.commandsConcurrency; ) {
      const run = this.#queue[i] as Run;
      if (this.#hasSlot(run.request.aid)) {
        this.#queue.splice(i, 1);
        this.#launch(run);
      } else {
        i++;
      }
    }
  }

  #timer(run: Run, ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      run.timers.delete(t);
      fn();
    }, ms);
    run.timers.add(t);
    return t;
  }

  #timeout(requested: number | undefined): number {
    if (requested === undefined) return this.#o.commandsTimeoutSec;
    if (typeof requested !== 'number' || !Number.isFinite(requested) || requested <= 0) {
      throw new HeraldError('HERALD_ERR_VALIDATION', 'timeout must be a positive number of seconds');
    }
    return Math.min(requested, this.#o.commandsMaxTimeoutSec);
  }

  /** Sends one of the run's notifications; the promise settles when it was stored and sent (or failed, logged), never rejects. */
  #notify(run: Run, payload: NotificationPayload, ttlMs: number | undefined): Promise<void> {
    const to: Principal = { kind: 'admin', id: run.request.aid };
    const options = ttlMs === undefined ? {} : { ttlMs };
    return this.#notifier.send(to, payload, options).then(() => undefined, (e: unknown) => {
      this.#log.warn({ id: run.id, aid: run.request.aid, err: (e as Error).message }, 'command notification failed');
    });
  }

  #info(run: Run): CommandInfo {
    // On the monotonic clock: the wall clock's startedAt and endedAt may be a step apart.
    const durationMs = run.startedTick === undefined ? 0 : Math.round((run.endedTick ?? this.#tick()) - run.startedTick);
    const info: CommandInfo = {
      id: run.id, aid: run.request.aid, program: run.request.program, path: run.program.path, args: run.args,
      state: run.state, door: run.request.door, queuedAt: run.queuedAt, timeoutSec: run.timeoutSec,
      output: run.output.text, COMMAND_ID: run.id, EXIT_CODE: run.exitCode, SIGNAL: run.signal, TIMED_OUT: run.timedOut,
      DURATION_MS: durationMs, TRUNCATED: run.output.truncated,
    };
    if (run.request.taskId !== undefined) info.taskId = run.request.taskId;
    if (run.startedAt !== undefined) info.startedAt = run.startedAt;
    if (run.endedAt !== undefined) info.endedAt = run.endedAt;
    if (run.request.requestedBy !== undefined) info.requestedBy = run.request.requestedBy;
    if (run.error !== undefined) info.error = run.error;
    return info;
  }

  // ---- audit -----------------------------------------------------------------

  /** The audit store, when it also keeps the runs in progress. */
  get #journal(): (CommandAuditSink & CommandRunJournal) | undefined {
    const a = this.#audit;
    return a !== undefined && 'running' in a && 'unfinished' in a ? a : undefined;
  }

  /**
   * Keeps the run in the audit file until its `finished` record, with what a restart needs to tell
   * its processes: from its acceptance (no pid: queued), and again at its launch, with its pid.
   */
  #journalRun(run: Run, pid?: number): void {
    const journal = this.#journal;
    if (!journal) return;
    const entry: RunningCommandRecord = {
      record: finishedRecord(this.#info(run), 0), host: hostname(), heraldPid: process.pid,
    };
    if (pid !== undefined) {
      entry.pid = pid;
      const identity = processIdentity(pid);
      if (identity !== undefined) entry.identity = identity;
    }
    const herald = processIdentity(process.pid);
    if (herald !== undefined) entry.heraldIdentity = herald;
    try {
      journal.running(entry);
    } catch (err) {
      this.#log.warn({ id: run.id, err: (err as Error).message }, 'command audit sink failed');
    }
  }

  /**
   * Closes the runs an earlier Herald left open in the audit file: it was killed (SIGKILL, the
   * OOM killer), or died in a way that ran no 'exit' listener (a fatal V8 error, a signal it does
   * not handle), while they ran or waited in the queue. Each gets its `finished` record, so its id
   * answers from the trail: `cancelled` when its program was still running and is killed now (with
   * its group), or had never started (queued); `failed` when it had ended unseen; `error` says it was lost. A program is killed only while
   * its pid is provably the same process (processIdentity): a pid is reused. Runs of another
   * host, or of a Herald that is still running (two sharing the file), are not this start's.
   */
  #closeLostRuns(): void {
    const journal = this.#journal;
    if (!journal) return;
    let lost: RunningCommandRecord[];
    try {
      lost = journal.unfinished();
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'command audit: runs left unfinished by an earlier Herald could not be read');
      return;
    }
    const host = hostname();
    for (const run of lost) {
      if (run.host !== host || sameProcess(run.heraldPid, run.heraldIdentity)) continue;
      const now = this.#now();
      const rec: CommandAuditRecord = { ...run.record, endedAt: now, exitCode: null, signal: null, timedOut: false };
      delete rec.outputBytes;
      // An earlier process's start: only the wall clock spans both, and it may have stepped back.
      if (rec.startedAt !== undefined) rec.durationMs = Math.max(0, now - rec.startedAt);
      const before = 'lost: Herald stopped (killed or crashed) without seeing its end';
      if (run.pid === undefined) {
        // Accepted and still waiting for a slot (or its spawn failing): no program ever ran for it.
        rec.state = 'cancelled';
        rec.error = 'lost: Herald stopped (killed or crashed) before it started: it never ran';
      } else if (sameProcess(run.pid, run.identity)) {
        // Alive and provably the program Herald started: it leads its group (a session leader cannot
        // leave it), so the group id is still ours. A group whose leader is gone may be a stranger's.
        signalGroup(run.pid, 'SIGKILL');
        rec.state = 'cancelled';
        rec.error = `${before}; it was still running and was killed when Herald started again`;
      } else {
        rec.state = 'failed';
        rec.error = `${before}; it had ended when Herald started again, its outcome unknown`;
      }
      this.#log.warn({ id: rec.id, aid: rec.aid, pid: run.pid, program: rec.path, state: rec.state }, 'command run lost by an earlier Herald (killed or crashed while it ran or waited): closed in the audit trail');
      this.#record(rec);
    }
  }

  #record(rec: CommandAuditRecord): void {
    this.#log.info({ audit: 'command', ...rec }, 'command finished');
    this.#store(rec);
  }

  /**
   * A refused request: its log line (warn) and audit record, the first REFUSALS_RECORDED_PER_WINDOW
   * of its door and error code in each window; past those it is counted (#storeCounted).
   */
  #refused(rec: CommandAuditRecord, error: unknown): void {
    const code = isHeraldError(error) ? error.code : 'HERALD_ERR_INTERNAL';
    const logged = this.#refusals.log('warn', `${rec.door} ${code}`, { audit: 'command', ...rec }, 'command refused', 1, rec.program);
    if (logged && !this.#auditClosed) this.#store(rec);
  }

  /**
   * The audit record of the refusals of one door and error code that a window did not record
   * one by one: how many (`count`, also in `error`), and the programs asked most often (at
   * most five, each with its count: TopValues). Its `aid` is null: they may be anyone's.
   */
  #storeCounted(key: string, count: number, programs: Record<string, number>, windowMs: number, perWindow: number): void {
    if (this.#auditClosed) return;
    const space = key.indexOf(' ');
    const door = key.slice(0, space) as CommandDoor;
    const code = key.slice(space + 1);
    const rec: CommandAuditRecord & { count: number; programs: Record<string, number> } = {
      event: 'refused', aid: NaN, door, program: REFUSALS_COUNTED_PROGRAM, args: [], queuedAt: this.#now(),
      error: `${code}: ${count} more request${count === 1 ? '' : 's'} through the ${door} door refused with this code, not recorded one by one (at most ${perWindow} in ${windowMs / 1000} s are)`,
      count, programs,
    };
    this.#store(rec);
  }

  /** Hands the record to the audit store, if there is one; a store that fails is logged, never thrown. */
  #store(rec: CommandAuditRecord): void {
    if (!this.#audit) return;
    try {
      Promise.resolve(this.#audit.record(rec)).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'command audit sink failed'));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'command audit sink failed');
    }
  }
}

/** Waits for `p` at most `ms`; true when it settled in time. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms); });
  try {
    return await Promise.race([p.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What UTF-16 unit `i` of `text` (and the one after it, for a surrogate pair) comes to in JSON, as
 * JSON.stringify writes it and the notifier counts it (maxSendBytes: the JSON's length): `width`
 * units of text, `size` of JSON.
 */
function jsonUnit(text: string, i: number): { width: number; size: number } {
  const c = text.charCodeAt(i);
  if (c < 0x20) return { width: 1, size: c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6 };
  if (c === 0x22 || c === 0x5c) return { width: 1, size: 2 };
  if (c >= 0xd800 && c <= 0xdbff) {
    const next = text.charCodeAt(i + 1);
    // A pair goes as it is, and whole; a lone half is written \udXXX.
    return next >= 0xdc00 && next <= 0xdfff ? { width: 2, size: 2 } : { width: 1, size: 6 };
  }
  if (c >= 0xdc00 && c <= 0xdfff) return { width: 1, size: 6 };
  return { width: 1, size: 1 };
}

/** The longest head of `text` whose JSON string, without its quotes, is at most `room` long; never half a pair. */
export function jsonHead(text: string, room: number): string {
  if (text.length * 6 <= room) return text;
  let used = 0;
  let i = 0;
  while (i < text.length) {
    const { width, size } = jsonUnit(text, i);
    if (used + size > room) break;
    used += size;
    i += width;
  }
  return text.slice(0, i);
}

/** The longest tail of `text` whose JSON string, without its quotes, is at most `room` long; never half a pair. */
export function jsonTail(text: string, room: number): string {
  if (text.length * 6 <= room) return text;
  let used = 0;
  let from = text.length;
  while (from > 0) {
    const last = text.charCodeAt(from - 1);
    const prev = from >= 2 ? text.charCodeAt(from - 2) : 0;
    const start = last >= 0xdc00 && last <= 0xdfff && prev >= 0xd800 && prev <= 0xdbff ? from - 2 : from - 1;
    const { size } = jsonUnit(text, start);
    if (used + size > room) break;
    used += size;
    from = start;
  }
  return text.slice(from);
}

function validTaskId(id: unknown): boolean {
  return (typeof id === 'string' && id.length <= MAX_TASK_ID_CHARS) || (typeof id === 'number' && Number.isFinite(id));
}

/** `commandsEnv` entries (KEY=VALUE) → the child's whole environment. */
function parseEnv(entries: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [i, e] of entries.entries()) {
    const eq = e.indexOf('=');
    // Not quoted: an entry is often a password (a KEY= forgotten before it would be the whole of it).
    if (eq <= 0) throw new HeraldError('HERALD_ERR_CONFIG', `option "commandsEnv": entry ${i + 1} is not KEY=VALUE (${eq === 0 ? 'no name before its =' : 'no ='}; its text is not shown: it may hold a secret)`);
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return env;
}

