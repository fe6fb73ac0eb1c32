import type Database from 'better-sqlite3';
import { closeSync, openSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { HeraldError } from '../errors.js';
import { ThrottledLog } from '../throttled-log.js';
import type { AppendInput, AppendResult, MessageStatus, MessageStore, MessageStoreLimits, ReadResult, StoreCounts, StreamHead } from './message-store.js';
import { PruneTimer } from './prune-timer.js';
import { CorruptJournalError, decodeBody, decodeWtf8, detach, encodeAck, encodeEntry, type JournalEntry } from './journal-codec.js';
import { abandonStoreFile, openStoreFile, SEQ_FLOOR_KEY, settleStoreFile, takeLock } from './sqlite-schema.js';
import { isStoreFull, PRUNE_SLICE, StreamIndex, WriteBatch, type EvictHook, type StreamState } from './stream-index.js';
import { JsonArena } from './json-arena.js';
import { WalCheckpointer } from './wal-checkpointer.js';

/** With synchronous=normal, the longest a commit waits for the WAL's fsync (SqliteStoreOptions.walSyncMs). */
const WAL_SYNC_MS = 1000;
/** SqliteStoreOptions.pruneBytes's default. */
const PRUNE_BYTES = 1 << 20;
/** Streams' rows written per transaction before a pruning pass deletes journal rows (#saveInSlices). */
export const SAVE_SLICE = 5000;

export interface SqliteStoreOptions extends MessageStoreLimits {
  /** Path of the database file (created when missing). `:memory:` for a throw-away store. */
  file: string;
  /**
   * `normal` (default): under WAL a commit is not fsynced at once but within
   * `walSyncMs`; a killed process loses nothing, a power cut may lose the
   * last second of commits. `full`: one fsync per batch (see
   * docs/delivery.md for the figures).
   */
  synchronous?: 'normal' | 'full';
  /** Largest number of writes grouped into one transaction. Default 1000. */
  maxBatch?: number;
  /**
   * How long acks wait for a transaction to join when no append is queued
   * (default 200 ms; 0 = the next turn, like appends). Tabs' acks come a
   * few in a turn, and a transaction for each such turn cost more than the
   * acks in it; waiting, they ride with the next send's commit.
   */
  ackDelayMs?: number;
  /**
   * Journal rows (one per committed write batch) deleted per pruning
   * transaction; the loop yields to the event loop between them. Default 100.
   */
  pruneBatch?: number;
  /**
   * Journal text (UTF-16 code units) deleted per pruning transaction at most
   * (a row larger than this goes alone). Default 1 MiB: 100 rows of a
   * 1,000-send batch each are 24 MB, and deleting them in one transaction
   * held the event loop 58 ms.
   */
  pruneBytes?: number;
  /** Background pruning every this many ms; 0 or absent = only when prune() is called. */
  pruneIntervalMs?: number;
  /** This boot of the machine (tests); default: Linux's /proc/sys/kernel/random/boot_id. */
  bootId?: string;
  /** Told how each background pruning pass went. */
  onPrune?: (removed: number, error?: unknown) => void;
  /** WAL bytes written between checkpoints (run off the event loop: wal-checkpointer.ts). Default 4 MiB. */
  checkpointBytes?: number;
  /**
   * With `synchronous: 'normal'`, how long after a commit the WAL is fsynced
   * at the latest (in the background; commits in between share it), so a
   * power cut loses at most about this much. Default 1000 ms; 0 = only at
   * checkpoints (the operating system's writeback, about 30 s, decides).
   */
  walSyncMs?: number;
  /** Told when a WAL checkpoint failed, or when they could not run off the event loop (they then run on it, as SQLite's own would). */
  onCheckpointError?: (error: Error) => void;
  /**
   * Told once when the file or its WAL was deleted or replaced while the
   * store was open: from then on every write is refused (see #checkFile).
   */
  onFileLost?: (error: Error) => void;
  /** Told when the lock file was found deleted and this store took a new one (see #checkLock). */
  onLockRetaken?: (lockFile: string) => void;
  /**
   * Told when writes start failing (warn: the file, SQLite's error), of each
   * write refused while they fail (warn, 20 lines in 10 s at most, the rest
   * counted in one line: ThrottledLog), and when one commits again (info).
   * Without it a refused write left no trace but its caller's error, and a
   * SILENT legacy send has no caller to tell.
   */
  logger?: Logger;
  /**
   * Read once, on open: notifications and idempotency keys that expired
   * before it are not loaded into memory. Epoch ms; default Date.now (tests
   * that write with made-up times pass theirs).
   */
  clock?: () => number;
}

/** Counters for tests and the status route. */
export interface SqliteStoreCounts {
  /** Write batches committed (a batch of duplicates only, or of acks that change nothing, needs no transaction). */
  batches: number;
  /** Writes (appends and acks) committed through them. */
  writes: number;
}

/** What opening the file found and cost. */
export interface SqliteStoreLoad {
  streams: number;
  journalRows: number;
  /** Notifications retained (loaded into memory). */
  messages: number;
  /** Notifications moved from a version 1 file by this open (0 otherwise). */
  migrated: number;
  /** Wall time of the open, migration and rebuild included. */
  ms: number;
}

/** A file's device and inode ('' when it does not exist). */
function fileId(path: string): string {
  const st = statSync(path, { throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}` : '';
}

function prepare(db: Database.Database) {
  return {
    streams: db.prepare<[], { stream: string; epoch: string; last_seq: number; acked: number }>('SELECT stream, epoch, last_seq, acked FROM streams'),
    journal: db.prepare<[number], { id: number; max_expires_at: number; body: string }>('SELECT id, max_expires_at, body FROM journal WHERE id > ? ORDER BY id'),
    journalBytes: db.prepare<[number], Buffer>('SELECT CAST(body AS BLOB) FROM journal WHERE id = ?').pluck(),
    newStream: db.prepare<[string, string]>('INSERT INTO streams (stream, epoch) VALUES (?, ?)'),
    append: db.prepare<[number, string]>('INSERT INTO journal (max_expires_at, body) VALUES (?, ?)'),
    save: db.prepare<[number, number, string]>('UPDATE streams SET last_seq = ?, acked = ? WHERE stream = ?'),
    deleteRow: db.prepare<[number]>('DELETE FROM journal WHERE id = ?'),
    evict: db.prepare<[string]>('DELETE FROM streams WHERE stream = ?'),
    // A key of `meta` (sqlite-schema.ts), not a column; its first write raises the file to schema 4 (#evict).
    floor: db.prepare<[], { value: string }>(`SELECT value FROM meta WHERE key = '${SEQ_FLOOR_KEY}'`),
    saveFloor: db.prepare<[string]>(`INSERT INTO meta (key, value) VALUES ('${SEQ_FLOOR_KEY}', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
    setSchema: db.prepare<[string]>("UPDATE meta SET value = ? WHERE key = 'schema'"),
    clean: db.prepare("UPDATE meta SET value = '1' WHERE key = 'clean'"),
    begin: db.prepare('BEGIN IMMEDIATE'),
    commit: db.prepare('COMMIT'),
    rollback: db.prepare('ROLLBACK'),
  };
}

type PendingWrite = (
  | { kind: 'append'; input: AppendInput; now: number }
  | { kind: 'appendMany'; inputs: readonly AppendInput[]; now: number }
  | { kind: 'ackMany'; acks: ReadonlyMap<string, number> }
) & { resolve(value: unknown): void; reject(error: unknown): void };

/**
 * The embedded default store: one SQLite file (WAL) under the data dir, so
 * nothing queued is lost when the process stops or is killed.
 *
 * This store is the file's only writer (`<file>-lock` keeps other processes
 * out; a worker thread only checkpoints its WAL: wal-checkpointer.ts): the
 * state lives in memory (a StreamIndex, as in the memory store) and the file
 * is its journal. Each write batch is one row of
 * the `journal` table (sqlite-schema.ts); opening the file reads the streams
 * and replays the journal. An append thus costs a string concatenation and a
 * share of one INSERT instead of three statements on indexed tables; the
 * price is memory for the retained notifications and a start-up time that
 * grows with them (docs/delivery.md).
 *
 * Writes (appends, acks) are queued and committed together once per turn of
 * the event loop, in call order, so a burst of sends costs one transaction
 * (and, with `synchronous: 'full'`, one fsync) instead of one each. Acks
 * alone wait up to `ackDelayMs` for an append to ride with. Each
 * write's promise settles only after its transaction committed, so the
 * Notifier never publishes a SEQ that a crash could take back, and the
 * memory state changes only then: reads see only committed writes.
 *
 * Each stream's EPOCH is stored with it, so it survives restarts; a deleted
 * file starts every stream over with a new epoch, which tabs are told of
 * (RESET). A second Herald process pointed at the same data dir is refused
 * instead of corrupting the sequence numbers of the first.
 */
export class SqliteStore implements MessageStore {
  readonly #db: Database.Database;
  #lock: Database.Database | undefined;
  /** Absent for `:memory:`, which has no WAL. */
  readonly checkpointer: WalCheckpointer | undefined;
  readonly #q: ReturnType<typeof prepare>;
  readonly #index: StreamIndex;
  readonly #staged: WriteBatch;
  readonly #maxBatch: number;
  readonly #pruneBatch: number;
  readonly #pruneBytes: number;
  readonly #ackDelayMs: number;
  #queue: PendingWrite[] = [];
  #scheduled = false;
  /** Set while only acks are queued: they are committed when it fires, or with the next append's batch. */
  #ackTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** The file and its WAL as opened (device and inode); absent for `:memory:`. */
  readonly #identity: { file: string; ids: [string, string]; lock: string } | undefined;
  /** Set once the file or its WAL was found deleted or replaced: every write is refused with it. */
  #lost: Error | undefined;
  readonly #onFileLost: ((error: Error) => void) | undefined;
  readonly #onLockRetaken: ((lockFile: string) => void) | undefined;
  #pruning: Promise<number> | undefined;
  readonly #pruner: PruneTimer;
  /**
   * Every journal row's id and max_expires_at, in id order: pruning finds the
   * rows to delete here, so the table needs no index (one B-tree fewer to
   * write per batch: about 8 µs of a 15–25 µs commit of one append).
   */
  #rowIds: number[] = [];
  #rowExpiries: number[] = [];
  /** Each journal row's body length (what deleting it costs: a pruning transaction is bounded by it too). */
  #rowSizes: number[] = [];
  /**
   * Journal rows holding an append that dropped older notifications for the
   * cap (a floor). Such a row outlives its own expiry while an older row is
   * still kept: that row may hold the dropped notifications, and without the
   * floor a reopen would load them again.
   */
  readonly #floorRows = new Set<number>();
  /** Streams whose last SEQ or acknowledged SEQ is newer than their row's: only the journal knows it. */
  readonly #unsaved = new Map<string, StreamState>();
  /** The schema version on the file: raised by the first write that needs a newer one (#raiseSchema). */
  #schema: number;
  readonly stats: SqliteStoreCounts = { batches: 0, writes: 0 };
  /** Writes refused because their transaction failed (StoreCounts.writeFailures). */
  #writeFailures = 0;
  /** Set while writes fail: since when (monotonic ms), why, and how many were refused since (cleared by the next commit). */
  #failing: { since: number; error: string; refused: number } | undefined;
  readonly #file: string;
  readonly #logger: Logger | undefined;
  readonly #refusals: ThrottledLog | undefined;
  /**
   * True when this open found that the machine restarted since the store was
   * last open and it was not closed cleanly: under synchronous=normal the
   * last commits before a power cut may be gone, and their SEQs would be
   * assigned again. Every stream got a new EPOCH, so tabs are told (RESET)
   * instead of silently dropping a reused SEQ as a duplicate.
   */
  readonly rotatedEpochs: boolean = false;
  /**
   * Why the epochs were rotated, for the log: the machine restarted since an
   * unclean stop, or the WAL of an unclean stop is gone or unreadable (deleted
   * or overwritten while Herald was stopped). Undefined when they were not.
   */
  readonly rotation: string | undefined;
  readonly loaded: SqliteStoreLoad;

  constructor(options: SqliteStoreOptions) {
    if (!Number.isSafeInteger(options.maxPerStream) || options.maxPerStream < 1) {
      throw new TypeError('SqliteStore: maxPerStream must be a positive integer');
    }
    const started = performance.now();
    this.#maxBatch = options.maxBatch ?? 1000;
    this.#pruneBatch = options.pruneBatch ?? 100;
    this.#pruneBytes = options.pruneBytes ?? PRUNE_BYTES;
    this.#ackDelayMs = options.ackDelayMs ?? 200;
    const opened = openStoreFile(options.file, options);
    const { db, lock, storeEpoch, derivation, schema, rotatedEpochs, rotation, migrated } = opened;
    this.rotatedEpochs = rotatedEpochs;
    this.rotation = rotation;
    this.#schema = schema;
    this.#db = db;
    this.#lock = lock;
    this.#q = prepare(db);
    this.#index = new StreamIndex(options.maxPerStream, storeEpoch, derivation);
    this.#index.maxRetainedBytes = options.maxRetainedBytes ?? 0;
    this.#staged = new WriteBatch(this.#index);
    try {
      const { journalRows, messages } = this.#load((options.clock ?? Date.now)(), options.file);
      // Only now that every row read back: a WAL that is not the file's fails the load, and must not be copied into the file.
      settleStoreFile(opened, options.synchronous);
      this.loaded = { streams: this.#index.streams.size, journalRows, messages, migrated, ms: performance.now() - started };
    } catch (e) {
      abandonStoreFile(options.file, db, lock);
      throw new HeraldError('HERALD_ERR_INTERNAL', `cannot open store ${options.file}: ${(e as Error).message}`);
    }
    if (lock) {
      this.checkpointer = new WalCheckpointer({
        file: options.file, db, onError: options.onCheckpointError,
        ...(options.checkpointBytes === undefined ? {} : { thresholdBytes: options.checkpointBytes }),
        // Under FULL every commit is fsynced already.
        syncMs: options.synchronous === 'full' ? 0 : (options.walSyncMs ?? WAL_SYNC_MS),
      });
    }
    this.#onFileLost = options.onFileLost;
    this.#onLockRetaken = options.onLockRetaken;
    this.#file = options.file;
    this.#logger = options.logger;
    this.#refusals = options.logger && new ThrottledLog(options.logger, Date.now, {
      summary: (byCode, windowMs, perWindow) => ({
        fields: { file: this.#file, refused: Object.values(byCode).reduce((a, b) => a + b, 0), byCode },
        message: `store: more writes refused (past ${perWindow} lines in ${windowMs / 1000} s, counted here)`,
      }),
    });
    if (lock) {
      this.#identity = { file: options.file, ids: [fileId(options.file), fileId(`${options.file}-wal`)], lock: fileId(`${options.file}-lock`) };
    }
    this.#pruner = new PruneTimer((now) => this.prune(now), options.pruneIntervalMs ?? 0, options.onPrune);
  }

  /**
   * Rebuilds the memory state: the SEQ floor, the streams' rows, then the
   * journal in order. A stream's last SEQ is the larger of its row's and the
   * journal's highest (expired entries count: a SEQ is never assigned twice
   * in an epoch); one without a row (evicted, its entries still in a journal
   * row that something unexpired keeps) starts from the floor, which is at
   * least its last SEQ.
   */
  #load(now: number, file: string): { journalRows: number; messages: number } {
    const index = this.#index;
    const max = index.maxPerStream;
    const floor = Number(this.#q.floor.get()?.value ?? 0);
    if (!Number.isSafeInteger(floor) || floor < 0) throw new Error(`meta ${SEQ_FLOOR_KEY} is not a SEQ: ${this.#q.floor.get()?.value}`);
    index.seqFloor = floor;
    for (const r of this.#q.streams.iterate()) {
      const s = index.create(r.stream, r.epoch);
      s.lastSeq = s.savedSeq = r.last_seq;
      s.acked = s.savedAcked = r.acked;
    }
    const orphans: string[] = [];
    /** Streams the cap cut here: a cap lowered since the last open. */
    const capped = new Set<string>();
    let journalRows = 0;
    /** The journal row being read. */
    let id = Number.MIN_SAFE_INTEGER;
    let longSlice: string | undefined;
    let longKept: string | undefined;
    const visit = (e: JournalEntry): void => {
      let s = index.get(e.stream);
      if (!s) {
        // Never written by Herald (the row and its first entry commit together); keep the entry anyway.
        s = index.create(e.stream, index.newEpoch(e.stream));
        orphans.push(e.stream);
      }
      if (e.seq > s.lastSeq) s.lastSeq = e.seq;
      if (e.floor > 0) {
        s.dropBelow(e.floor);
        this.#floorRows.add(id);
      }
      if (e.expiresAt <= now) return;
      if (e.key !== undefined) s.setKey(detach(e.key), { seq: e.seq, expiresAt: e.expiresAt });
      if (e.json !== undefined) {
        // The arena copies what it holds (one copy for the entries of a list send, whose JSON is the same
        // string here); a longer one is kept as a string, which must not be a slice of the body: detached
        // once for all the entries that repeat it.
        let json = e.json;
        if (!JsonArena.holds(json)) {
          if (json !== longSlice) {
            longSlice = json;
            longKept = detach(json);
          }
          json = longKept!;
        }
        s.push({ seq: e.seq, json, expiresAt: e.expiresAt });
        if (s.retained > max) {
          s.dropOldest(s.retained - max);
          capped.add(e.stream);
        }
      }
    };
    const visitAck = (stream: string, acked: number): void => {
      // After the row's appends: the stream exists (an ack of a stream never written is never staged).
      const s = index.get(stream);
      if (s && acked > s.acked) s.acked = acked;
    };
    const read = (expires: number, body: string): void => {
      journalRows++;
      this.#rowIds.push(id);
      this.#rowExpiries.push(expires);
      this.#rowSizes.push(body.length);
      try {
        decodeBody(body, visit, visitAck);
      } catch (e) {
        if (!(e instanceof CorruptJournalError)) throw e;
        // Said with the row and what to do: "corrupt journal body at 30" alone named neither.
        throw new Error(
          `journal row ${id} cannot be read (${e.message}): the file was changed by something other than Herald. Restore a backup, or, with Herald stopped, `
          + `run sqlite3 ${file} "DELETE FROM journal WHERE id = ${id}; UPDATE meta SET value = '0' WHERE key = 'clean'" (the row's notifications are lost, and every stream gets a new EPOCH)`,
        );
      }
    };
    // A body that SQLite hands back with U+FFFD in it may hold a lone
    // surrogate stored as WTF-8 (decodeWtf8): it is read again as bytes. A
    // statement cannot run while another one is iterated, so the iteration
    // stops at such a row and starts again after it.
    for (let again = true; again;) {
      again = false;
      let expires = 0;
      for (const r of this.#q.journal.iterate(id)) {
        id = r.id;
        if (r.body.includes('\uFFFD')) {
          expires = r.max_expires_at;
          again = true;
          break;
        }
        read(r.max_expires_at, r.body);
      }
      if (again) read(expires, decodeWtf8(this.#q.journalBytes.get(id)!));
    }
    if (orphans.length > 0) {
      this.#db.transaction(() => {
        for (const stream of orphans) this.#q.newStream.run(stream, index.get(stream)!.epoch);
      }).immediate();
    }
    if (capped.size > 0) this.#keepCapped(capped, now);
    let messages = 0;
    for (const [stream, s] of index.streams) {
      if (s.acked > s.lastSeq) s.acked = s.lastSeq;
      this.#touched(stream, s);
      messages += s.retained;
    }
    return { journalRows, messages };
  }

  /**
   * Writes the floor of each stream a lowered cap cut at this open, in one
   * journal row of entries that carry nothing but it: without it, the next
   * open with a higher cap loaded the cut notifications again, and a tab told
   * RESET past them was then replayed them. Expired from the start, the row
   * stays while an older one does (#floorRows), as an append's floor does.
   */
  #keepCapped(capped: ReadonlySet<string>, now: number): void {
    let body = '';
    for (const stream of capped) {
      const s = this.#index.get(stream)!;
      body += encodeEntry(stream, s.lastSeq, now, s.firstSeq, undefined, undefined);
    }
    const row = Number(this.#db.transaction(() => this.#q.append.run(now, body)).immediate().lastInsertRowid);
    this.#rowIds.push(row);
    this.#rowExpiries.push(now);
    this.#rowSizes.push(body.length);
    this.#floorRows.add(row);
  }

  #enqueue(write: PendingWrite): void {
    this.#queue.push(write);
    if (this.#scheduled) return;
    if (write.kind === 'ackMany' && this.#ackDelayMs > 0) {
      this.#ackTimer ??= setTimeout(() => this.#flush(), this.#ackDelayMs);
      return;
    }
    this.#scheduled = true;
    // setImmediate, not a microtask: every send whose HTTP request was
    // parsed in this turn of the loop joins the same transaction.
    setImmediate(() => this.#flush());
  }

  /** Called by the checkpointer when a catch-up checkpoint that held the commits ended. */
  readonly #resume = (): void => {
    setImmediate(() => this.#flush());
  };

  /** Commits queued writes, at most maxBatch per transaction; `force`: even while a catch-up checkpoint runs (close). */
  #flush(force = false): void {
    // Held for a catch-up checkpoint (wal-checkpointer.ts, #done): the writes
    // stay queued (and a flush stays scheduled: #resume) until it ends.
    if (!force && this.#queue.length > 0 && this.checkpointer?.holding(this.#resume)) {
      this.#scheduled = true;
      return;
    }
    this.#scheduled = false;
    // The acks waiting for a transaction go with this one.
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (this.#queue.length === 0) return;
    const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(this.#maxBatch);
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      setImmediate(() => this.#flush());
    }
    try {
      this.#commit(batch);
    } catch {
      // Nothing of the batch was committed: its transaction failed (a send the
      // cap refuses is left out before it: #commit). Retry each write alone, so
      // one bad write fails only its own caller.
      for (const w of batch) this.#commitAlone(w);
    }
  }

  /** Commits one write alone (#flush's retry), settling its promise either way. */
  #commitAlone(w: PendingWrite): void {
    try {
      this.#commit([w]);
    } catch (e) {
      this.#refused(w, e);
      w.reject(new HeraldError('HERALD_ERR_UNAVAILABLE', `store write failed: ${(e as Error).message}`));
    }
  }

  /**
   * Stages the writes against the memory state, commits them in one
   * transaction (one journal row for the appends), and only then applies them
   * to memory and settles their promises. Throws, having changed nothing,
   * when the transaction fails. A write the cap refuses (maxRetainedBytes) is
   * decided in memory, before the transaction: it is taken back
   * (WriteBatch.rollback), the rest go on without it, and it is refused
   * ("store full") once they committed. The batch's first such refusal lets go
   * of what has expired (StreamIndex.dropExpired, with nothing staged, once a
   * batch: a turn of refused sends walks one slice of streams, not one each)
   * and stages the batch again, as the room it made may take them.
   */
  #commit(writes: PendingWrite[]): void {
    const staged = this.#staged;
    let results: unknown[] = [];
    /** The cap's refusals, by the index of their write, and how many. */
    let refusals: unknown[] = [];
    let refused = 0;
    let body = '';
    let maxExpires = 0;
    let floors = false;
    let row: number | undefined;
    // The JSON of the body's last entry: the next entry with the same (a list send's) repeats it by `=`.
    let lastJson: string | undefined;
    let repeats = false;
    const stage = (input: AppendInput, now: number): AppendResult => {
      const r = staged.append(input, now);
      if (!r.duplicate) {
        if (staged.lastFloor > 0) floors = true;
        // The same string object (the Notifier's, shared by a list's recipients) is found at once.
        const same = input.json === lastJson;
        if (same) repeats = true;
        body += encodeEntry(input.stream, r.seq, input.expiresAt, staged.lastFloor, input.idempotencyKey, input.json, same);
        lastJson = input.json;
        if (input.expiresAt > maxExpires) maxExpires = input.expiresAt;
      }
      return r;
    };
    /** Stages every write; false, having discarded the batch and let go of what expired, at the first refusal when `sweep`. */
    const stageAll = (sweep: boolean): boolean => {
      for (const w of writes) {
        if (w.kind === 'ackMany') {
          for (const [stream, seq] of w.acks) staged.ack(stream, seq);
          results.push(undefined);
          continue;
        }
        // What the write's appends change here besides the batch, for a refusal to take back.
        const bodyAt = body.length;
        const maxExpiresAt = maxExpires;
        const floorsAt = floors;
        const repeatsAt = repeats;
        const lastJsonAt = lastJson;
        staged.mark();
        try {
          if (w.kind === 'append') results.push(stage(w.input, w.now));
          else {
            const many: AppendResult[] = new Array(w.inputs.length);
            for (let i = 0; i < w.inputs.length; i++) many[i] = stage(w.inputs[i]!, w.now);
            results.push(many);
          }
        } catch (e) {
          if (!isStoreFull(e)) throw e;
          if (sweep) {
            // With no batch staged, what has expired is let go from memory at once, not at
            // the next pruning pass: it is never read again, and its journal rows are the
            // pass's to delete, as they are after the pass's own memory pruning.
            staged.discard();
            this.#index.dropExpired(w.now);
            results = [];
            body = '';
            maxExpires = 0;
            floors = repeats = false;
            lastJson = undefined;
            return false;
          }
          staged.rollback();
          body = body.slice(0, bodyAt);
          maxExpires = maxExpiresAt;
          floors = floorsAt;
          repeats = repeatsAt;
          lastJson = lastJsonAt;
          refusals[results.length] = e;
          refused++;
          results.push(undefined);
        }
      }
      return true;
    };
    // What has expired holds no place under the cap (StreamIndex.letExpiredGo).
    let adding = 0;
    for (const w of writes) if (w.kind !== 'ackMany') adding += w.kind === 'append' ? 1 : w.inputs.length;
    for (const w of writes) {
      if (w.kind === 'append') this.#index.letExpiredGo(w.input.stream, w.now, adding);
      else if (w.kind === 'appendMany') for (const input of w.inputs) this.#index.letExpiredGo(input.stream, w.now, adding);
    }
    try {
      if (!stageAll(true)) stageAll(false);
      // The acks ride in the journal row too: a few bytes each, where an
      // UPDATE of the stream's row made the WAL write a whole page of it.
      for (const { stream, acked } of staged.acks()) body += encodeAck(stream, acked);
      row = this.#write(body, maxExpires, repeats);
      if (row !== undefined) {
        this.#rowIds.push(row);
        this.#rowExpiries.push(maxExpires);
        this.#rowSizes.push(body.length);
        if (floors) this.#floorRows.add(row);
      }
    } catch (e) {
      staged.discard();
      throw e;
    }
    staged.apply(this.#touched);
    // After the commit counts: a checkpoint that fails now (on the writer's
    // thread, should the worker have failed: the disk full) must not fail
    // the batch, which would be committed again, SEQs and all, by the retry.
    if (row !== undefined) {
      this.checkpointer?.committed(body.length);
      if (this.#failing) this.#recovered();
    }
    if (refused < writes.length) {
      this.stats.batches++;
      this.stats.writes += writes.length - refused;
    }
    for (let i = 0; i < writes.length; i++) {
      if (refusals[i] === undefined) writes[i]!.resolve(results[i]);
      else writes[i]!.reject(refusals[i]);
    }
  }

  /**
   * A write refused: its transaction failed alone (the disk full, EFBIG past
   * a file size limit, an I/O error). The first one starts the failing state
   * (/healthz 503, `writesFailing`), said in one warning; each is logged
   * after it, bounded, with what it was for: a SILENT legacy send has no
   * other trace.
   */
  #refused(w: PendingWrite, e: unknown): void {
    const items = w.kind === 'append' ? 1 : w.kind === 'appendMany' ? w.inputs.length : w.acks.size;
    const stream = w.kind === 'append' ? w.input.stream : w.kind === 'appendMany' ? w.inputs[0]?.stream : w.acks.keys().next().value;
    const error = (e as Error).message;
    const code = (e as { code?: unknown }).code;
    const key = typeof code === 'string' ? code : 'error';
    this.#writeFailures += items;
    // A lost file was said once (onFileLost) and lasts until a restart: no failing state to start or end.
    if (!this.#lost && !this.#failing) {
      this.#failing = { since: performance.now(), error, refused: 0 };
      this.#logger?.warn({ file: this.#file, err: error, code: key }, 'store: writes are failing; every stored send is refused (503) and /healthz answers 503 until one commits again');
    }
    if (this.#failing) {
      this.#failing.refused += items;
      this.#failing.error = error;
    }
    const what = w.kind === 'ackMany' ? 'acknowledgements' : 'notifications';
    this.#refusals?.log('warn', key, { file: this.#file, err: error, [what]: items, stream }, `store: write refused (${what})`, items);
  }

  /** A write committed after writes failed: says so, with what was refused meanwhile. */
  #recovered(): void {
    const failing = this.#failing!;
    this.#failing = undefined;
    this.#refusals?.flush();
    this.#logger?.info({ file: this.#file, refused: failing.refused, failedMs: Math.round(performance.now() - failing.since) }, 'store: writes work again');
  }

  readonly #touched = (stream: string, s: StreamState): void => {
    if (s.lastSeq > s.savedSeq || s.acked > s.savedAcked) this.#unsaved.set(stream, s);
  };

  /** The staged batch's transaction: new streams' rows and the journal row (its id is returned). `repeats`: the body repeats a JSON by `=`. */
  #write(body: string, maxExpires: number, repeats: boolean): number | undefined {
    if (body === '') return undefined;
    if (this.#lost) throw this.#lost;
    this.#checkLock();
    let row: number | undefined;
    let raised: number | undefined;
    this.#q.begin.run();
    try {
      for (const { stream, epoch } of this.#staged.created()) this.#q.newStream.run(stream, epoch);
      row = Number(this.#q.append.run(maxExpires, body).lastInsertRowid);
      // A row may hold ack entries, which a Herald of schema 2 cannot read; one that repeats a
      // JSON by `=`, which a Herald of schema 4 or older cannot.
      raised = this.#raiseSchema(repeats ? 5 : 3);
      this.#q.commit.run();
    } catch (e) {
      if (this.#db.inTransaction) this.#q.rollback.run();
      throw e;
    }
    if (raised !== undefined) {
      this.#upgraded(raised, raised === 5
        ? 'a list send\'s notifications written with one copy of their JSON: a Herald of schema 4 or older refuses the file from now on'
        : 'its journal rows may hold acks: a Herald of schema 2 refuses the file from now on');
    }
    // After the commit, so that a file deleted before it answered is seen:
    // the batch then fails as though it had not committed (its memory state
    // is not applied, its callers get an error), as it is indeed lost.
    this.#checkFile();
    return row;
  }

  /**
   * Throws once the file or its WAL is no longer the one opened: deleted
   * (`rm`, a cleaner of old files, the data dir moved away) or replaced (a
   * backup copied over it). SQLite goes on writing to the open, unlinked
   * files without an error, and the next start finds none of it: every send
   * answered as stored from then on would be lost. Two stat calls per commit
   * (about 2 µs each: a commit of one append costs 15–80 µs).
   */
  #checkFile(): void {
    if (this.#lost) throw this.#lost;
    if (this.#probeFile() === 'lost') throw this.#lost!;
  }

  /**
   * Whether the file and its WAL are still the ones opened (#checkFile);
   * while #lost is unset, after a commit (#write) or when a monitor asks
   * (`failure`). Found gone, the loss is set and said once (onFileLost), and
   * when the WAL alone went its frames are copied into the file: 'rescued'
   * when every commit so far got there, 'lost' otherwise.
   */
  #probeFile(): 'kept' | 'rescued' | 'lost' {
    const identity = this.#identity;
    if (!identity) return 'kept';
    const [file, wal] = identity.ids;
    const fileKept = fileId(identity.file) === file;
    if (fileKept && fileId(`${identity.file}-wal`) === wal) return 'kept';
    this.#lost = new Error(
      `the store file ${identity.file} (or its -wal) was deleted or replaced while Herald ran; nothing more can be stored in it: restart Herald`,
    );
    this.#onFileLost?.(this.#lost);
    // The WAL alone is gone and the file is still ours: copying the WAL's
    // frames (the unlinked file is still open) into it keeps every commit,
    // this one included, through a kill as well as a stop. Without it a
    // kill lost them, and with them the rows that record the streams'
    // EPOCHs: the next start gave those streams the EPOCH derived from the
    // file's (the same as before) and assigned their SEQs again, which a
    // tab resuming with a cursor past them would silently skip.
    return fileKept && this.#rescueWal() ? 'rescued' : 'lost';
  }

  /**
   * Before each write: the lock file is still the one this store holds. It
   * is written once, when the store opens, so a cleaner of old files (a
   * data dir under /tmp: systemd-tmpfiles, after 10 days) may delete it
   * alone, and a second Herald would then open the same file and assign the
   * same SEQs as this one. Found deleted, it is taken again at once (no
   * wait); when another process took it first, every write is refused.
   */
  #checkLock(): void {
    const identity = this.#identity;
    if (!identity || fileId(`${identity.file}-lock`) === identity.lock) return;
    let lock: Database.Database;
    try {
      lock = takeLock(identity.file, 0);
    } catch (e) {
      this.#lost = new Error(
        `the lock file ${identity.file}-lock was deleted while Herald ran, and another process holds the new one (${(e as Error).message}): this Herald stores nothing more, so as not to assign the same SEQs as that one; stop one of them`,
      );
      this.#onFileLost?.(this.#lost);
      throw this.#lost;
    }
    this.#lock?.close();
    this.#lock = lock;
    identity.lock = fileId(`${identity.file}-lock`);
    this.#onLockRetaken?.(`${identity.file}-lock`);
  }

  /**
   * Checkpoints the whole WAL into the file; true when every frame got there.
   * The file then holds every commit and this store writes nothing more, so
   * it is marked closed cleanly too: without a WAL, a `clean` = 0 tells the
   * next start that a WAL was lost (sqlite-schema.ts), and every stream
   * would get a new EPOCH after a stop or a kill that lost nothing.
   */
  #rescueWal(): boolean {
    const all = (): boolean => {
      const [r] = this.#db.pragma('wal_checkpoint(FULL)') as Array<{ busy: number; log: number; checkpointed: number }>;
      return r !== undefined && r.busy === 0 && r.checkpointed === r.log;
    };
    try {
      if (!all()) return false;
    } catch {
      return false;
    }
    try {
      this.#q.clean.run();
      all();
    } catch {
      // The commits are in the file; only the mark is not: the next start gives new EPOCHs.
    }
    return true;
  }

  /**
   * Checks the file first (#probeFile: two stat calls), so that a monitor
   * polling /healthz through a quiet night sees a deleted file at once:
   * checked only after commits, it read well until the next write, though
   * every notification stored so far was then only in the unlinked file,
   * lost at the next restart. Not rate-limited:
   * only /healthz and the status read it, never a send. Finding the WAL alone
   * gone, it copies the WAL into the file here, as the next write would
   * have: that write is refused (#lost) before it could, so left to it the
   * rescue never ran, and a kill in between lost every commit since the last
   * checkpoint. It is safe from a read: no transaction is open between turns
   * (better-sqlite3 commits synchronously), nothing is written to the file
   * after it (every write, pruning pass and eviction is refused once #lost
   * is set), and it costs what it would have cost that write, once: one
   * checkpoint on the event loop (at worst waiting for the worker's). One
   * that fails leaves things as a write that found the loss would have:
   * reported, not rescued.
   */
  get failure(): string | undefined {
    if (!this.#lost && !this.#closed) this.#probeFile();
    return this.#lost?.message;
  }

  get writeFailure(): string | undefined {
    return this.#lost ? undefined : this.#failing?.error;
  }

  append(input: AppendInput, now: number): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    return new Promise<AppendResult>((resolve, reject) => {
      this.#enqueue({ kind: 'append', input, now, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  appendMany(inputs: readonly AppendInput[], now: number): Promise<AppendResult[]> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    return new Promise<AppendResult[]>((resolve, reject) => {
      this.#enqueue({ kind: 'appendMany', inputs, now, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  ack(stream: string, seq: number): Promise<void> {
    return this.ackMany(new Map([[stream, seq]]));
  }

  /** Committed with the turn's other writes; keeps `acks` until then. */
  ackMany(acks: ReadonlyMap<string, number>): Promise<void> {
    if (this.#closed) return Promise.reject(new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed'));
    return new Promise<void>((resolve, reject) => {
      this.#enqueue({ kind: 'ackMany', acks, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  /** Synchronous: the state is in memory, and every tab's connect reads two heads. */
  head(stream: string): StreamHead {
    this.#open();
    return this.#index.head(stream);
  }

  async readAfter(stream: string, afterSeq: number, limit: number, now: number): Promise<ReadResult> {
    this.#open();
    return this.#index.readAfter(stream, afterSeq, limit, now);
  }

  async status(id: string, now: number): Promise<MessageStatus | undefined> {
    this.#open();
    const status = this.#index.status(id, now);
    // An ack waiting for its transaction (ackDelayMs) counts already.
    if (status && !status.acknowledged && this.#queuedAck(status.stream) >= status.seq) status.acknowledged = true;
    return status;
  }

  /** The highest SEQ of `stream` in the acks queued and not yet committed (0: none). */
  #queuedAck(stream: string): number {
    let seq = 0;
    for (const w of this.#queue) {
      if (w.kind === 'ackMany') seq = Math.max(seq, w.acks.get(stream) ?? 0);
    }
    return seq;
  }

  /**
   * Deletes the journal rows whose every notification expired, `pruneBatch`
   * rows and `pruneBytes` of their text per transaction at most, then drops expired notifications and keys from
   * memory, a slice at a time; yields to the event loop between steps so
   * that sends and replays keep flowing while a large backlog is removed.
   * Returns how many notifications were dropped from memory.
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
    const { ids: doomed, sizes } = this.#expiredRows(now);
    if (doomed.length > 0) await this.#saveInSlices();
    for (let i = 0; i < doomed.length;) {
      if (i > 0) await yieldToLoop();
      if (this.#closed) return 0;
      // A lost file (#checkFile, #checkLock) is not this store's to change any more: memory only.
      if (this.#lost) break;
      // Bounded by rows and by text: a row of a large batch (a /send/batch
      // of 1,000) frees hundreds of pages, and SQLite's time to delete a row
      // grows with them.
      let end = i + 1;
      let bytes = sizes[i]!;
      while (end < doomed.length && end - i < this.#pruneBatch && bytes + sizes[end]! <= this.#pruneBytes) bytes += sizes[end++]!;
      const from = i;
      i = end;
      // A deleted row may hold a stream's last or acknowledged SEQ: the same transaction writes them to the stream's row.
      this.#transaction(() => {
        for (let j = from; j < end; j++) this.#q.deleteRow.run(doomed[j]!);
        return true;
      });
      this.checkpointer?.committed(0);
    }
    return this.#index.pruneYielding(now, PRUNE_SLICE, () => this.#closed, this.#evict);
  }

  /**
   * Before journal rows are deleted: writes the rows of the streams whose
   * last or acknowledged SEQ only the journal knows, SAVE_SLICE streams per
   * transaction, giving the event loop a turn between them; the first
   * deletion's transaction then saves only those written meanwhile
   * (#transaction). It saved them all at once: every stream written since
   * the last pass, 160,000 of them held the event loop 270 ms, 640,000
   * 982 ms (measured with 640,000 streams written once each). Those written while it
   * runs are left to that transaction, so the loop ends under any load.
   */
  async #saveInSlices(): Promise<void> {
    for (let left = this.#unsaved.size; left > 0 && this.#unsaved.size > 0;) {
      if (this.#closed || this.#lost) return;
      const slice: Array<[string, StreamState]> = [];
      for (const entry of this.#unsaved) {
        slice.push(entry);
        if (slice.length === SAVE_SLICE) break;
      }
      left -= slice.length;
      this.#checkLock();
      this.#db.transaction(() => {
        for (const [stream, s] of slice) this.#q.save.run(s.lastSeq, s.acked, stream);
      }).immediate();
      for (const [stream, s] of slice) {
        s.savedSeq = s.lastSeq;
        s.savedAcked = s.acked;
        this.#unsaved.delete(stream);
      }
      this.checkpointer?.committed(0);
      await yieldToLoop();
    }
  }

  /**
   * Deletes the rows of the streams a pruning pass evicts, and saves the SEQ
   * floor that covers them, in one transaction: after a restart such a
   * stream, written again, still starts above its old SEQs. Their journal
   * entries need nothing: the deleted journal rows saved their last SEQs in
   * the same transaction (#transaction), and a row still kept is read
   * against the floor (#load). False (they stay, and are tried again at the
   * next pass) when the transaction failed.
   */
  readonly #evict: EvictHook = (idle, floor) => {
    if (this.#lost) return false;
    let raised: number | undefined;
    try {
      this.#checkLock();
      this.#db.transaction(() => {
        for (const [stream] of idle) this.#q.evict.run(stream);
        this.#q.saveFloor.run(String(floor));
        // A Herald of schema 3 does not know the floor (sqlite-schema.ts).
        raised = this.#raiseSchema(4);
      }).immediate();
    } catch {
      return false;
    }
    if (raised !== undefined) this.#upgraded(raised, 'the first idle stream evicted, its SEQs kept in the SEQ floor: a Herald of schema 3 or older refuses the file from now on');
    // Their last SEQs are the floor's now: nothing to save for them.
    for (const [stream] of idle) this.#unsaved.delete(stream);
    this.checkpointer?.committed(0);
    return true;
  };

  /**
   * Inside a write's transaction: raises the file's schema version to `to`
   * when it is below it (sqlite-schema.ts); returns `to` then, for
   * #upgraded once the transaction committed, else undefined.
   */
  #raiseSchema(to: number): number | undefined {
    if (this.#schema >= to) return undefined;
    this.#q.setSchema.run(String(to));
    return to;
  }

  /** A raise of the schema version committed: counts it, and says so. */
  #upgraded(to: number, why: string): void {
    const from = this.#schema;
    this.#schema = to;
    this.#logger?.info({ file: this.#file, from, to }, `store: file upgraded from schema ${from} to ${to} (${why})`);
  }

  /**
   * Takes the journal rows whose every entry expired by `now` off the list
   * (should deleting them fail, they are deleted after the next open). A row
   * with a floor stays while an older row does (see #floorRows).
   */
  #expiredRows(now: number): { ids: number[]; sizes: number[] } {
    const doomed: number[] = [];
    const doomedSizes: number[] = [];
    const ids: number[] = [];
    const expiries: number[] = [];
    const sizes: number[] = [];
    // Whether a row before this one stays with something unexpired in it.
    let olderLive = false;
    for (let i = 0; i < this.#rowIds.length; i++) {
      const id = this.#rowIds[i]!;
      const expires = this.#rowExpiries[i]!;
      if (expires <= now && !(olderLive && this.#floorRows.has(id))) {
        doomed.push(id);
        doomedSizes.push(this.#rowSizes[i]!);
        this.#floorRows.delete(id);
      } else {
        ids.push(id);
        expiries.push(expires);
        sizes.push(this.#rowSizes[i]!);
        if (expires > now) olderLive = true;
      }
    }
    if (doomed.length > 0) {
      this.#rowIds = ids;
      this.#rowExpiries = expiries;
      this.#rowSizes = sizes;
    }
    return { ids: doomed, sizes: doomedSizes };
  }

  /**
   * Runs `body` in a transaction; when it returns true, the same transaction
   * writes last_seq and acked of every stream whose last or acknowledged SEQ
   * only the journal knows, and once it committed they count as saved.
   */
  #transaction(body: () => boolean): void {
    let saved = false;
    if (this.#lost) throw this.#lost;
    this.#checkLock();
    this.#db.transaction(() => {
      if (!body()) return;
      for (const [stream, s] of this.#unsaved) this.#q.save.run(s.lastSeq, s.acked, stream);
      saved = true;
    }).immediate();
    if (!saved) return;
    for (const s of this.#unsaved.values()) {
      s.savedSeq = s.lastSeq;
      s.savedAcked = s.acked;
    }
    this.#unsaved.clear();
  }

  #open(): void {
    if (this.#closed) throw new HeraldError('HERALD_ERR_SHUTTING_DOWN', 'the store is closed');
  }

  /** Commits what is queued, saves every stream's last SEQ, then closes the file (checkpointing the WAL into it). */
  counts(): StoreCounts {
    const counts = this.#index.counts();
    const c = this.checkpointer;
    // A lost file fails every write as surely as a full disk does, and for good: `writesFailing` says
    // so too (it read false while every stored send was refused, and /healthz answered 503).
    const writes = { transactions: this.stats.batches, writeFailures: this.#writeFailures, writesFailing: this.#lost !== undefined || this.#failing !== undefined };
    if (!c) return { ...counts, ...writes };
    return { ...counts, ...writes, wal: { checkpoints: c.checkpoints, catchUps: c.catchUps, holds: c.holds, syncs: c.syncs, syncFailures: c.syncFailures } };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#pruner.stop();
    while (this.#queue.length > 0) this.#flush(true);
    this.#closed = true;
    await this.#pruning?.catch(() => 0);
    this.#refusals?.flush();
    // A lost file is not marked: it is not this store's any more.
    let marked = this.#lost !== undefined;
    try {
      await this.checkpointer?.close();
      if (!this.#lost) {
        this.#transaction(() => {
          this.#q.clean.run();
          return true;
        });
        marked = true;
      }
    } finally {
      this.#db.close();
      if (!marked) this.#keepWal();
      this.#lock?.close();
    }
  }

  /**
   * The clean mark could not be written (the disk full: its commit cannot
   * grow the WAL), yet closing checkpointed every commit into the file,
   * which has room for them, and deleted the WAL. The next start then read
   * `clean` = 0 without a WAL as a lost WAL (sqlite-schema.ts) and gave every
   * stream a new EPOCH: a RESET and a full replay for every tab, though
   * nothing was lost. An empty WAL is what a killed process leaves when it
   * committed nothing since its open: the next start takes it as the
   * harmless unclean stop this is. Created only when missing (a checkpoint
   * that failed left the WAL, frames and all), before the lock is let go.
   */
  #keepWal(): void {
    if (!this.#identity) return;
    try {
      closeSync(openSync(`${this.#file}-wal`, 'wx', 0o600));
    } catch {
      // It is there (the commits still in it), or cannot be made: then the next start gives new EPOCHs, as before.
    }
  }
}
