// A reporter for node's test runner that prints nothing until the run ends,
// then lists every test that failed, with its file, line and the first lines
// of its error. scripts/run-tests.mjs adds it after the TAP reporter, so that
// the end of a long log, which is often all a CI page keeps, says what failed.
import { relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const ERROR_LINES = 12;

function where(data) {
  if (!data.file) return '(no file)';
  const file = data.file.startsWith('file:') ? new URL(data.file).pathname : data.file;
  return data.line ? `${relative(root, file)}:${data.line}` : relative(root, file);
}

function errorText(error) {
  if (!error) return [];
  // The runner wraps a test's own error in one of its own (ERR_TEST_FAILURE); a test's error
  // may have a cause of its own, which stays in its stack.
  const cause = error.code === 'ERR_TEST_FAILURE' && error.cause !== undefined ? error.cause : error;
  const text = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
  // The runner's own frames say nothing about the test.
  const lines = text.split('\n').filter((line) => !/^\s+at .*(\bnode:|\(<anonymous>\))/.test(line));
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
