import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { HeraldError } from '../errors.js';
import type {
  AppendInput, AppendResult, MessageStatus, MessageStore, MessageStoreLimits, ReadResult, StoredMessage, StreamHead,
} from './message-store.js';
import { derivedEpoch, messageId, newEpoch, parseMessageId } from './message-id.js';
import { PruneTimer } from './prune-timer.js';

export interface SqliteStoreOptions extends MessageStoreLimits {
  /** Path of the database file (created when missing). `:memory:` for a throw-away store. */
  file: string;
  /**
   * `normal` (default): under WAL a commit is not fsynced; a killed process
   * loses nothing, a power cut may lose the last commits. `full`: one fsync
   * per batch (see docs/delivery.md for the figures).
   */
  synchronous?: 'normal' | 'full';
  /** Largest number of writes grouped into one transaction. Default 1000. */
  maxBatch?: number;
  /** Rows deleted per pruning transaction; the loop yields between them. Default 100. */
  pruneBatch?: number;
  /** Background pruning every this many ms; 0 or absent = only when prune() is called. */
  pruneIntervalMs?: number;
  /** This boot of the machine (tests); default: Linux's /proc/sys/kernel/random/boot_id. */
  bootId?: string;
  /** Told how each background pruning pass went. */
  onPrune?: (removed: number, error?: unknown) => void;
}

/** Counters for tests and the status route. */
export interface SqliteStoreStats {
  /** Transactions committed by the write batcher. */
  batches: number;
  /** Writes (appends and acks) committed through it. */
  writes: number;
}

interface StreamRow { epoch: string; last_seq: number; acked: number; retained: number }
interface MessageRow { seq: number; json: string; expires_at: number }

const SCHEMA_VERSION = '1';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
  stream   TEXT PRIMARY KEY,
  epoch    TEXT NOT NULL,
  last_seq INTEGER NOT NULL DEFAULT 0,
  acked    INTEGER NOT NULL DEFAULT 0,
  retained INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
  stream     TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  json       TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_by_stream ON messages (stream, seq);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires_at);
