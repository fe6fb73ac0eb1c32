/**
 * What the admin is told when a command ends (docs/commands.md, "Telling the admin"), and the audit
 * record every run leaves.
 */
import type { Logger } from 'pino';
import type { CommandState, CommandSummary } from '../../protocol/commands.js';
import type { NotificationObject, NotificationPayload } from '../../protocol/frames.js';
import { headOf } from '../../protocol/text-cut.js';
import { HeraldError, isHeraldError } from '../errors.js';
import type { CommandDoor, CommandInfo, RecordedCommandInfo, RefusedCommandRequest } from './command-service.js';

/**
 * The final notification: the caller's `SUCCESS` when the exit status was 0,
 * its `ERROR` otherwise (the old daemon had the two reversed), or else the
 * old default `{"TYPE":"MESSAGE","TITLE":<program>,"TEXT":<output>,"ID":<task id>}`.
 * Herald adds `COMMAND_ID` and a `COMMAND` summary, which an old browser
 * script ignores; the default text also says, after the output, why a run
 * that did not succeed ended, because an old script shows only TITLE and TEXT.
 * The default also carries `FORMAT: "text"`: its TEXT is plain text, not HTML.
 */
export function finalNotification(
  info: CommandInfo,
  given: { success?: NotificationPayload | undefined; error?: NotificationPayload | undefined },
  end: RunEnd = {},
  notes: CommandNotes = DEFAULT_NOTES,
): NotificationObject {
  const summary = summaryOf(info);
  const chosen = info.state === 'succeeded' ? given.success : given.error;
  let base: NotificationObject;
  if (typeof chosen === 'string') {
    base = { TYPE: 'MESSAGE', TITLE: info.program, TEXT: chosen };
  } else if (chosen !== undefined && chosen !== null && typeof chosen === 'object') {
    // Like the legacy DATA rule: an object without a TYPE is a MESSAGE.
    base = { ...chosen, TYPE: typeof chosen.TYPE === 'string' ? chosen.TYPE : 'MESSAGE' };
  } else {
    // TEXT is the program's output as it printed it, as the old daemon sent it; FORMAT says it is
    // plain text, so the browser library shows `<incomplete>` (arp) as written and an
    // `<a href>` in the output of a probe a subscriber can influence as text, not as a live link.
    base = { TYPE: 'MESSAGE', TITLE: info.program, TEXT: defaultText(info, end, notes), FORMAT: 'text' };
  }
  if (info.taskId !== undefined && base.ID === undefined) base.ID = info.taskId;
  base.COMMAND_ID = info.id;
  base.COMMAND = summary;
  return base;
}

export function summaryOf(info: CommandInfo): CommandSummary {
  return {
    COMMAND_ID: info.id,
    STATE: info.state,
    EXIT_CODE: info.EXIT_CODE,
    SIGNAL: info.SIGNAL,
    TIMED_OUT: info.TIMED_OUT,
    DURATION_MS: info.DURATION_MS,
    TRUNCATED: info.TRUNCATED,
  };
}

/** How a run ended, beyond what its command info says (the runner knows it). */
export interface RunEnd {
  /** Who stopped it, when it was cancelled: an admin (by id), the API, or the server's shutdown. */
  cancelledBy?: number | 'api' | 'shutdown';
  /** A process it started still held its output when it ended, and was left running. */
  leftRunning?: boolean;
}

/**
 * The bracketed lines the default final text adds after the output (docs/commands.md,
 * "Telling the admin"), by name, each with the placeholders it may use. An old browser
 * script shows only TITLE and TEXT, so these are what its admin reads of how a run ended:
 * `commandsNotes` gives them in the panel's language.
 */
export const DEFAULT_NOTES = {
  exitStatus: '[exit status {code}]',
  killedBy: '[killed by {signal}]',
  timedOut: '[timed out after {seconds} s: stopped]',
  cancelledByAdmin: '[cancelled: by admin {admin}]',
  cancelledByApi: '[cancelled: through the API]',
  cancelledAtShutdown: '[cancelled: server shutting down]',
  couldNotRun: '[could not run: {error}]',
  outputCut: '[output cut: too long]',
  leftRunning: '[a process it started still held its output at the end: left running]',
} as const;

