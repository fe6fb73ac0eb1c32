/**
 * A SqliteStore in a process of its own, for the tests that kill it
 * (test/store-sqlite-journal.test.ts): opens HERALD_TEST_STORE_FILE, runs the
 * operations in HERALD_TEST_STORE_OPS (JSON) one after the other, writes
 * "DONE <results as JSON>" on stdout and waits, without closing the store,
 * for the test to kill it with SIGKILL.
 */
import { SqliteStore } from '../src/server/store/sqlite-store.js';

type Op =
  | { op: 'append'; stream: string; json: string; expiresAt: number; now: number; key?: string }
  | { op: 'ack'; stream: string; seq: number }
  | { op: 'prune'; now: number };

const store = new SqliteStore({ file: process.env.HERALD_TEST_STORE_FILE!, maxPerStream: 100, bootId: 'boot-test', clock: () => 0 });
const results: unknown[] = [];
for (const o of JSON.parse(process.env.HERALD_TEST_STORE_OPS!) as Op[]) {
  if (o.op === 'append') {
    const input = o.key === undefined ? { stream: o.stream, json: o.json, expiresAt: o.expiresAt } : { stream: o.stream, json: o.json, expiresAt: o.expiresAt, idempotencyKey: o.key };
    results.push(await store.append(input, o.now));
  } else if (o.op === 'ack') {
    results.push(await store.ack(o.stream, o.seq) ?? null);
  } else {
    results.push(await store.prune(o.now));
  }
}
process.stdout.write(`DONE ${JSON.stringify(results)}\n`);
setInterval(() => {}, 60_000);
