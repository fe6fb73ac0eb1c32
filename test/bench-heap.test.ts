// `npm run bench -- --heap-promoted` on real V8: a node child allocates in
// two named functions, one whose arrays it keeps past young collections and
// one whose arrays die at once, and the summary must count the first and
// not the second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runModule } from './helpers/node-child.js';

const HEAP_LIB = fileURLToPath(new URL('../bench/lib/heap.mjs', import.meta.url));

// 4,000 kept arrays of 100 small integers (about 3.3 MB) and 40,000
// dropped ones (about 33 MB); the kept ones are held through two young
// collections. Array literals: allocated in the function's own frame.
const LITERAL = `[${Array.from({ length: 100 }, (_, k) => `i + ${k}`).join(', ')}]`;
const CHILD = `
const { startPromotedSampling, summariseHeapProfile } = await import(process.env.HEAP_LIB);
const stop = await startPromotedSampling();
const kept = [];
function keepMe(i) { kept.push(${LITERAL}); }
let sink = 0;
function dropMe(i) { const a = ${LITERAL}; sink += a[99]; }
for (let i = 0; i < 40000; i++) {
  dropMe(i);
  if (i % 10 === 0) keepMe(i);
}
gc({ type: 'minor' });
gc({ type: 'minor' });
const profile = await stop();
console.log(summariseHeapProfile(profile, { units: 4000, unit: 'kept array', top: 50 }));
console.log('kept', kept.length, sink);
`;

test('--heap-promoted: the summary counts what outlived the young collections, by the function that allocated it', async () => {
  const out = await runModule(CHILD, { env: { HEAP_LIB }, nodeFlags: ['--expose-gc'], tsx: false });
  const perKept = (fn: string): number => {
    const row = out.split('\n').find((l) => new RegExp(`^\\s*[\\d.]+\\s+${fn} `).test(l));
    return row ? Number(row.trim().split(/\s+/)[0]) : 0;
  };
  // An array of 100 small integers is about 850 bytes; sampling is statistical.
  const kept = perKept('keepMe');
  assert.ok(kept > 500 && kept < 1300, `keepMe: ${kept} B per kept array\n${out}`);
  // Ten times as many bytes were allocated by dropMe, all dead before the first young collection could keep them.
  assert.ok(perKept('dropMe') < kept / 10, `dropMe: ${perKept('dropMe')} B per kept array\n${out}`);
  assert.match(out, /^outlived the young collections: [\d.]+ B per kept array \(4000 kept arrays;/m);
});
