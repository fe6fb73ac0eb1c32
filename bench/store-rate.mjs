// Sustained send rate through the HTTP API (POST /api/v1/send) with each
// store: memory, sqlite (synchronous=normal, the default) and sqlite
// (synchronous=full). Herald runs in its own process (built: `npm run build`),
// the load comes from this one over keep-alive connections with a fixed number
// of requests in flight, to people who are offline, so every send is stored.
//
//   node bench/store-rate.mjs [--seconds 5] [--inflight 32] [--stores memory,sqlite,sqlite-full]
//
// Prints a table and writes bench/out/store-rate.json.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(fileURLToPath(import.meta.url), '..', '..');

if (process.argv[2] === '--server') {
  // Child: one Herald with the options from the environment.
  const { createHerald } = await import(join(root, 'dist/server/herald.js'));
  const { loadOptions } = await import(join(root, 'dist/server/options.js'));
  const herald = await createHerald(loadOptions({ env: process.env }));
  const urls = await herald.listen();
  process.send?.({ ready: urls.http });
  process.on('message', async (m) => {
    if (m === 'stop') {
      await herald.close();
      process.exit(0);
    }
  });
} else {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      inflight: { type: 'string', default: '32' },
      stores: { type: 'string', default: 'memory,sqlite,sqlite-full' },
      warmup: { type: 'string', default: '1' },
    },
  });
  const seconds = Number(values.seconds);
  const inflight = Number(values.inflight);
  const results = [];
  for (const name of values.stores.split(',')) results.push(await measure(name, seconds, Number(values.warmup), inflight));
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg().map((l) => l.toFixed(2)) };
  console.log(`\nsend rate through POST /api/v1/send, ${inflight} in flight, ${seconds} s each, ${machine.cpus} × ${machine.cpu}, node ${machine.node}, load ${machine.loadavg.join(' ')}`);
  console.log('| store | sends/s | p50 ms | p99 ms | errors |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of results) console.log(`| ${r.store} | ${r.rate.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.errors} |`);
  mkdirSync(join(root, 'bench/out'), { recursive: true });
  writeFileSync(join(root, 'bench/out/store-rate.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, inflight, seconds, results }, null, 2)}\n`);
}

async function measure(name, seconds, warmup, inflight) {
  const dataDir = mkdtempSync(join(os.tmpdir(), 'herald-bench-store-'));
  const apiToken = randomBytes(24).toString('base64url');
  const env = {
    ...process.env,
    HERALD_HOST: '127.0.0.1', HERALD_PORT: '0', HERALD_DATA_DIR: dataDir, HERALD_LEGACY_ENABLED: 'false', HERALD_DEMO: 'false',
    HERALD_LOG_LEVEL: 'warn', HERALD_LOG_PRETTY: 'false', HERALD_SECRET: randomBytes(32).toString('base64url'), HERALD_API_TOKEN: apiToken,
    HERALD_STORE: name === 'memory' ? 'memory' : 'sqlite', HERALD_SQLITE_SYNCHRONOUS: name === 'sqlite-full' ? 'full' : 'normal',
  };
  const child = fork(fileURLToPath(import.meta.url), ['--server'], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const base = await new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m.ready));
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const url = new URL('/api/v1/send', base);
  let n = 0;
  const send = () => new Promise((resolve) => {
    n++;
    const body = JSON.stringify({ to: { aid: 1 + (n % 1000) }, message: { TYPE: 'MESSAGE', TITLE: `bench ${n}`, TEXT: 'Платіж отримано: 100.00' } });
    const started = process.hrtime.bigint();
    const req = http.request(url, {
      method: 'POST', agent,
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ ok: res.statusCode === 200, ms: Number(process.hrtime.bigint() - started) / 1e6 }));
    });
    req.on('error', () => resolve({ ok: false, ms: 0 }));
    req.end(body);
  });
  const run = async (ms) => {
    const latencies = [];
    let errors = 0;
    const until = Date.now() + ms;
    await Promise.all(Array.from({ length: inflight }, async () => {
      while (Date.now() < until) {
        const r = await send();
        if (r.ok) latencies.push(r.ms);
        else errors++;
      }
    }));
    return { latencies, errors };
  };
  await run(warmup * 1000);
  const t0 = Date.now();
  const { latencies, errors } = await run(seconds * 1000);
  const elapsed = (Date.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  agent.destroy();
  child.send('stop');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
  return { store: name, sends: latencies.length, rate: latencies.length / elapsed, p50: pct(0.5), p99: pct(0.99), errors };
}