export type NoteName = keyof typeof DEFAULT_NOTES;
export type CommandNotes = Readonly<Record<NoteName, string>>;

/** The placeholders each note may use; any other `{name}` in a given note is refused at start-up. */
const NOTE_PLACEHOLDERS: Readonly<Record<NoteName, readonly string[]>> = {
  exitStatus: ['code'],
  killedBy: ['signal'],
  timedOut: ['seconds'],
  cancelledByAdmin: ['admin'],
  cancelledByApi: [],
  cancelledAtShutdown: [],
  couldNotRun: ['error'],
  outputCut: [],
  leftRunning: [],
};

const PLACEHOLDER = /\{([A-Za-z]*)\}/g;

/**
 * `commandsNotes` (NAME=TEXT entries) over the defaults. Refused, with the entry's number:
 * an entry without `=`, a name that is not a note, a name given twice, and a placeholder
 * the note does not have (a typo would otherwise reach every admin as `{cdoe}`).
 */
export function parseCommandNotes(entries: readonly string[]): CommandNotes {
  const notes: Record<NoteName, string> = { ...DEFAULT_NOTES };
  const given = new Set<string>();
  const bad = (i: number, why: string) => new HeraldError('HERALD_ERR_CONFIG', `option "commandsNotes": entry ${i + 1} ${why}`);
  entries.forEach((raw, i) => {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw bad(i, `is not NAME=TEXT (${JSON.stringify(raw.slice(0, 100))})`);
    const name = raw.slice(0, eq);
    if (!Object.hasOwn(DEFAULT_NOTES, name)) throw bad(i, `names ${JSON.stringify(name.slice(0, 100))}, which is not a note: the notes are ${Object.keys(DEFAULT_NOTES).join(', ')}`);
    if (given.has(name)) throw bad(i, `gives "${name}" a second time`);
    given.add(name);
    const text = raw.slice(eq + 1);
    const allowed = NOTE_PLACEHOLDERS[name as NoteName];
    for (const m of text.matchAll(PLACEHOLDER)) {
      if (!allowed.includes(m[1]!)) {
        throw bad(i, `("${name}") has the placeholder ${m[0]}, which it does not fill: ${allowed.length > 0 ? `it has ${allowed.map((p) => `{${p}}`).join(', ')}` : 'it has none'}`);
      }
    }
    notes[name as NoteName] = text;
  });
  return notes;
}

/** A note with its placeholders filled; a value is inserted as it is (it is never read as a template). */
function note(notes: CommandNotes, name: NoteName, values: Readonly<Record<string, string | number>> = {}): string {
  return notes[name].replace(PLACEHOLDER, (whole, key: string) => (Object.hasOwn(values, key) ? String(values[key]) : whole));
}

/**
 * The output, then one bracketed line per thing worth saying. A clean success is the output alone, as before.
 * An empty note says nothing (a panel may leave one out).
 */
function defaultText(info: CommandInfo, end: RunEnd, notes: CommandNotes): string {
  const lines: string[] = [];
  if (info.state === 'timed_out') lines.push(note(notes, 'timedOut', { seconds: info.timeoutSec }));
  else if (info.state === 'cancelled') lines.push(cancelNote(info, end, notes));
  else if (info.error) lines.push(note(notes, 'couldNotRun', { error: info.error }));
  else if (info.state === 'failed') lines.push(info.EXIT_CODE !== null ? note(notes, 'exitStatus', { code: info.EXIT_CODE }) : note(notes, 'killedBy', { signal: info.SIGNAL ?? '?' }));
  if (info.TRUNCATED) lines.push(note(notes, 'outputCut'));
  if (end.leftRunning) lines.push(note(notes, 'leftRunning'));
  const said = lines.filter((l) => l !== '');
  if (said.length === 0) return info.output;
  const sep = info.output === '' || info.output.endsWith('\n') ? '' : '\n';
  return `${info.output}${sep}${said.join('\n')}`;
}

