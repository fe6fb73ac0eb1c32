/**
 * Checkpoints the SQLite store's write-ahead log from a worker thread, over a
 * connection of its own, so the event loop never waits for one.
 *
 * SQLite checkpoints automatically on the commit that takes the WAL past
 * 1000 pages: that commit then copies about 4 MB into the database file and
 * fsyncs it, 6–8 ms here, during which no tab is sent anything. At 11,000
 * notifications a second that was a stall every half second (docs/bench-history.md,
 * third round, W4). Under WAL a checkpoint and the writer run side by side, so the
 * worker's checkpoint costs the writer nothing but a core it does not use.
 *
 * The store reports each transaction it committed and how much row text it
 * held; past `thresholdBytes` of WAL since the last checkpoint, one is asked
 * for (never two at once). A worker that cannot start or fails leaves the
 * checkpoints to the writer's own connection, as SQLite would have done, and
 * says why through `onError`.
 *
 * Under `synchronous = NORMAL` SQLite fsyncs the WAL only when it
 * checkpoints, so what was committed since waited for the operating system's
 * own writeback (about 30 s on Linux) before a power cut could not take it.
 * With `syncMs`, the WAL is fsynced that long after a commit (off the event
 * loop, in libuv's pool), so a power cut loses at most about that much.
 */
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

export interface WalCheckpointerOptions {
  /** The database file (its WAL is `<file>-wal`). */
  file: string;
  /** The writer's connection: checkpoints fall back to it when the worker fails. */
  db: Database.Database;
  /** WAL bytes written since the last checkpoint that ask for the next one. Default 4 MiB (SQLite's 1000 pages). */
  thresholdBytes?: number;
  /** How long after a commit the WAL is fsynced at the latest (commits in between share it). 0 = never (synchronous = FULL fsyncs each). */
  syncMs?: number;
  /** Told when a checkpoint failed, or when the worker failed and checkpoints moved to the writer's thread. */
  onError?: (error: Error) => void;
}

/** What the worker answers to each request. */
export type CheckpointReply = { ok: true; busy: number; log: number; checkpointed: number } | { ok: false; error: string };

/**
 * The worker: a second connection to the file that runs a passive
 * checkpoint each time it is asked (passive: it copies what it can without
 * waiting for the writer, which goes on committing meanwhile). Plain
 * CommonJS given as source, so the same code runs from the build and under
 * the test runner's TypeScript loader, which worker threads do not inherit.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
// This connection never writes, so it would never checkpoint on its own; make sure.
db.pragma('wal_autocheckpoint = 0');
parentPort.on('message', (what) => {
  if (what === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  let reply;
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    reply = { ok: true, busy: r.busy, log: r.log, checkpointed: r.checkpointed };
  } catch (e) {
    reply = { ok: false, error: e.message };
  }
  parentPort.postMessage(reply);
});
`;
const DRIVER = createRequire(import.meta.url).resolve('better-sqlite3');
/** The longest the store holds its commits for a catch-up checkpoint (see #done). */
const MAX_HOLD_MS = 200;

export class WalCheckpointer {
  readonly #db: Database.Database;
  readonly #threshold: number;
  readonly #onError: ((error: Error) => void) | undefined;
  #worker: Worker | undefined;
  #inFlight = false;
  #written = 0;
  /** The store committed while the worker's checkpoint ran: the WAL cannot start over after it. */
  #wroteDuring = false;
  /** A catch-up checkpoint runs (see #done). */
  #catchingUp = false;
  /** The last catch-up saw commits land during it, so the WAL did not start over: the next one holds the commits. */
  #holdNext = false;
  /** Set while the store holds its commits for the catch-up: ends it after MAX_HOLD_MS whatever happens. */
  #holdTimer: NodeJS.Timeout | undefined;
  #onCaughtUp: (() => void) | undefined;
  /** Checkpoints the worker completed (tests, status). */
  checkpoints = 0;
  /** Catch-up checkpoints asked for, and how many of them held the store's commits (tests, status). */
  catchUps = 0;
  holds = 0;
  /** The last one's answer: WAL frames in the log, and how many of them are now in the file. */
  last: { log: number; checkpointed: number } | undefined;
  readonly #waiters: Array<() => void> = [];
  /** What one WAL frame takes: a page and its 24-byte header. */
  readonly #frameBytes: number;
  readonly #walFile: string;
  readonly #syncMs: number;
  #syncTimer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> | undefined;
  /** fsyncs of the WAL done (tests, status). */
  syncs = 0;
  /** fsyncs of the WAL that failed (tests, status). */
  syncFailures = 0;
  /** The last fsync failed: the next failures are not reported again until one succeeds. */
  #syncFailing = false;

