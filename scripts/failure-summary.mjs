// A reporter for node's test runner that prints nothing until the run ends,
// then lists every test that failed, with its file, line and the first lines
// of its error. scripts/run-tests.mjs adds it after the TAP reporter, so that
// the end of a long log, which is often all a CI page keeps, says what failed.
//
// The suite's test files run bundled, without node's --enable-source-maps
// when the output is not a terminal: every file's process then skips reading
// the source maps of what it loads (about 0.1 s of CPU and 5,000 page faults
// a file). This reporter reads a file's inline source map only when a failure
// points into it, and names the TypeScript line instead: the test's own
// file:line and every frame of its error's stack.
import { readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url).pathname;
const ERROR_LINES = 12;

const INLINE_MAP = /\/\/# sourceMappingURL=data:application\/json;(?:charset=utf-8;)?base64,([A-Za-z0-9+/=]+)\s*$/;
/** Each file's source map, read once, or null when it has none (or cannot be read). */
const maps = new Map();

function sourceMapOf(file) {
  if (!maps.has(file)) {
    let map = null;
    try {
      const found = INLINE_MAP.exec(readFileSync(file, 'utf8'));
      if (found) map = new SourceMap(JSON.parse(Buffer.from(found[1], 'base64').toString('utf8')));
    } catch {
      // Not a file (a frame of node's own, `<anonymous>`), or no map of its own: left as it is.
    }
    maps.set(file, map);
  }
  return maps.get(file);
}

function pathOf(file) {
  return file.startsWith('file:') ? fileURLToPath(file) : file;
}

/** Where a position (1-based line and column) of a generated file came from, or undefined. */
function original(file, line, column) {
  const map = sourceMapOf(pathOf(file));
  const entry = map?.findEntry(line - 1, Math.max(0, column - 1));
  if (!entry?.originalSource) return undefined;
  const source = entry.originalSource.startsWith('file:') ? fileURLToPath(entry.originalSource) : entry.originalSource;
  return { file: isAbsolute(source) ? source : resolve(dirname(pathOf(file)), source), line: entry.originalLine + 1, column: entry.originalColumn + 1 };
}

function where(data) {
  if (!data.file) return '(no file)';
  const mapped = data.line ? original(data.file, data.line, data.column ?? 1) : undefined;
  if (mapped) return `${relative(root, mapped.file)}:${mapped.line}`;
  const file = pathOf(data.file);
  return data.line ? `${relative(root, file)}:${data.line}` : relative(root, file);
}

/** A stack frame's `file:line:column`, as its source: `test/x.ts:12:5` for a frame in a bundle. */
const FRAME_PLACE = /((?:file:\/\/)?\/[^\s()]+):(\d+):(\d+)/;

function mapFrame(line) {
  return line.replace(FRAME_PLACE, (place, file, l, c) => {
    const mapped = original(file, Number(l), Number(c));
    return mapped ? `${relative(root, mapped.file)}:${mapped.line}:${mapped.column}` : place;
  });
}

function errorText(error) {
  if (!error) return [];
  // The runner wraps a test's own error in one of its own (ERR_TEST_FAILURE); a test's error
  // may have a cause of its own, which stays in its stack.
  const cause = error.code === 'ERR_TEST_FAILURE' && error.cause !== undefined ? error.cause : error;
  const text = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
  // The runner's own frames say nothing about the test.
  const lines = text.split('\n').filter((line) => !/^\s+at .*(\bnode:|\(<anonymous>\))/.test(line)).map((line) => (/^\s+at /.test(line) ? mapFrame(line) : line));
  return lines.length > ERROR_LINES ? [...lines.slice(0, ERROR_LINES), `... (${lines.length - ERROR_LINES} more lines)`] : lines;
}

export default async function* failureSummary(source) {
  const failed = [];
  for await (const event of source) {
    if (event.type !== 'test:fail') continue;
    // A suite fails with its tests; list the tests, and a suite only when its own hook failed.
    const { details } = event.data;
    if (details?.type === 'suite' && details.error?.failureType === 'subtestsFailed') continue;
    failed.push(event.data);
  }
  if (failed.length === 0) return;
  const out = [`\n# ${failed.length} failed:`];
  for (const data of failed) {
    out.push(`#   ${where(data)}  ${data.name}`);
    for (const line of errorText(data.details?.error)) out.push(`#       ${line}`);
  }
  yield `${out.join('\n')}\n`;
}
