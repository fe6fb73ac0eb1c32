#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): the
// functions with the most self time, and per source file, so a reader can see
// where Herald's time goes without a flame-graph viewer.
// usage: node bench/profile-summary.mjs FILE.cpuprofile [top=25]
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) { console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile [top]'); process.exit(2); }
const top = Number(topArg ?? 25);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) {
  const id = prof.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fnTime = new Map();
const fileTime = new Map();
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  const where = cf.url ? cf.url.replace(/^file:\/\/.*?\/(node_modules|dist|bench)\//, '$1/') : '(native)';
  const fn = `${cf.functionName || '(anonymous)'}  ${where}:${cf.lineNumber + 1}`;
  fnTime.set(fn, (fnTime.get(fn) ?? 0) + t);
  const f = where.replace(/^node_modules\/((@[^/]+\/)?[^/]+).*/, 'node_modules/$1');
  fileTime.set(f, (fileTime.get(f) ?? 0) + t);
}
const pct = (t) => `${((t / total) * 100).toFixed(1).padStart(5)}%`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
console.log('\nself time by function:');
for (const [fn, t] of [...fnTime].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${fn}`);
console.log('\nself time by file / package:');
for (const [f, t] of [...fileTime].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${f}`);
