// The benchmark's verdicts on issue 7's targets: judged on the medians, with
// each repetition's ratio to the floor's repetition of the same number beside
// them. Rows as bench/run.mjs collects them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
// @ts-expect-error: the bench is plain JavaScript (bench/lib/report.mjs), without type declarations
import * as report from '../bench/lib/report.mjs';

interface Row { workload: string; server: string; rep: number; metrics: Record<string, number> }
interface Verdict { text: string; ratio: number; met: boolean | null; perRep: number[]; metReps: number }
const targetVerdicts = report.targetVerdicts as (rows: Row[]) => Verdict[];
const renderMarkdown = report.renderMarkdown as (run: { cfg: object; rows: Row[]; info: object; durationS: number }) => string;

const w2 = (server: string, rep: number, msgPerSec: number): Row => ({ workload: 'w2', server, rep, metrics: { msgPerSec } });

// Out of order on purpose: the pairs follow the repetition number, not the rows' order.
const rows: Row[] = [
  w2('floor', 2, 50_000), w2('herald-memory', 2, 45_000),
  w2('floor', 1, 40_000), w2('herald-memory', 1, 42_000),
  w2('floor', 3, 60_000), w2('herald-memory', 3, 48_000),
  // Only two SQLite repetitions: the third failed.
  w2('herald-sqlite', 1, 36_000), w2('herald-sqlite', 3, 51_000),
];

test('each target pairs every repetition with the floor\'s of the same number, beside the ratio of the medians', () => {
  const byText = new Map(targetVerdicts(rows).map((v) => [v.text, v]));
  const memory = byText.get('W2 throughput ≥ 1.0× floor (memory store)')!;
  assert.equal(memory.ratio, 45_000 / 50_000);
  assert.equal(memory.met, false);
  assert.deepEqual(memory.perRep, [42_000 / 40_000, 45_000 / 50_000, 48_000 / 60_000]);
  assert.equal(memory.metReps, 1);

  const sqlite = byText.get('W2 throughput ≥ 0.8× floor (SQLite store)')!;
  assert.deepEqual(sqlite.perRep, [36_000 / 40_000, 51_000 / 60_000]);
  assert.equal(sqlite.metReps, 2);

  const connect = byText.get('W1 connect rate ≥ 0.8× floor')!;
  assert.equal(connect.met, null);
  assert.deepEqual(connect.perRep, []);
});

test('a bound from above counts the repetitions at or under it', () => {
  const w4 = (server: string, rep: number, p99Ms: number): Row => ({ workload: 'w4', server, rep, metrics: { p99Ms } });
  const v = targetVerdicts([w4('floor', 1, 10), w4('herald-memory', 1, 12), w4('floor', 2, 10), w4('herald-memory', 2, 13)])
    .find((t) => t.text === 'W4 p99 ≤ 1.2× floor (memory store)')!;
  assert.deepEqual(v.perRep, [1.2, 1.3]);
  assert.equal(v.metReps, 1);
});

test('the results table prints the ratios of each repetition and how many met', () => {
  const cfg = {
    servers: ['floor', 'herald-memory', 'herald-sqlite'], reps: 3, loadgens: 2, w1Conns: 10, connectConcurrency: 5,
    w2People: 10, w2Total: 100, w2Batch: 10, w2Concurrency: 1, w2Warmup: 10, w3Broadcasts: 1, ackDelayMs: 1000,
    broadcastAckDelayMs: 2000, w4DurationMs: 1000, w4TickMs: 5, w4Rate: 0, w4Fraction: 0.2, heraldTtl: '', serverNodeFlags: [], quick: false,
  };
  const info = { date: 'today', nproc: 2, cpu: 'test', memGiB: 1, kernel: 'test', node: 'v20', herald: '0', commit: 'x', packages: {} };
  const md: string = renderMarkdown({ cfg, rows, info, durationS: 1 });
  assert.match(md, /\| W2 throughput ≥ 1\.0× floor \(memory store\) \| 50,000\.00 \| 45,000\.00 \| 0\.90× \| \*\*no\*\* \| 1\.05×, 0\.90×, 0\.80× \(1 of 3 met\) \|/);
  assert.match(md, /\| W2 throughput ≥ 0\.8× floor \(SQLite store\) \|[^\n]*\| 0\.90×, 0\.85× \(2 of 2 met\) \|/);
  assert.match(md, /\| W1 connect rate ≥ 0\.8× floor \|[^\n]*not measured \| — \|/);
  // No floor that stores in this run: no column for it.
  assert.doesNotMatch(md, /the floor that stores/);
});

