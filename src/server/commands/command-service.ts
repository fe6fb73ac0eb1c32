import type { NotificationPayload } from '../../protocol/frames.js';
import type { CommandState, CommandSummary } from '../../protocol/commands.js';
import type { Principal } from '../../protocol/principal.js';

/** Which front door asked for a command (for the audit trail). */
export type CommandDoor = 'legacy' | 'http' | 'cli' | 'browser';

export interface CommandRequest {
  /** The admin who is told about the run (and who may cancel it). */
  aid: number;
  program: string;
  /** The argument vector. Never given to a shell. */
  args: string[];
  /**
   * Legacy `PROGRAM_ARGS` compatibility: split each element into words on
   * white space, quotes honoured, nothing else interpreted (PROTOCOL.md §4).
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

export interface CommandInfo extends Omit<CommandSummary, 'STATE'> {
  id: string;
  aid: number;
  program: string;
  args: string[];
  taskId?: string | number;
  state: CommandState;
  door: CommandDoor;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  /** The captured output so far (bounded). */
  output: string;
}

/** The seam the front doors use; the CommandRunner implements it. */
export interface CommandService {
  start(request: CommandRequest): Promise<CommandInfo>;
  get(id: string): CommandInfo | undefined;
  /** `by` is checked: only the owning admin may cancel from a browser. */
  cancel(id: string, by?: Principal): Promise<CommandInfo>;
  list(limit?: number): CommandInfo[];
  close(): Promise<void>;
}
