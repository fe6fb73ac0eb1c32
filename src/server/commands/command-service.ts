import type { NotificationPayload } from '../../protocol/frames.js';
import type { CommandDoor, CommandInfo } from '../../protocol/commands.js';

export type { CommandDoor, CommandInfo };
import type { Principal } from '../../protocol/principal.js';
import type { HeraldError } from '../errors.js';
import type { AuditQuery, CommandAuditRecord, StoredAuditRecord } from './outcome.js';


export interface CommandRequest {
  /** The admin who is told about the run (and who may cancel it). */
  aid: number;
  program: string;
  /** The argument vector. Never given to a shell. */
  args: string[];
  /**
   * Legacy `PROGRAM_ARGS` compatibility: split each element into words on
   * white space, quotes honoured, nothing else interpreted (docs/commands.md, "Running, safely").
   */
  splitArgs?: boolean;
  /** Seconds; default and maximum come from the configuration. */
  timeoutSec?: number;
  success?: NotificationPayload;
  error?: NotificationPayload;
  /** The caller's own id for the task, returned in the notifications. */
  taskId?: string | number;
  door: CommandDoor;
  /** Who asked, for the audit trail (an API token name, a legacy peer address). */
  requestedBy?: string;
}

/**
 * A request a front door refused for its shape before it reached start() (the HTTP
 * API's schema, the legacy parser): what it held, as it came, for the audit trail.
 */
export interface RefusedCommandRequest {
  door: CommandDoor;
  requestedBy?: string;
  aid?: unknown;
  program?: unknown;
  args?: unknown;
  taskId?: unknown;
}

/** The seam the front doors use; the CommandRunner implements it. */
export interface CommandService {
  /**
   * Checks the request against policy and limits, then queues or starts it
   * and returns at once (state `queued` or `running`). Throws HeraldError:
   * HERALD_ERR_COMMANDS_DISABLED, HERALD_ERR_VALIDATION, HERALD_ERR_COMMAND_FORBIDDEN,
   * HERALD_ERR_COMMAND_NOT_FOUND, HERALD_ERR_QUEUE_FULL, HERALD_ERR_SHUTTING_DOWN.
   */
  start(request: CommandRequest): Promise<CommandInfo>;
  /**
   * Records a request its front door refused (`error`, the answer the caller got)
   * as start() records its own refusals: a log line and an audit record. Every
   * authenticated attempt to run a program is in the trail, whichever layer said no.
   */
  refused(request: RefusedCommandRequest, error: HeraldError): void;
  get(id: string): CommandInfo | undefined;
  /**
   * A command this process no longer remembers (it ran before a restart, or has left
   * `commandsHistory`), answered from the persisted audit trail: its final state,
   * without output. Undefined when the trail is not persisted or does not hold it;
   * HERALD_ERR_UNAVAILABLE when it cannot be read now (its file locked by another
   * process): not a miss. Optional, as `wait`.
   */
  recorded?(id: string): RecordedCommandInfo | undefined;
  /**
   * Stops a queued or running command (its process group gets SIGTERM, then
   * SIGKILL) and resolves when it has ended. `by` is the browser principal
   * asking (COMMAND_CANCEL): only the admin who owns the command may cancel it
   * (HERALD_ERR_FORBIDDEN otherwise); without `by` (HTTP API, CLI) any command
   * may be cancelled. HERALD_ERR_NOT_FOUND for an unknown id, HERALD_ERR_CONFLICT
   * when it has already ended, HERALD_ERR_UNAVAILABLE when only the audit trail
   * could tell and it cannot be read now.
   */
  cancel(id: string, by?: Principal): Promise<CommandInfo>;
  /** Queued, running and recently finished commands, newest first (default 50). */
  list(limit?: number): CommandInfo[];
  /**
   * Resolves with the final info once the command has ended (undefined for an
   * unknown id); with `timeoutMs` or `signal`, with its info as it is then if
   * that comes first (a long poll that times out, a client gone). A wait that
   * stops early leaves nothing behind on the command. Optional only so that
   * test doubles need not implement it; the CommandRunner does.
   */
  wait?(id: string, options?: CommandWaitOptions): Promise<CommandInfo | undefined>;
  /** Counts for `/api/v1/status` (optional, as `wait`). */
  stats?(): CommandStats;
  /** The persisted audit trail, newest first; undefined when it is not persisted (log lines only); HERALD_ERR_UNAVAILABLE when its file is locked by another process. */
  audit?(query?: AuditQuery): StoredAuditRecord[] | undefined;
  /**
   * Refuses new requests, cancels the queue, stops running programs and waits
   * for them (each run's record and final notification written). `graceMs`:
   * the longest wait, in ms, between a program's SIGTERM and its SIGKILL, when
   * shorter than commandsKillGraceMs (the shutdown's grace, what is left of it).
   */
  close(graceMs?: number): Promise<void>;
}

/** How long CommandService.wait waits for a command's end. */
export interface CommandWaitOptions {
  /** Stop waiting after this many ms (at most 2^31 - 1). Default: until the command ends. */
  timeoutMs?: number;
  /** Stop waiting when it aborts (the HTTP client that polls went away). */
  signal?: AbortSignal;
}

/** A finished command as the audit trail remembers it (CommandService.recorded). */
export interface RecordedCommandInfo extends CommandInfo {
  /** Where the answer comes from: the audit trail, which does not keep the output (`output` is ""). */
  source: 'audit';
  /** The size of the output kept for the run, in bytes as UTF-8 (at most commandsOutputCap; not what the program wrote); the output itself is not. */
  outputBytes?: number;
}

export interface CommandStats {
  enabled: boolean;
  running: number;
  queued: number;
  /** The allowlist and what each entry resolved to at start-up (null: not installed). */
  allowed: { entry: string; path: string | null }[];
}

/**
 * A run in progress as the audit file keeps it from its acceptance until its `finished` record
 * is written (CommandRunJournal): enough for a restart to close it and to stop what is left of it.
 */
export interface RunningCommandRecord {
  /** The run as it was accepted (state `queued`) or started (`running`): a `finished` record with no end. */
  record: CommandAuditRecord;
  /** Its program's pid, which is also its process group's id; absent while the run waits in the queue (no program runs yet). */
  pid?: number;
  /** The program's processIdentity at launch (absent where /proc could not say): its pid may be another's by now. */
  identity?: string;
  /** The Herald that runs it: a restart closes only its own host's runs, and never those of a Herald still alive. */
  host: string;
  heraldPid: number;
  heraldIdentity?: string;
}

/**
 * An audit store that also keeps the runs in progress, so that a Herald killed or crashed
 * in the middle of one leaves a trace: the next start closes each with a `finished`
 * record (a `finished` record for a run also takes its entry out of the journal).
 */
export interface CommandRunJournal {
  /** Keeps the run until its `finished` record. */
  running(run: RunningCommandRecord): void;
  /** Runs kept by an earlier process (not this one) whose `finished` record was never written. */
  unfinished(): RunningCommandRecord[];
}