function cancelNote(info: CommandInfo, end: RunEnd, notes: CommandNotes): string {
  const by = end.cancelledBy;
  if (typeof by === 'number') return note(notes, 'cancelledByAdmin', { admin: by });
  if (by === 'api') return note(notes, 'cancelledByApi');
  if (by === 'shutdown') return note(notes, 'cancelledAtShutdown');
  // Not known to have been stopped (a run the runner did not stop itself): what it recorded.
  return info.error ? `[cancelled: ${info.error}]` : '[cancelled]';
}

/** One structured log line per run (and per refusal): who asked, through which door, what ran, how it ended. */
export interface CommandAuditRecord {
  event: 'finished' | 'refused';
  id?: string;
  aid: number;
  door: CommandDoor;
  requestedBy?: string;
  program: string;
  path?: string;
  args: string[];
  taskId?: string | number;
  queuedAt: number;
  startedAt?: number;
  endedAt?: number;
  state?: CommandState;
  exitCode?: number | null;
  signal?: string | null;
  timedOut?: boolean;
  truncated?: boolean;
  durationMs?: number;
  /** The run's timeout, seconds (records written before it was recorded lack it). */
  timeoutSec?: number;
  outputBytes?: number;
  /** Refusal code, spawn error, or stop reason. */
  error?: string;
}

/**
 * Where audit records go besides the log. The embedded store may persist
 * them (delivery issue); until then the structured log line is the record.
 */
export interface CommandAuditSink {
  record(entry: CommandAuditRecord): void | Promise<void>;
}

export interface AuditQuery {
  /** Newest first, at most this many (default 100). */
  limit?: number;
  /** Only this admin's. */
  aid?: number;
  /** Only rows older than this row number (paging: the last `row` of the previous page). */
  before?: number;
}

/** A stored record with its row number (ascending with time). */
export type StoredAuditRecord = CommandAuditRecord & { row: number };

/** A sink that can also be read back, and must be closed (the SQLite audit file). */
export interface CommandAuditStore extends CommandAuditSink {
  recent(query?: AuditQuery): StoredAuditRecord[];
  /** The `finished` record of the run with this id, if the trail still holds it. */
  finished(id: string): StoredAuditRecord | undefined;
  close(): void;
  /** Where the store logs what it cannot say by throwing (a rotated or locked file); the runner hands over its logger. */
  useLogger?(log: Pick<Logger, 'warn' | 'info'>): void;
}

/** Audit records keep at most this many characters of each argument… */
export const AUDIT_ARG_CHARS = 256;
/** …and of all arguments together (each counting at least one, so many empty ones are bounded too). */
export const AUDIT_ARGS_CHARS = 4096;
/** The program as asked, the task id, who asked and the error message keep at most this many characters each. */
export const AUDIT_TEXT_CHARS = 1024;

/**
 * `text` cut to `max` characters, with a visible note of how much was cut. A request may
 * carry up to a megabyte of arguments (legacyMaxRequestBytes, maxBodyBytes), and every
 * record is a log line and a row kept `commandsAuditKeep` times over: the record says what
 * ran, not every byte of it.
 */
export function auditText(text: string, max = AUDIT_TEXT_CHARS): string {
  if (text.length <= max) return text;
  const head = headOf(text, max);
  return `${head}…[${text.length - head.length} more characters cut]`;
}

/** The arguments as the audit keeps them: each cut to AUDIT_ARG_CHARS, and past AUDIT_ARGS_CHARS in all the rest replaced by one note. */
export function auditArgs(args: readonly unknown[]): string[] {
  const kept: string[] = [];
  let used = 0;
  for (let i = 0; i < args.length; i++) {
    const room = AUDIT_ARGS_CHARS - used;
    if (room <= 0) {
      kept.push(`…[${args.length - i} more arguments cut]`);
      break;
    }
    const arg = shownValue(args[i]);
    kept.push(auditText(arg, Math.min(AUDIT_ARG_CHARS, room)));
    used += Math.max(1, Math.min(arg.length, AUDIT_ARG_CHARS, room));
  }
  return kept;
}

/**
 * A field of a refused request as text. It may hold any JSON (the HTTP body was refused
 * for its shape): never String() of an object, which a hostile one makes throw
 * (`{"toString":0}`), and which would say nothing anyway.
 */
function shownValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === undefined) return '[not given]';
  return `[not a string: ${v === null ? 'null' : Array.isArray(v) ? 'a list' : 'an object'}]`;
}

export function finishedRecord(info: CommandInfo, outputBytes: number): CommandAuditRecord {
  const rec: CommandAuditRecord = {
    event: 'finished', id: info.id, aid: info.aid, door: info.door, program: auditText(info.program), path: info.path, args: auditArgs(info.args),
    queuedAt: info.queuedAt, state: info.state, exitCode: info.EXIT_CODE, signal: info.SIGNAL, timedOut: info.TIMED_OUT,
    truncated: info.TRUNCATED, durationMs: info.DURATION_MS, timeoutSec: info.timeoutSec, outputBytes,
  };
  if (info.requestedBy !== undefined) rec.requestedBy = auditText(info.requestedBy);
  if (info.taskId !== undefined) rec.taskId = auditTaskId(info.taskId);
  if (info.startedAt !== undefined) rec.startedAt = info.startedAt;
  if (info.endedAt !== undefined) rec.endedAt = info.endedAt;
  if (info.error !== undefined) rec.error = auditText(info.error);
  return rec;
}

/**
 * A finished run as the audit trail remembers it, in the shape of its command info
 * (`GET /api/v1/commands/:id` after a restart, or once the run has left `commandsHistory`).
 * The trail does not keep the output: `output` is empty and `outputBytes` says how much
 * was kept (its UTF-8 bytes, at most commandsOutputCap); `args`, `program` and `error` are as the record cut them (AUDIT_*_CHARS).
 */
export function recordedInfo(rec: CommandAuditRecord & { id: string; state: CommandState }): RecordedCommandInfo {
  const info: RecordedCommandInfo = {
    id: rec.id, aid: rec.aid, program: rec.program, path: rec.path ?? '', args: rec.args, state: rec.state, door: rec.door,
    queuedAt: rec.queuedAt, timeoutSec: rec.timeoutSec ?? 0, output: '',
    COMMAND_ID: rec.id, EXIT_CODE: rec.exitCode ?? null, SIGNAL: rec.signal ?? null, TIMED_OUT: rec.timedOut ?? rec.state === 'timed_out',
    DURATION_MS: rec.durationMs ?? 0, TRUNCATED: rec.truncated ?? false, source: 'audit',
  };
  if (rec.taskId !== undefined) info.taskId = rec.taskId;
  if (rec.requestedBy !== undefined) info.requestedBy = rec.requestedBy;
  if (rec.startedAt !== undefined) info.startedAt = rec.startedAt;
  if (rec.endedAt !== undefined) info.endedAt = rec.endedAt;
  if (rec.error !== undefined) info.error = rec.error;
  if (rec.outputBytes !== undefined) info.outputBytes = rec.outputBytes;
  return info;
}

/** A refused request, recorded from whatever it held (it may be malformed: see RefusedCommandRequest). */
export function refusedRecord(request: RefusedCommandRequest, at: number, e: unknown): CommandAuditRecord {
  const { args } = request;
  const rec: CommandAuditRecord = {
    event: 'refused', aid: typeof request.aid === 'number' ? request.aid : NaN, door: request.door,
    program: auditText(shownValue(request.program)),
    args: Array.isArray(args) ? auditArgs(args) : args === undefined ? [] : [`[not a list: ${auditText(shownValue(args), AUDIT_ARG_CHARS)}]`],
    queuedAt: at,
    error: auditText(isHeraldError(e) ? `${e.code}: ${e.message}` : String(e)),
  };
  if (request.requestedBy !== undefined) rec.requestedBy = auditText(String(request.requestedBy));
  if (request.taskId !== undefined) rec.taskId = auditTaskId(request.taskId);
  return rec;
}

/** A task id as the audit keeps it; a refused request may hold anything there (the HTTP body's `id` is any JSON). */
function auditTaskId(id: unknown): string | number {
  if (typeof id === 'number') return id;
  if (typeof id === 'string') return auditText(id);
  return `[not a string or a number: ${id === null ? 'null' : Array.isArray(id) ? 'a list' : typeof id}]`;
}