CREATE TABLE IF NOT EXISTS idempotency (
  stream     TEXT NOT NULL,
  key        TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (stream, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_at);
`;

/** Every statement the store runs, prepared once. */
function prepare(db: Database.Database) {
  return {
    stream: db.prepare<[string], StreamRow>('SELECT epoch, last_seq, acked, retained FROM streams WHERE stream = ?'),
    newStream: db.prepare<[string, string]>('INSERT INTO streams (stream, epoch) VALUES (?, ?)'),
    firstSeq: db.prepare<[string], { s: number | null }>('SELECT min(seq) AS s FROM messages WHERE stream = ?'),
    bumpSeq: db.prepare<[number, number, string]>('UPDATE streams SET last_seq = ?, retained = ? WHERE stream = ?'),
    insert: db.prepare<[string, number, string, number]>('INSERT INTO messages (stream, seq, json, expires_at) VALUES (?, ?, ?, ?)'),
    dropOldest: db.prepare<[string, number]>(
      'DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE stream = ? ORDER BY seq LIMIT ?)',
    ),
    key: db.prepare<[string, string], { seq: number; expires_at: number }>('SELECT seq, expires_at FROM idempotency WHERE stream = ? AND key = ?'),
    putKey: db.prepare<[string, string, number, number]>(
      'INSERT INTO idempotency (stream, key, seq, expires_at) VALUES (?, ?, ?, ?) ON CONFLICT (stream, key) DO UPDATE SET seq = excluded.seq, expires_at = excluded.expires_at',
    ),
    readAfter: db.prepare<[string, number, number, number], MessageRow>(
      'SELECT seq, json, expires_at FROM messages WHERE stream = ? AND seq > ? AND expires_at > ? ORDER BY seq LIMIT ?',
    ),
    message: db.prepare<[string, number], MessageRow>('SELECT seq, json, expires_at FROM messages WHERE stream = ? AND seq = ?'),
    ack: db.prepare<[number, string]>('UPDATE streams SET acked = min(max(acked, ?), last_seq) WHERE stream = ?'),
    expired: db.prepare<[number, number], { stream: string }>(
      'DELETE FROM messages WHERE rowid IN (SELECT rowid FROM messages WHERE expires_at <= ? LIMIT ?) RETURNING stream',
    ),
    shrink: db.prepare<[number, string]>('UPDATE streams SET retained = retained - ? WHERE stream = ?'),
    expiredKeys: db.prepare<[number, number]>(
      'DELETE FROM idempotency WHERE (stream, key) IN (SELECT stream, key FROM idempotency WHERE expires_at <= ? LIMIT ?)',
    ),
  };
}

/** Linux's id of this boot of the machine; undefined elsewhere (the check is then skipped). */
function currentBootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether commits may have been lost: the store was not closed cleanly
 * (`clean` = 0) and the machine booted since (a killed process loses
 * nothing under WAL; only an OS crash or power cut can, with synchronous=normal).
 */
function lostCommitsPossible(db: Database.Database, boot: string | undefined): boolean {
  if (boot === undefined) return false;
  const get = db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
  const clean = get.get('clean')?.value;
  const lastBoot = get.get('boot')?.value;
  return clean === '0' && lastBoot !== undefined && lastBoot !== '' && lastBoot !== boot;
}

interface PendingWrite {
  run(): unknown;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * The embedded default store: one SQLite file (WAL) under the data dir, so
 * nothing queued is lost when the process stops or is killed.
 *
 * Writes (appends, acks) are queued and committed together once per turn of
 * the event loop, in call order, so a burst of sends costs one transaction
 * (and, with `synchronous: 'full'`, one fsync) instead of one each. Each
 * write's promise settles only after its transaction committed, so the
 * Notifier never publishes a SEQ that a crash could take back. Reads run
 * at once and see only committed writes.
 *
 * Each stream's EPOCH is stored with it, so it survives restarts; a deleted
 * file starts every stream over with a new epoch, which tabs are told of
 * (RESET). The file is opened in exclusive locking mode: a second Herald
 * process pointed at the same data dir is refused instead of corrupting the
 * sequence numbers of the first.
 */
export class SqliteStore implements MessageStore {
  readonly #db: Database.Database;
  readonly #max: number;
  readonly #maxBatch: number;
  readonly #pruneBatch: number;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  #closed = false;
  #pruning: Promise<number> | undefined;
  readonly #pruner: PruneTimer;
  readonly stats: SqliteStoreStats = { batches: 0, writes: 0 };
  /**
   * True when this open found that the machine restarted since the store was
   * last open and it was not closed cleanly: under synchronous=normal the
   * last commits before a power cut may be gone, and their SEQs would be
   * assigned again. Every stream got a new EPOCH, so tabs are told (RESET)
   * instead of silently dropping a reused SEQ as a duplicate.
   */
  readonly rotatedEpochs: boolean = false;

  readonly #q: ReturnType<typeof prepare>;
  #newStreamEpoch = '';

  constructor(options: SqliteStoreOptions) {
    if (!Number.isSafeInteger(options.maxPerStream) || options.maxPerStream < 1) {
      throw new TypeError('SqliteStore: maxPerStream must be a positive integer');
    }
    this.#max = options.maxPerStream;
    this.#maxBatch = options.maxBatch ?? 1000;
    this.#pruneBatch = options.pruneBatch ?? 100;
    let db: Database.Database;
    try {
      db = new Database(options.file);
    } catch (e) {
      throw new HeraldError('HERALD_ERR_INTERNAL', `cannot open store ${options.file}: ${(e as Error).message}`);
    }
    try {
      db.pragma('busy_timeout = 1000');
      // Exclusive: the lock is taken by the first write below and held until close.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      db.exec('BEGIN IMMEDIATE');
      db.exec(SCHEMA);
      const version = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'schema'").get();
      if (version === undefined) db.prepare("INSERT INTO meta (key, value) VALUES ('schema', ?)").run(SCHEMA_VERSION);
      else if (version.value !== SCHEMA_VERSION) throw new Error(`unknown schema version ${version.value}`);
      this.rotatedEpochs = options.synchronous !== 'full' && lostCommitsPossible(db, options.bootId ?? currentBootId());
      if (this.rotatedEpochs) {
        const rows = db.prepare<[], { stream: string }>('SELECT stream FROM streams').all();
        const rotate = db.prepare<[string, string]>('UPDATE streams SET epoch = ? WHERE stream = ?');
        for (const r of rows) rotate.run(newEpoch(), r.stream);
      }
      const put = db.prepare<[string, string]>('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
      // The epoch of streams that have no row yet: a head() need not write a
      // row (a connect must not cost an INSERT), and the epoch it reports
      // stays the one the stream's first append records.
      const storedEpoch = db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'epoch'").get()?.value;
      this.#newStreamEpoch = storedEpoch === undefined || this.rotatedEpochs ? newEpoch() : storedEpoch;
      put.run('epoch', this.#newStreamEpoch);
      put.run('boot', options.bootId ?? currentBootId() ?? '');
      put.run('clean', '0');
      db.exec('COMMIT');
    } catch (e) {
      db.close();
      const busy = (e as { code?: string }).code === 'SQLITE_BUSY';
      throw new HeraldError(
        busy ? 'HERALD_ERR_UNAVAILABLE' : 'HERALD_ERR_INTERNAL',
        busy ? `store ${options.file} is in use by another process` : `cannot open store ${options.file}: ${(e as Error).message}`,
      );
    }
    this.#db = db;
    this.#q = prepare(db);
    this.#pruner = new PruneTimer((now) => this.prune(now), options.pruneIntervalMs ?? 0, options.onPrune);
  }

  /** The stream's row; with `create`, written (with the store's epoch for new streams) when it has none. */
  #streamRow(stream: string, create = false): StreamRow {
    const row = this.#q.stream.get(stream);
    if (row) return row;
    const epoch = derivedEpoch(this.#newStreamEpoch, stream);
    if (create) this.#q.newStream.run(stream, epoch);
    return { epoch, last_seq: 0, acked: 0, retained: 0 };
  }

  #head(stream: string, row: StreamRow): StreamHead {
    const first = row.retained > 0 ? this.#q.firstSeq.get(stream)?.s ?? null : null;
    return { epoch: row.epoch, lastSeq: row.last_seq, firstSeq: first ?? row.last_seq + 1, ackedSeq: row.acked };
  }

  /** Runs inside a batch transaction. */
  #appendNow(input: AppendInput, now: number): AppendResult {
    const { stream } = input;
    const row = this.#streamRow(stream, true);
    if (input.idempotencyKey !== undefined) {
      const seen = this.#q.key.get(stream, input.idempotencyKey);
      if (seen && seen.expires_at > now) {
        return { id: messageId(row.epoch, seen.seq, stream), seq: seen.seq, epoch: row.epoch, duplicate: true, dropped: 0 };
      }
    }
    const seq = row.last_seq + 1;
    this.#q.insert.run(stream, seq, input.json, input.expiresAt);
    if (input.idempotencyKey !== undefined) this.#q.putKey.run(stream, input.idempotencyKey, seq, input.expiresAt);
    let retained = row.retained + 1;
    let dropped = 0;
    if (retained > this.#max) {
      dropped = this.#q.dropOldest.run(stream, retained - this.#max).changes;
      retained -= dropped;
    }
    this.#q.bumpSeq.run(seq, retained, stream);
    return { id: messageId(row.epoch, seq, stream), seq, epoch: row.epoch, duplicate: false, dropped };
  }

  #enqueue<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // setImmediate, not a microtask: every send whose HTTP request was
        // parsed in this turn of the loop joins the same transaction.
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits queued writes, at most maxBatch per transaction. */
  #flush(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0) return;
    const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(this.#maxBatch);
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    const results: unknown[] = [];
    try {
      this.#db.transaction(() => {
        for (const w of batch) results.push(w.run());
      }).immediate();
    } catch {
      // Nothing of the batch was committed. Retry each write alone, so one
      // bad write fails only its own caller.
      for (const w of batch) this.#runAlone(w);
      return;
    }
    this.stats.batches++;
    this.stats.writes += batch.length;
    for (let i = 0; i < batch.length; i++) batch[i]!.resolve(results[i]);
  }

  #runAlone(w: PendingWrite): void {
    let result: unknown;
    try {
      result = this.#db.transaction(() => w.run()).immediate();
    } catch (e) {
      w.reject(new HeraldError('HERALD_ERR_UNAVAILABLE', `store write failed: ${(e as Error).message}`));
      return;
    }
    this.stats.batches++;
    this.stats.writes++;
    w.resolve(result);
  }

  append(input: AppendInput, now: number): Promise<AppendResult> {
    return this.#enqueue(() => this.#appendNow(input, now));
  }

  async head(stream: string): Promise<StreamHead> {
    this.#open();
    return this.#head(stream, this.#streamRow(stream));
  }

  async readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> {
    this.#open();
    const row = this.#streamRow(stream);
    const rows = this.#q.readAfter.all(stream, afterSeq, now, limit);
    const messages: StoredMessage[] = rows.map((r) => ({
      id: messageId(row.epoch, r.seq, stream), seq: r.seq, json: r.json, expiresAt: r.expires_at,
    }));
    return { ...this.#head(stream, row), messages };
  }

  ack(stream: string, seq: number): Promise<void> {
    return this.#enqueue(() => {
      this.#q.ack.run(seq, stream);
    });
  }

  async status(id: string, now: number): Promise<MessageStatus | undefined> {
    this.#open();
    const parsed = parseMessageId(id);
    if (!parsed) return undefined;
    const row = this.#q.stream.get(parsed.stream);
    // Another epoch: that history is gone, and its SEQ may name a newer message.
    if (!row || row.epoch !== parsed.epoch) return undefined;
    const m = this.#q.message.get(parsed.stream, parsed.seq);
    if (!m) return undefined;
    return {
      id, stream: parsed.stream, seq: m.seq, epoch: row.epoch, expiresAt: m.expires_at,
      acknowledged: row.acked >= m.seq, expired: m.expires_at <= now,
    };
  }

  /**
   * Deletes expired messages and idempotency keys, `pruneBatch` rows per
   * transaction, yielding to the event loop between transactions so that
   * sends and replays keep flowing while a large backlog is removed.
   */
  prune(now: number): Promise<number> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    // One pruning pass at a time; a caller arriving during one shares it.
    this.#pruning ??= this.#pruneLoop(now).finally(() => {
      this.#pruning = undefined;
    });
    return this.#pruning;
  }

  async #pruneLoop(now: number): Promise<number> {
    let removed = 0;
    for (;;) {
      if (this.#closed) return removed;
      const { messages, keys } = this.#db.transaction(() => {
        const gone = this.#q.expired.all(now, this.#pruneBatch);
        const perStream = new Map<string, number>();
        for (const g of gone) perStream.set(g.stream, (perStream.get(g.stream) ?? 0) + 1);
        for (const [stream, n] of perStream) this.#q.shrink.run(n, stream);
        return { messages: gone.length, keys: this.#q.expiredKeys.run(now, this.#pruneBatch).changes };
      }).immediate();
      removed += messages;
      if (messages < this.#pruneBatch && keys < this.#pruneBatch) return removed;
      await yieldToLoop();
    }
  }

  #open(): void {
    if (this.#closed) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed');
  }

  /** Commits what is queued, then closes the file (checkpointing the WAL into it). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#pruner.stop();
    while (this.#queue.length > 0) this.#flush();
    this.#closed = true;
    await this.#pruning?.catch(() => 0);
    this.#db.prepare("UPDATE meta SET value = '1' WHERE key = 'clean'").run();
    this.#db.close();
  }
}
