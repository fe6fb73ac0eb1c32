/**
 * The shapes the SDK sends and receives: the HTTP API's JSON
 * (docs/http-api.md) in TypeScript. Kept here rather than imported from the
 * server so that the SDK ships to backends without any server code; only the
 * wire types in src/protocol are shared.
 */
import type { NotificationObject, NotificationPayload } from '../protocol/frames.js';
import type { CommandInfo as WireCommandInfo, CommandState } from '../protocol/commands.js';
import type { MessageStatus } from '../protocol/delivery.js';
import type { PrincipalKind } from '../protocol/principal.js';

export type { NotificationObject, NotificationPayload, CommandState, MessageStatus, PrincipalKind };

/** Who a notification is for: exactly one of these fields. */
export type Recipient =
  | { aid: number }
  | { uid: number }
  | { aids: readonly number[] }
  | { uids: readonly number[] }
  | { all: 'admins' | 'users' };

/** One person: an admin by AID or a user by UID. */
export type Person = { aid: number } | { uid: number };

/**
 * What {@link BrowserSender.sendMessage} takes: a recipient plus the message.
 * A recipient key's value must be set; the others must be absent.
 */
export type SendMessageInput = Recipient & {
  /**
   * An object with TYPE/TITLE/TEXT (and any other fields, which pass through
   * untouched), or a string. A string without `title` is delivered as that
   * string, as the old daemon did; with `title` it becomes
   * `{TYPE:"MESSAGE", TITLE: title, TEXT: message}`, as the Perl client's
   * `send_message({AID, MESSAGE, TITLE})` built it. An object without TYPE
   * gets `TYPE: "MESSAGE"`.
   */
  message: NotificationPayload | Omit<NotificationObject, 'TYPE'>;
  /** Sets TITLE (on an object only when it has none). */
  title?: string;
  /**
   * How long the notification waits for a tab that is not open now, in
   * seconds. 0: only tabs open now. Default: the server's `defaultTtlMs`.
   */
  ttl?: number;
  /**
   * The same key for the same recipient is delivered once, while the server
   * keeps the key: for the TTL of a stored send (in the memory store, not
   * across a restart), 5 minutes on the node that took it for a live-only
   * one (not across a restart). The SDK repeats a send whose answer was lost
   * only with a key and an explicit `ttl` above 0 (docs/sdk.md, Retries).
   */
  idempotencyKey?: string;
};

/** The outcome for one person of a send. */
export interface PersonSendResult {
  kind: PrincipalKind;
  id: number;
  /** Tabs that had it pushed now. */
  delivered: number;
  /** Stored for tabs that connect or resume later. */
  queued: boolean;
  /** The stored message's id (for {@link BrowserSender.messageStatus}); absent when not stored. */
  messageId?: string;
  seq?: number;
  epoch?: string;
  /** The idempotency key was seen before: nothing new was sent. */
  duplicate: boolean;
  /** Older notifications dropped from this person's stream by its cap. */
  dropped: number;
}

/** The answer of `POST /api/v1/send`. */
export interface SendResult {
  /** Tabs that got it now (for `all`: people online). */
  delivered: number;
  /** Stored for later tabs (true when at least one recipient's copy was stored). */
  queued: boolean;
  /**
   * Per person, in the order of the request's first mention of each (absent
   * for `all`): the server sends once to each person, so `aids: [7, 7, 8]`
   * has two results.
   */
  results?: PersonSendResult[];
  /** For `all`: the broadcast's stored id. */
  messageId?: string;
  seq?: number;
  epoch?: string;
  /** For `all`: the idempotency key was seen before, nothing new was sent. */
  duplicate?: boolean;
  /** For `all`: older notifications dropped from the broadcast's stream by its cap. */
  dropped?: number;
  /**
   * True when the SDK sent the request more than once (an earlier attempt
   * was refused by a server restarting, or its answer was lost: docs/sdk.md,
   * Retries); absent otherwise. This is the last attempt's answer: with
   * `duplicate`, the earlier attempt went through and the repeat was
   * recognised by its idempotency key, so `delivered` (0) counts only the
   * repeat's tabs, not the first attempt's.
   */
  retried?: boolean;
}

/** The answer of `GET /api/v1/ping`. */
export interface PingResult {
  ok: boolean;
  version: string;
}