  constructor(options: WalCheckpointerOptions) {
    this.#db = options.db;
    this.#threshold = options.thresholdBytes ?? 4 * 1024 * 1024;
    this.#onError = options.onError;
    this.#frameBytes = (options.db.pragma('page_size', { simple: true }) as number) + 24;
    this.#walFile = `${options.file}-wal`;
    this.#syncMs = options.syncMs ?? 0;
    try {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file: options.file, driver: DRIVER } });
      worker.on('message', (reply: CheckpointReply) => this.#done(reply));
      worker.on('error', (err) => this.#fail(err));
      worker.on('exit', (code) => {
        if (this.#worker === worker) this.#fail(new Error(`checkpoint worker exited with code ${code}`));
      });
      // It must not keep a process alive that is otherwise done (it is held only while a checkpoint runs).
      worker.unref();
      this.#worker = worker;
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  /**
   * The store committed a transaction holding about `textBytes` of row text.
   * The WAL takes more than the text: every commit writes whole pages, at
   * least the one its row went into. Counting the text alone, a quiet
   * panel's commits (a send or an ack each, a few hundred bytes of text and
   * a 4 KB page apiece) grew the WAL tens of times past the threshold before
   * a checkpoint (13 MB of WAL after 3,000 small commits, and none yet).
   */
  committed(textBytes: number): void {
    this.#written += textBytes + this.#frameBytes;
    this.#scheduleSync();
    if (this.#inFlight) this.#wroteDuring = true;
    if (this.#written < this.#threshold || this.#inFlight) return;
    this.#written = 0;
    if (!this.#worker) {
      // Never thrown to the store: its commit is done, and a checkpoint is retried 4 MB later.
      try {
        this.#db.pragma('wal_checkpoint(PASSIVE)');
      } catch (e) {
        this.#onError?.(new Error(`WAL checkpoint failed: ${(e as Error).message}`));
      }
      return;
    }
    this.#inFlight = true;
    this.#worker.ref();
    this.#worker.postMessage('checkpoint');
  }

  /**
   * Whether the store should hold its commits now: a catch-up checkpoint
   * that holds them runs (see #done). `resume` is called once it ended (or
   * the worker failed or closed).
   */
  holding(resume: () => void): boolean {
    if (this.#holdTimer === undefined) return false;
    this.#onCaughtUp = resume;
    return true;
  }

  /** Lets the store commit again. */
  #endHold(): void {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    const resume = this.#onCaughtUp;
    this.#onCaughtUp = undefined;
    resume?.();
  }

  /** Resolves once no checkpoint is running (tests). */
  idle(): Promise<void> {
    if (!this.#inFlight) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /**
   * Stops the worker once its checkpoint (if one runs) is done, its
   * connection closed; the writer's close then checkpoints what is left and
   * removes the WAL. A worker that does not stop within a second is terminated.
   */
  async close(): Promise<void> {
    // The store's close checkpoints the WAL into the file and fsyncs it: no sync is needed after.
    clearTimeout(this.#syncTimer);
    this.#syncTimer = undefined;
    await this.#syncing;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.ref();
      worker.postMessage('close');
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), 1000);
      });
      if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
      clearTimeout(timer);
    }
    this.#settle();
  }

  /**
   * A checkpoint ended. SQLite starts the WAL over, at the next commit, only
   * once a checkpoint has copied every frame in it; a passive one copies
   * those that were there when it began, and under steady sends the writer
   * always committed more meanwhile, so the WAL never started over and grew
   * for good (25 MB after 60,000 sends of 250 bytes, a checkpoint every
   * 1 MB; 9 MB a second at 20,000 sends a second). So when the store
   * committed during one, a second one (the catch-up) follows at once: it
   * copies only what came during the first, a few pages, and when no commit
   * lands while it runs, the next commit starts the WAL over.
   *
   * The catch-up holds the store's commits (the event loop goes on) only when
   * the last one did not make it: commits landed during it. Holding every
   * time stopped every send for the catch-up's length, mostly its fsync of
   * the database file, 3–5 ms once a second at W4's rate
   * (docs/bench-history.md, thirty-third round). Now at that rate (65
   * sends every 5 ms) 4 catch-ups of 9 hold them, and with sends 10 ms
   * apart none. Under sends that never pause, every other catch-up holds,
   * so the WAL still starts over at least every second checkpoint.
   */
  #done(reply: CheckpointReply): void {
    if (reply.ok) {
      this.checkpoints++;
      this.last = { log: reply.log, checkpointed: reply.checkpointed };
      if (this.#catchingUp) this.#holdNext = this.#wroteDuring;
      else if (!this.#wroteDuring) this.#holdNext = false;
      else if (this.#worker) {
        this.#wroteDuring = false;
        this.#catchingUp = true;
        this.catchUps++;
        if (this.#holdNext) {
          this.holds++;
          // A disk that takes this long to sync must not stop the sends: they go on, and this WAL starts over next time.
          this.#holdTimer = setTimeout(() => this.#endHold(), MAX_HOLD_MS);
        }
        this.#worker.postMessage('checkpoint');
        return;
      }
    }
    else this.#onError?.(new Error(`WAL checkpoint failed: ${reply.error}`));
    this.#settle();
  }

  /** A commit is not yet fsynced: the WAL will be, `syncMs` from now at the latest. */
  #scheduleSync(): void {
    if (this.#syncMs <= 0 || this.#syncTimer !== undefined) return;
    this.#syncTimer = setTimeout(() => {
      this.#syncTimer = undefined;
      // One at a time: a sync still running (a slow disk) is waited for first.
      const run: Promise<void> = this.#sync(this.#syncing).finally(() => {
        if (this.#syncing === run) this.#syncing = undefined;
      });
      this.#syncing = run;
    }, this.#syncMs);
    // Not what keeps a process alive: the store's close syncs everything.
    this.#syncTimer.unref();
  }

  /** fdatasync of the WAL: its frames (every commit so far) survive a power cut. */
  async #sync(previous: Promise<void> | undefined): Promise<void> {
    await previous;
    try {
      const wal = await open(this.#walFile, 'r');
      try {
        await wal.datasync();
        this.syncs++;
        this.#syncFailing = false;
      } finally {
        await wal.close();
      }
    } catch (e) {
      this.syncFailures++;
      // Once per run of failures, not once per syncMs: a WAL that cannot be synced (a disk
      // error, a file removed under the store) stays so, and a warning a second for as long
      // as sends go on hid every other line of the log. Said again after a sync that worked.
      if (this.#syncFailing) return;
      this.#syncFailing = true;
      this.#onError?.(new Error(`WAL fsync failed: ${(e as Error).message} (not reported again until a sync succeeds)`));
    }
  }

  #fail(error: Error): void {
    const worker = this.#worker;
    this.#worker = undefined;
    void worker?.terminate();
    this.#settle();
    this.#onError?.(new Error(`checkpoint worker failed (${error.message}); checkpoints now run on the main thread`));
  }

  #settle(): void {
    this.#inFlight = false;
    this.#wroteDuring = false;
    this.#catchingUp = false;
    this.#worker?.unref();
    this.#endHold();
    for (const w of this.#waiters.splice(0)) w();
  }
}
