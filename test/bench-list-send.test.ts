// bench/list-send.mjs, the measurement of a send to a list of people
// (docs/bench-history.md, forty-ninth round), run small against the built
// server: it reports each send and what the store holds, one copy of the JSON.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const root = fileURLToPath(new URL('..', import.meta.url));

for (const store of ['memory', 'sqlite']) {
  test(`bench/list-send.mjs --store ${store}: each send's answer and stall, then one copy held for everyone`, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['bench/list-send.mjs', '--store', store, '--people', '300', '--sends', '2'], { cwd: root, timeout: 60_000 });
    const lines = stdout.trim().split('\n');
    assert.equal(lines.length, 3, stdout);
    for (const [i, line] of lines.slice(0, 2).entries()) assert.match(line, new RegExp(`^send ${i + 1}: answered in \\d+ ms; the event loop stood still at most \\d+ ms$`));
    // 600 notifications of about 1,650 characters (0.9 MB counted as characters) would take 1.9 MB as UTF-16, two 1 MiB
    // chunks; one copy per send fits in one.
    assert.match(lines[2]!, new RegExp(`^${store} store: 600 retained, retainedBytes 0\\.9 MB, retainedMemoryBytes 1\\.0 MB; RSS \\d+\\.\\d MB${store === 'sqlite' ? '; the file and its WAL \\d+\\.\\d MB' : ''}$`));
  });
}