test('with the floor that stores in the run, each target also gives its ratios to the floor, unjudged', () => {
  const cfg = {
    servers: ['floor', 'floor-stored', 'herald-memory'], reps: 3, loadgens: 2, w1Conns: 10, connectConcurrency: 5,
    w2People: 10, w2Total: 100, w2Batch: 10, w2Concurrency: 1, w2Warmup: 10, w3Broadcasts: 1, ackDelayMs: 1000,
    broadcastAckDelayMs: 2000, w4DurationMs: 1000, w4TickMs: 5, w4Rate: 0, w4Fraction: 0.2, heraldTtl: '', serverNodeFlags: [], quick: false,
  };
  const stored = [w2('floor-stored', 3, 51_000), w2('floor-stored', 1, 34_000), w2('floor-stored', 2, 40_000)];
  const memory = targetVerdicts([...rows, ...stored]).find((v) => v.text === 'W2 throughput ≥ 1.0× floor (memory store)')! as Verdict & { storing: { ratio: number; perRep: number[] } };
  assert.equal(memory.storing.ratio, 40_000 / 50_000);
  assert.deepEqual(memory.storing.perRep, [34_000 / 40_000, 40_000 / 50_000, 51_000 / 60_000]);
  // Herald's verdict is the same as without it.
  assert.equal(memory.metReps, 1);

  const info = { date: 'today', nproc: 2, cpu: 'test', memGiB: 1, kernel: 'test', node: 'v20', herald: '0', commit: 'x', packages: {} };
  const md: string = renderMarkdown({ cfg, rows: [...rows, ...stored], info, durationS: 1 });
  assert.match(md, /\| target \| floor \| Herald \| ratio \| met \| each repetition against the floor's \| the floor that stores, for reference \|/);
  assert.match(md, /\| W2 throughput ≥ 1\.0× floor \(memory store\) \|[^\n]*\(1 of 3 met\) \| 0\.80× \(0\.85, 0\.80, 0\.85\) \|/);
  // Not measured for it (no W1 rows): a dash.
  assert.match(md, /\| W1 connect rate ≥ 0\.8× floor \|[^\n]*not measured \| — \| — \|/);
  // Its column in the workload tables carries a ratio, as Herald's do.
  assert.match(md, /\| delivered \(first send → last receipt\) \(msg\/s\) \| \*\*50,000\*\* [^|]+\| \*\*40,000\*\* \(34,000–51,000\) ×0\.80 \|/);
});

test('the machine section gives the price of a new page before and after the runs, when it was measured', () => {
  const cfg = {
    servers: ['floor'], reps: 1, loadgens: 1, w1Conns: 10, connectConcurrency: 5, w2People: 10, w2Total: 100, w2Batch: 10,
    w2Concurrency: 1, w2Warmup: 10, w3Broadcasts: 1, ackDelayMs: 1000, broadcastAckDelayMs: 2000, w4DurationMs: 1000, w4TickMs: 5,
    w4Rate: 0, w4Fraction: 0.2, heraldTtl: '', serverNodeFlags: [], quick: false, firstTouchProbes: 5,
  };
  const info = { date: 'today', nproc: 2, cpu: 'test', memGiB: 1, kernel: 'test', node: 'v20', herald: '0', commit: 'x', packages: {} };
  const line = /- memory touched for the first time: ([^ ]+) µs a page before the runs, ([^ ]+) after/;
  const both = renderMarkdown({ cfg, rows: [], info: { ...info, firstTouch: { before: 1.84, after: 12.5 } }, durationS: 1 });
  assert.deepEqual(line.exec(both)?.slice(1), ['1.8', '12.5']);
  assert.match(both, /MiB Buffers, median of 5\)/, 'the probes the run was told to make (--first-touch-probes)');
  const failedAfter = renderMarkdown({ cfg, rows: [], info: { ...info, firstTouch: { before: 2.04, after: undefined } }, durationS: 1 });
  assert.deepEqual(line.exec(failedAfter)?.slice(1), ['2.0', '—']);
  assert.doesNotMatch(renderMarkdown({ cfg, rows: [], info, durationS: 1 }), /memory touched for the first time/);
});
