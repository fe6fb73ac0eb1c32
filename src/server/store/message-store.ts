/**
 * MessageStore: per-stream sequence numbers, the offline queue with a
 * time-to-live, and replay after reconnect (DESIGN.md). A stream is named by
 * a string key: a person's own stream (`admin:7`) or the broadcast stream of
 * a kind (`admin:*`). The delivery logic (ordering at the replay seam, acks,
 * fan-out) lives above the store, in the Notifier and the Gateway, so every
 * store (memory, SQLite, Redis) implements only this storage contract, and
 * one contract test suite (test/store-contract.ts) runs against each.
 */

import type { MessageStatus } from '../../protocol/delivery.js';

export interface AppendInput {
  /** Stream key, e.g. `admin:7` or `admin:*`. */
  stream: string;
  /** The notification as JSON (an object), exactly as it will be delivered, without SEQ/EPOCH. */
  json: string;
  /** Absolute expiry, epoch milliseconds. */
  expiresAt: number;
  /**
   * Same key in the same stream → stored once, while the notification it
   * first stored is retained: until that expires or the cap drops it (then
   * the key is forgotten with it, and the same key stores anew).
   */
  idempotencyKey?: string;
}

export interface AppendResult {
  /** Globally unique message id (for status look-ups). */
  id: string;
  seq: number;
  epoch: string;
  /** True when the idempotency key was seen before: nothing new was stored, seq/id are the original's. */
  duplicate: boolean;
  /** Messages dropped from the head of the stream because it exceeded its cap (oldest first). */
  dropped: number;
}

export interface StoredMessage {
  id: string;
  seq: number;
  json: string;
  expiresAt: number;
}

export interface StreamHead {
  epoch: string;
  /** Last SEQ assigned in this stream (0 when nothing ever was). */
  lastSeq: number;
  /** Lowest SEQ still retained (lastSeq + 1 when nothing is retained). */
  firstSeq: number;
  /**
   * Highest SEQ acknowledged by any tab (cumulative). A tab that connects
   * without a cursor (a new tab, the next morning) is replayed what came
   * after it: the notifications nobody has seen yet.
   */
  ackedSeq: number;
}

export interface ReadResult extends StreamHead {
  /** Unexpired messages with seq > afterSeq, in order, at most `limit`. */
  messages: StoredMessage[];
}

export type { MessageStatus };

export interface MessageStore {
  /** Appends in order; assigns the next SEQ of the stream. Enforces the per-stream cap. */
  append(input: AppendInput, now: number): Promise<AppendResult>;
  /**
   * Appends several, in order, as one write (one transaction for a durable
   * store): one result per input, the same as appending them one by one in
   * that order. Fails as a whole, having stored none of them.
   */
  appendMany(inputs: readonly AppendInput[], now: number): Promise<AppendResult[]>;
  /**
   * The stream's current position (creates the stream's epoch if it has
   * none). A store that has it at hand answers without a promise: every
   * connect reads two heads. It may throw (a closed store) instead of rejecting.
   */
  head(stream: string): StreamHead | Promise<StreamHead>;
  /** Unexpired messages after `afterSeq`, oldest first. */
  readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult>;
  /** Records a cumulative acknowledgement (keeps the maximum). */
  ack(stream: string, seq: number): Promise<void>;
  /**
   * Records several cumulative acknowledgements (stream → SEQ) as one write
   * (one transaction for a durable store), the same as acking each alone. A
   * store that applies them at once returns nothing, not a promise, and does
   * not keep the map: the Gateway's AckBuffer writes whatever the tabs acked
   * in a turn of the event loop, which is one ack in most turns.
   */
  ackMany(acks: ReadonlyMap<string, number>): Promise<void> | undefined;
  status(id: string, now: number): Promise<MessageStatus | undefined>;
  /** Removes expired messages; returns how many. Must not stall the event loop for long. */
  prune(now: number): Promise<number>;
  close(): Promise<void>;
  /**
   * Why the store can store nothing more, once that is so (the SQLite file
   * deleted or replaced under it, its lock taken by another process);
   * undefined while it is well. `/healthz` answers 503 while it is set.
   * Reading it checks the SQLite file and its WAL (two stat calls), so a
   * file deleted while nothing is written is reported when a monitor asks,
   * not at the next write; only the health verdict reads it, never a send.
   */
  readonly failure?: string | undefined;
  /**
   * Why the last write failed (the disk full, a write error), while writes
   * fail and the store is otherwise well: every stored send is refused with
   * 503 until one commits again, which clears it. `/healthz` answers 503
   * while it is set too.
   */
  readonly writeFailure?: string | undefined;
  /** What `/api/v1/status` shows of the store: counts, read from memory without touching the file. */
  counts(): StoreCounts;
}

/** A store's counts for an operator (`/api/v1/status`'s `store`). */
export interface StoreCounts {
  /** Streams with state: a person's own (written or acked once) and the broadcast streams. */
  streams: number;
  /** Notifications held for tabs, acknowledged or not, until dropped past maxPerStream or expired. */
  retained: number;
  /**
   * What their JSON comes to: the sum of its lengths (a byte a character for
   * ASCII), as the store counts them against maxRetainedBytes.
   */
  retainedBytes: number;
  /** The store's cap on retainedBytes (the option maxRetainedBytes); 0 = none. */
  maxRetainedBytes: number;
  /** Memory their JSON takes: the arena's chunks outside the JavaScript heap (1 MiB each), and the strings too long for them, each text once (a list send's people share one). */
  retainedMemoryBytes: number;
  /** Idempotency keys of stored sends held: at most one per retained notification (docs/delivery.md, Sending). */
  keys: number;
  /** The SQLite store's write transactions (each a batch of appends and acks); absent for the memory store. */
  transactions?: number;
  /**
   * The SQLite store's writes refused because their transaction failed (the
   * disk full), since the start: a send counts its notifications, an ack
   * batch its streams. Absent for the memory store.
   */
  writeFailures?: number;
  /** True while the SQLite store's writes fail (see MessageStore.writeFailure), or for good once its file is lost; absent for the memory store. */
  writesFailing?: boolean;
  /** The SQLite store's background work on its write-ahead log; absent for the memory store (and an in-memory SQLite file). */
  wal?: {
    /** Checkpoints the worker thread completed, and catch-ups asked for after a WAL grew past its bound (`holds`: those that held the commits). */
    checkpoints: number; catchUps: number; holds: number;
    /** Background fsyncs of the WAL (sqliteSynchronous normal), and how many failed. */
    syncs: number; syncFailures: number;
  };
}

export interface MessageStoreLimits {
  /** Messages kept per stream; beyond it the oldest are dropped. */
  maxPerStream: number;
  /**
   * The most the retained notifications' JSON may come to (StoreCounts.retainedBytes);
   * an append past it is refused with 503 HERALD_ERR_UNAVAILABLE, the whole call
   * (appendMany) with it. 0 or absent = no cap.
   */
  maxRetainedBytes?: number;
}
