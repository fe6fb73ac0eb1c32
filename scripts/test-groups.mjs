// Which test files share a process, and in what order the processes run
// (scripts/run-tests.mjs). Each process node's runner starts costs a test file
// about 0.8 s of CPU and 25,000 page faults before its first test: node
// itself, then the bundled server and its packages, loaded and compiled again
// in every process. And many files spend most of their time waiting: for a
// heartbeat, a timeout, a backoff, a clock step. So:
// - files that are known to be short run a few to a process, one after the
//   other, each in a suite of its own named after it (groupEntry): what the
//   second file loads is already loaded;
// - files that mostly wait (their CPU time alone at most WAITING_SHARE of
//   their wall time) run a few to a process at the same time, each file's
//   own tests still one after the other: their waits overlap instead of
//   holding one of the runner's places each. Together they use at most
//   half a core (WAITING_GROUP_CPU). One that finds no other to wait with
//   is planned as a busy file.
// test/durations.json holds each file's wall and CPU time alone
// (`node scripts/run-tests.mjs --durations` measures them again).
//
// A file keeps a process of its own when any of these holds:
// - it is not in test/durations.json (a new file, until the table is measured
//   again);
// - it is busy (it does not mostly wait) and took longer alone than
//   SHARE_SECONDS: its load is little of its cost;
// - its source measures or changes the process (OWN_PROCESS below: its heap,
//   CPU or GC, process listeners or the environment, the clock, the global
//   HTTP dispatcher), or awaits at the top level (what it starts would run
//   during another file's tests);
// - it says so, with a line `// test-runner: own process` and why: a file
//   that counts what happens second by second, say, which another file's
//   synchronous work in the same event loop (a SQLite write) would stall.
//
// All processes then run longest first, so that the run does not end on one
// long file while the other core has nothing left to do.

/** A busy file that took longer than this alone runs in its own process. */
export const SHARE_SECONDS = 8;
/** The most a shared process of busy files is expected to take, by the files' times alone. */
export const GROUP_SECONDS = 24;
/** What a file not in the table is expected to take, for the order. */
export const UNKNOWN_SECONDS = 10;
/** A file whose CPU time alone is at most this share of its wall time mostly waits. */
export const WAITING_SHARE = 0.3;
/** The most CPU time the files of a waiting process may take together, as a share of its longest file's wall time. */
export const WAITING_GROUP_CPU = 0.5;
/** The most files a waiting process runs at the same time. */
export const WAITING_GROUP_FILES = 6;
/**
 * How long one test file in a shared process may take (its suite's timeout
 * there), and one measured alone (--durations): a file that hangs fails at
 * this, by its name, and the process's next file runs.
 */
export const FILE_TIMEOUT_MS = 120_000;
/**
 * How long one process may take, whatever it runs (node's --test-timeout,
 * which cannot differ between processes): a file with a process of its own
 * has this long, and it is the backstop for a shared process that does not
 * end after its files have (something a hung test left running). It was
 * 120 s, which a shared process's files then shared: on a slow machine (CI
 * on dear memory) one planned at GROUP_SECONDS took 95 s, its files 2 to 6
 * times as long as alone, 25 s short of failing five files each well within
 * its time.
 */
export const PROCESS_TIMEOUT_MS = 300_000;

