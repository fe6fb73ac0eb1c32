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
 * The store reports how much it wrote; past `thresholdBytes` since the last
 * checkpoint, one is asked for (never two at once). A worker that cannot
 * start or fails leaves the checkpoints to the writer's own connection, as
 * SQLite would have done, and says why through `onError`.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

export interface WalCheckpointerOptions {
  /** The database file (its WAL is `<file>-wal`). */
  file: string;
  /** The writer's connection: checkpoints fall back to it when the worker fails. */
  db: Database.Database;
  /** Bytes written since the last checkpoint that ask for the next one. Default 4 MiB (SQLite's 1000 pages). */
  thresholdBytes?: number;
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

export class WalCheckpointer {
  readonly #db: Database.Database;
  readonly #threshold: number;
  readonly #onError: ((error: Error) => void) | undefined;
  #worker: Worker | undefined;
  #inFlight = false;
  #written = 0;
  /** Checkpoints the worker completed (tests, status). */
  checkpoints = 0;
  /** The last one's answer: WAL frames in the log, and how many of them are now in the file. */
  last: { log: number; checkpointed: number } | undefined;
  readonly #waiters: Array<() => void> = [];

  constructor(options: WalCheckpointerOptions) {
    this.#db = options.db;
    this.#threshold = options.thresholdBytes ?? 4 * 1024 * 1024;
    this.#onError = options.onError;
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

  /** The store committed about this many bytes to the WAL. */
  wrote(bytes: number): void {
    this.#written += bytes;
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

  #done(reply: CheckpointReply): void {
    if (reply.ok) {
      this.checkpoints++;
      this.last = { log: reply.log, checkpointed: reply.checkpointed };
    }
    else this.#onError?.(new Error(`WAL checkpoint failed: ${reply.error}`));
    this.#settle();
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
    this.#worker?.unref();
    for (const w of this.#waiters.splice(0)) w();
  }
}
