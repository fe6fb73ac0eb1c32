#!/usr/bin/env node
// Summarises a `perf record` of a server (from `npm run bench -- --perf`, or
// any perf.data of a node process: run with --perf-prof and recorded with
// `-k mono`, its JS frames are named): its CPU by thread and by what it was
// doing — each system call, page faults, GC, compiling, the JS function it
// was in — per unit of work. `--part storing` adds what one part of the main
// thread's work is made of: its JS functions and the native code under each
// (node's C++, V8's builtins, SQLite), which the list by category counts in
// the JS function that called it.
// usage: node bench/perf-summary.mjs FILE.perf.data [--per N] [--unit connection] [--top 30] [--part NAME]
import { parseArgs } from 'node:util';
import { partNamed, perfUnavailable, summarisePerf } from './lib/perf.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    per: { type: 'string', default: '1' }, unit: { type: 'string', default: 'run' }, top: { type: 'string', default: '30' }, part: { type: 'string' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/perf-summary.mjs FILE.perf.data [--per N] [--unit connection] [--top 30] [--part NAME]');
  process.exit(2);
}
let part;
if (values.part !== undefined) {
  try {
    part = partNamed(values.part);
  } catch (e) {
    console.error(e.message);
    process.exit(2);
  }
}
const why = perfUnavailable();
if (why) {
  console.error(why);
  process.exit(2);
}
console.log(summarisePerf(positionals[0], { units: Number(values.per), unit: values.unit, top: Number(values.top), part }));