/** What in a test file's source keeps it in a process of its own. */
export const OWN_PROCESS = [
  { reason: 'says so', pattern: /^\/\/ test-runner: own process\b/m },
  { reason: 'measures the process', pattern: /\b(memoryUsage|cpuUsage|resourceUsage|getHeapStatistics|getHeapSpaceStatistics|writeHeapSnapshot|eventLoopUtilization|monitorEventLoopDelay|PerformanceObserver)\b|\bgc\(\)/ },
  { reason: 'listens on the process', pattern: /\bprocess\.(on|once|addListener|prependListener|prependOnceListener|removeListener|removeAllListeners|off)\(/ },
  { reason: 'changes the process', pattern: /\bprocess\.(chdir|umask|exit|exitCode|setSourceMapsEnabled|emitWarning)\b|\bprocess\.env(\.\w+|\[[^\]]+\])\s*=[^=]|\bdelete process\.env\b|Object\.assign\(process\.env\b/ },
  { reason: 'mocks', pattern: /\bmock\.(timers|method|getter|setter|module)\b/ },
  { reason: 'changes a global', pattern: /\bsetGlobalDispatcher\b|\bError\.stackTraceLimit\s*=|\b(globalThis|global)\.\w+\s*=[^=]/ },
  { reason: 'awaits at the top level', pattern: /^(?:(?:const|let|var)\b[^\n]*?\bawait\b|await\b|for await\b)/m },
];

/** Why `source` keeps its file in a process of its own, or undefined. */
export function ownProcessReason(source) {
  return OWN_PROCESS.find(({ pattern }) => pattern.test(source))?.reason;
}

/**
 * The processes for `files` (paths as the runner names them), longest first:
 * each `{ files, seconds, together }`, where `files` has one file or several
 * that share, `seconds` is how long it is expected to take, and `together`
 * says its files run at the same time. `sourceOf(file)` gives a file's
 * source; `durations` each file's `{ wall, cpu }` seconds alone, from
 * test/durations.json.
 */
export function planProcesses(files, sourceOf, durations) {
  const own = [];
  const busy = [];
  const waiting = [];
  for (const file of files) {
    const { wall, cpu } = durations[file] ?? {};
    if (typeof wall !== 'number' || ownProcessReason(sourceOf(file)) !== undefined) {
      own.push({ files: [file], seconds: typeof wall === 'number' ? wall : UNKNOWN_SECONDS, together: false });
    } else if (typeof cpu === 'number' && cpu <= WAITING_SHARE * wall) {
      waiting.push({ file, wall, cpu });
    } else if (wall > SHARE_SECONDS) {
      own.push({ files: [file], seconds: wall, together: false });
    } else {
      busy.push({ file, wall });
    }
  }
  const longestFirst = (a, b) => b.wall - a.wall || a.file.localeCompare(b.file);
  // Files that wait, first fit, longest first: a process takes as long as its longest file.
  const together = [];
  for (const { file, wall, cpu } of waiting.sort(longestFirst)) {
    const group = together.find((g) => g.files.length < WAITING_GROUP_FILES && g.cpu + cpu <= WAITING_GROUP_CPU * g.seconds);
    if (group) {
      group.files.push(file);
      group.cpu += cpu;
    } else {
      together.push({ files: [file], seconds: wall, cpu });
    }
  }
  // One that found no file to wait with is a file like any other.
  for (const { files: [file], seconds } of together.filter((g) => g.files.length === 1)) {
    if (seconds > SHARE_SECONDS) own.push({ files: [file], seconds, together: false });
    else busy.push({ file, wall: seconds });
  }
  // Busy files, first fit, longest first: few processes, each near GROUP_SECONDS.
  const groups = [];
  for (const { file, wall } of busy.sort(longestFirst)) {
    const group = groups.find((g) => g.seconds + wall <= GROUP_SECONDS);
    if (group) {
      group.files.push(file);
      group.seconds += wall;
    } else {
      groups.push({ files: [file], seconds: wall, together: false });
    }
  }
  const shared = [...groups, ...together.filter((g) => g.files.length > 1).map(({ files: f, seconds }) => ({ files: f, seconds, together: true }))];
  for (const group of shared) group.files.sort();
  return [...own, ...shared].sort((a, b) => b.seconds - a.seconds || a.files[0].localeCompare(b.files[0]));
}

/**
 * The source of a module that runs several test files in one process, each
 * in a suite named after it (`entries`: `{ name, url }`, the file as reports
 * name it and the URL of its bundle). Each suite imports its file from its
 * own function, synchronously: that is what puts the file's tests and
 * top-level hooks inside that suite (node's runner finds a test's parent from
 * where it is created), so a file's `after` runs when its own tests are done.
 * Every file is loaded (its top-level code run) as the process starts, in
 * whatever order its import completes, alongside the first file's hooks,
 * which is why a file that awaits at the top level keeps a process of its
 * own. A file that fails to load fails its own suite, with its error, and no
 * other.
 *
 * The suites run one after the other, as a file's top-level tests do; with
 * `together`, at the same time, inside one suite that says so, each file's
 * own tests still one after the other (a suite's concurrency is its
 * children's, unless they say otherwise). Each file's suite times out on its
 * own at `fileTimeoutMs`, its tests still running cancelled, and the next
 * file runs: the time is each file's, as when it has a process of its own,
 * not shared with the files before it.
 */
export function groupEntry(entries, { together = false, fileTimeoutMs = FILE_TIMEOUT_MS } = {}) {
  const suites = entries.map(({ name, url }) => `describe(${JSON.stringify(name)}, { concurrency: 1, timeout: ${fileTimeoutMs} }, () => import(${JSON.stringify(url)}));`);
  return [
    "import { describe } from 'node:test';",
    ...(together ? [`describe(${JSON.stringify(TOGETHER)}, { concurrency: true }, () => {`, ...suites.map((line) => `  ${line}`), '});'] : suites),
    '',
  ].join('\n');
}

/** The suite a process whose files run at the same time holds them in. */
export const TOGETHER = 'files that mostly wait, at the same time';
