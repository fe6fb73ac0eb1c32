#!/usr/bin/env node
// Summarises a .heapprofile from `npm run bench -- --heap-promoted` (or any
// sampling heap profile): the bytes that outlived V8's young collections per
// unit of work, by allocating function and by its last frames.
// usage: node bench/heap-summary.mjs FILE.heapprofile [--per N] [--unit connection] [--top 25] [--depth 4]
import { parseArgs } from 'node:util';
import { summariseHeapProfile } from './lib/heap.mjs';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    per: { type: 'string', default: '1' }, unit: { type: 'string', default: 'run' },
    top: { type: 'string', default: '25' }, depth: { type: 'string', default: '4' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/heap-summary.mjs FILE.heapprofile [--per N] [--unit connection] [--top 25] [--depth 4]');
  process.exit(2);
}
console.log(summariseHeapProfile(positionals[0], {
  units: Number(values.per), unit: values.unit, top: Number(values.top), depth: Number(values.depth), title: positionals[0],
}));
