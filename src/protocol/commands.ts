/**
 * Background-command frames (docs/commands.md, "Telling the admin"). Progress frames are live only
 * (not stored, not sequenced): they show life while a program runs. The end
 * of a run is an ordinary tracked notification (SUCCESS, ERROR, or the
 * default MESSAGE) that carries `COMMAND_ID` and a `COMMAND` summary, so a
 * tab that was away still learns the outcome.
 */
export type CommandState = 'queued' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled';

export interface CommandProgressFrame {
  TYPE: 'COMMAND_PROGRESS';
  COMMAND_ID: string;
  /** The caller's own task id, if it gave one. */
  ID?: string | number;
  PROGRAM: string;
  STATE: CommandState;
  /** Output produced since the previous progress frame (stdout and stderr interleaved). */
  OUTPUT: string;
}

/** Herald's description of a finished run, attached to the final notification as `COMMAND`. */
export interface CommandSummary {
  COMMAND_ID: string;
  STATE: CommandState;
  EXIT_CODE: number | null;
  SIGNAL: string | null;
  TIMED_OUT: boolean;
  DURATION_MS: number;
  /** True when output beyond the configured cap was dropped. */
  TRUNCATED: boolean;
}

/** Which front door asked for a command (for the audit trail). */
export type CommandDoor = 'legacy' | 'http' | 'cli' | 'browser';

/**
 * A background command as the HTTP API describes it (`GET /api/v1/commands/:id`):
 * the server's record of a run and the SDK's answer type alike.
 */
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
  /** The captured output so far (bounded by `commandsOutputCap`). */
  output: string;
  /** The requested timeout after defaults and the configured maximum, seconds. */
  timeoutSec: number;
  /** The file that runs (the allowlist entry's real path). */
  path: string;
  requestedBy?: string;
  /** Why the program could not run at all (spawn failure), or why it was stopped (shutdown). */
  error?: string;
}
