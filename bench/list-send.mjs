// What a send to a list of people costs the server: one Herald (memory or
// SQLite store) in this process, `--sends` sends one after another through
// the HTTP API, each one notification to `--people` people who have no tab
// open (stored for them), of `--chars` characters of Cyrillic text (UTF-16 in
// the store, as a Russian panel's are). Reports, per send, the time to the
// answer and the longest the event loop stood still; then what the store
// holds (`retainedMemoryBytes`), the process's RSS and the SQLite file.
//
//   node bench/list-send.mjs [--store memory|sqlite] [--people 10000] [--chars 1600] [--sends 5] [--dist DIR]
//
// Uses the built server (`npm run build`); --dist DIR measures another build's
// (a copy of its dist/ folder), for a before/after (docs/bench-history.md,
// forty-ninth round).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(fileURLToPath(import.meta.url), '..', '..');
const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'memory' },
    people: { type: 'string', default: '10000' },
    chars: { type: 'string', default: '1600' },
    sends: { type: 'string', default: '5' },
    dist: { type: 'string', default: join(root, 'dist') },
  },
});
const dist = resolve(values.dist);
const { createHerald } = await import(pathToFileURL(join(dist, 'server/herald.js')).href);
const { loadOptions } = await import(pathToFileURL(join(dist, 'server/options.js')).href);
const dataDir = mkdtempSync(join(tmpdir(), 'herald-list-send-'));
const apiToken = randomBytes(24).toString('base64url');
const options = loadOptions({
  env: {},
  overrides: {
    host: '127.0.0.1', port: 0, legacyEnabled: false, dataDir, apiToken, secret: randomBytes(32).toString('base64url'),
    store: values.store, maxRetainedBytes: 0, logLevel: 'silent', commandsEnabled: false,
  },
});
const herald = await createHerald(options);
const { http } = await herald.listen();
const api = async (method, path, body) => {
  const res = await fetch(`${http}${path}`, {
    method,
    headers: { authorization: `Bearer ${apiToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
};
try {
  const uids = Array.from({ length: Number(values.people) }, (_, i) => i + 1);
  for (let k = 0; k < Number(values.sends); k++) {
    const message = { TYPE: 'MESSAGE', TITLE: `Работы ${k}`, TEXT: 'Плановые работы в ночь на субботу '.padEnd(Number(values.chars), '.') };
    // The longest gap between timer ticks while the send is in flight: how long the loop stood still.
    let last = performance.now();
    let stall = 0;
    let on = true;
    const tick = () => {
      const now = performance.now();
      stall = Math.max(stall, now - last);
      last = now;
      if (on) setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
    const t0 = performance.now();
    const r = await api('POST', '/api/v1/send', { to: { uids }, message });
    const answered = performance.now() - t0;
    on = false;
    if (r.status !== 200) throw new Error(`send ${k}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
    console.log(`send ${k + 1}: answered in ${answered.toFixed(0)} ms; the event loop stood still at most ${stall.toFixed(0)} ms`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const counts = (await api('GET', '/api/v1/status')).body.storeCounts;
  let fileBytes = 0;
  for (const f of readdirSync(dataDir)) if (f.startsWith('herald.sqlite')) fileBytes += statSync(join(dataDir, f)).size;
  const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;
  console.log(`${values.store} store: ${counts.retained} retained, retainedBytes ${mb(counts.retainedBytes)}, retainedMemoryBytes ${mb(counts.retainedMemoryBytes)}; RSS ${mb(process.memoryUsage().rss)}${values.store === 'sqlite' ? `; the file and its WAL ${mb(fileBytes)}` : ''}`);
} finally {
  await herald.close();
  rmSync(dataDir, { recursive: true, force: true });
}
