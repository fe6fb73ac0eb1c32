// Which test files share a process, and in what order the processes run
// (scripts/run-tests.mjs). Each process node's runner starts costs a test file
// about 0.8 s of CPU and 25,000 page faults before its first test: node
// itself, then the bundled server and its packages, loaded and compiled again
// in every process. Files that are known to be short and that change nothing
// process-wide run a few to a process instead, one after the other, each in
// a suite of its own named after it (groupEntry): what the second file loads
// is already loaded.
//
// A file keeps a process of its own when any of these holds:
// - it is not in test/durations.json (a new file, until the table is measured
//   again with `node scripts/run-tests.mjs --durations`);
// - it took longer alone than SHARE_SECONDS: its load is little of its cost;
// - its source measures or changes the process (OWN_PROCESS below: its heap,
//   CPU or GC, process listeners or the environment, the clock, the global
//   HTTP dispatcher), or awaits at the top level (what it starts would run
//   during another file's tests);
// - it says so, with a line `// test-runner: own process` and why.
//
// All processes then run longest first, so that the run does not end on one
// long file while the other core has nothing left to do.

/** A file that took longer than this alone runs in its own process. */
export const SHARE_SECONDS = 8;
/** The most a shared process is expected to take, by the files' times alone. */
export const GROUP_SECONDS = 24;
/** What a file not in the table is expected to take, for the order. */
export const UNKNOWN_SECONDS = 10;

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
 * each `{ files, seconds }`, where `files` has one file or several that share.
 * `sourceOf(file)` gives a file's source; `durations` the seconds each took
 * alone, from test/durations.json.
 */
export function planProcesses(files, sourceOf, durations) {
  const own = [];
  const sharing = [];
  for (const file of files) {
    const seconds = durations[file];
    if (typeof seconds !== 'number' || seconds > SHARE_SECONDS || ownProcessReason(sourceOf(file)) !== undefined) {
      own.push({ files: [file], seconds: typeof seconds === 'number' ? seconds : UNKNOWN_SECONDS });
    } else {
      sharing.push({ file, seconds });
    }
  }
  // First fit, longest first: few processes, each near GROUP_SECONDS.
  sharing.sort((a, b) => b.seconds - a.seconds || a.file.localeCompare(b.file));
  const groups = [];
  for (const { file, seconds } of sharing) {
    const group = groups.find((g) => g.seconds + seconds <= GROUP_SECONDS);
    if (group) {
      group.files.push(file);
      group.seconds += seconds;
    } else {
      groups.push({ files: [file], seconds });
    }
  }
  for (const group of groups) group.files.sort();
  return [...own, ...groups].sort((a, b) => b.seconds - a.seconds || a.files[0].localeCompare(b.files[0]));
}

/**
 * The source of a module that runs several test files in one process, each
 * in a suite named after it (`entries`: `{ name, url }`, the file as reports
 * name it and the URL of its bundle). Each suite imports its file from its
 * own function, synchronously: that is what puts the file's tests and
 * top-level hooks inside that suite (node's runner finds a test's parent from
 * where it is created), so a file's `after` runs when its own tests are done.
 * The suites run one after the other, as a file's top-level tests do; every
 * file is loaded (its top-level code run) as the process starts, in whatever
 * order its import completes, alongside
 * the first file's hooks, which is why a file that awaits at the top level
 * keeps a process of its own. A file
 * that fails to load fails its own suite, with its error, and no other.
 */
export function groupEntry(entries) {
  return [
    "import { describe } from 'node:test';",
    ...entries.map(({ name, url }) => `describe(${JSON.stringify(name)}, () => import(${JSON.stringify(url)}));`),
    '',
  ].join('\n');
}
