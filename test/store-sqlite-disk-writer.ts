/**
 * A SqliteStore in a process of its own whose files may not grow past the
 * RLIMIT_FSIZE it was started with (the test starts it under `ulimit -f`),
 * with WAL checkpoints on its own thread (test/store-sqlite-journal.test.ts).
 * The checkpoint worker is made to fail at its start, as any worker can (the
 * file is away while it opens it); checkpoints then run on the writer's
 * thread, after every commit. Appends HERALD_TEST_STORE_N notifications of
 * 10,000 characters, one at a time, writes "DONE <JSON>" with what each
 * append answered, and waits for SIGKILL.
 */
import { renameSync } from 'node:fs';
import { SqliteStore } from '../src/server/store/sqlite-store.js';

// Past the limit a write fails with EFBIG instead of killing the process.
process.on('SIGXFSZ', () => {});
const file = process.env.HERALD_TEST_STORE_FILE!;
const checkpointErrors: string[] = [];
let workerFailed!: () => void;
const failed = new Promise<void>((resolve) => { workerFailed = resolve; });
const store = new SqliteStore({
  file, maxPerStream: 100_000, checkpointBytes: 1,
  onCheckpointError: (e) => {
    checkpointErrors.push(e.message);
    if (e.message.startsWith('checkpoint worker failed')) workerFailed();
  },
});
renameSync(file, `${file}.away`);
const alive = setInterval(() => {}, 60_000);
await failed;
renameSync(`${file}.away`, file);
const text = 'x'.repeat(10_000);
const answers: Array<{ n: number; seq?: number; error?: string }> = [];
for (let n = 1; n <= Number(process.env.HERALD_TEST_STORE_N); n++) {
  try {
    const r = await store.append({ stream: 'admin:1', json: JSON.stringify({ N: n, TEXT: text }), expiresAt: 8_000_000_000_000 }, 0);
    answers.push({ n, seq: r.seq });
  } catch (e) {
    answers.push({ n, error: (e as Error).message });
  }
}
process.stdout.write(`DONE ${JSON.stringify({ answers, checkpointErrors })}\n`);
void alive;