/** The answer of `GET /api/v1/status`. */
export interface ServerStatus {
  version: string;
  /** /healthz's verdict: false while the server cannot do its work (its store cannot write); `problem` says why. */
  healthy: boolean;
  /** Why it is not healthy; absent while it is. */
  problem?: string;
  uptimeMs: number;
  /** Tabs connected to this server. */
  connections: { admin: number; user: number };
  /** People with a tab open. */
  online: { admin: number; user: number };
  /** Most tabs this server holds at once (maxTabs, or what its open-file limit allows); 0: no limit. */
  maxTabs: number;
  /** `sqlite` or `memory`. */
  store: string;
  /**
   * What the store holds: streams, notifications retained for tabs, their
   * bytes and the idempotency keys held; with SQLite also its transactions,
   * the writes refused because they failed (the disk full) and whether they
   * fail now, and its WAL work (docs/http-api.md).
   */
  storeCounts: {
    /** retainedBytes: their JSON's length, against maxRetainedBytes (0: no cap); retainedMemoryBytes: the memory it takes. */
    streams: number; retained: number; retainedBytes: number; maxRetainedBytes: number; retainedMemoryBytes: number; keys: number;
    transactions?: number; writeFailures?: number; writesFailing?: boolean;
    wal?: { checkpoints: number; catchUps: number; holds: number; syncs: number; syncFailures: number };
  };
  broker: string;
  resolver: string;
  /** null until a session look-up fails; then the last failure and whether look-ups fail still. */
  resolverFailures: { failing: boolean; reason: string; since: number; lastAt: number; count: number; total: number } | null;
  commands: unknown;
  /** The server process's resident set size, bytes; null when it could not be read (the process out of file descriptors). */
  memory: { rss: number | null };
  [field: string]: unknown;
}

/** A browser token and when it stops being accepted. */
export interface ConnectToken {
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

/** Options of {@link BrowserSender.runInBackground} (the seed's `run_in_background`). */
export interface RunInBackgroundOptions {
  /** The argument vector; never given to a shell. `['-c', '3', '-q', '127.0.0.1']`. */
  args?: readonly string[];
  /** Seconds before the program (and its children) is killed. Default and maximum: the server's config. */
  timeout?: number;
  /** The notification the admin gets when the program exits 0 (default: the program's output). */
  success?: NotificationPayload;
  /** The notification the admin gets when it fails, times out or is cancelled. */
  error?: NotificationPayload;
  /** Your own id for the task, returned in the notifications. */
  id?: string | number;
  /** The admin to notify; default: the constructor's `aid`. */
  aid?: number;
  /** For the server's audit trail: which front door asked (`herald run` sends `cli`). Default `http`. */
  door?: 'http' | 'cli';
}

/** Options of {@link BrowserSender.commandStatus}. */
export interface CommandStatusOptions {
  /** Return only the output after this many characters (stream by polling); the answer's `outputLength` is the next `since`. */
  since?: number;
  /** Seconds the server may hold the answer waiting for the command to end (long poll, at most 60); the request's deadline is `timeoutMs` plus this. */
  wait?: number;
}

/** A background command as the server describes it (`GET /api/v1/commands/:id`). */
export type CommandInfo = WireCommandInfo & {
  /** With `since`: the length of the whole output so far (the next `since`). */
  outputLength?: number;
  /**
   * Present when the command ran before the server restarted (or has left its
   * `commandsHistory`): its final state from the audit trail, which keeps no
   * output (`output` is empty).
   */
  source?: 'audit';
  /** With `source: 'audit'`: the UTF-8 size of the output Herald kept (at most `commandsOutputCap`), in bytes; the trail keeps no output. */
  outputBytes?: number;
};

/**
 * A command as {@link BrowserSender.listCommands} lists it: without its
 * output, which {@link BrowserSender.commandStatus} gives.
 */
export type ListedCommand = Omit<CommandInfo, 'output'>;

/** The answer of the legacy endpoint: what the old daemon answered (`0`, `1`, `{TYPE:"PONG"}`, `{TYPE:"RESULT",…}`, `{TYPE:"ERROR",…}`). */
export type { LegacyAnswer } from '../protocol/legacy.js';
