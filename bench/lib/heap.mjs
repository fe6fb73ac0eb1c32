// With --heap-promoted: which allocation sites' objects outlived V8's young
// collections in a measured phase. Garbage that dies young costs a scavenge
// almost nothing; what survives two is copied, promoted to the old
// generation and freed only by a full collection, and a scavenge's pause
// grows with it. V8's sampling heap profiler, told to keep samples that a
// full collection frees but to drop those a young one frees, ends the phase
// holding a sample of what survived: promoted (alive or already dead) or
// still alive. The tenth round found a handshake's whole request promoted this way
// (docs/bench-history.md).
import { Session } from 'node:inspector/promises';
import { readFileSync } from 'node:fs';

/** One sample per this many bytes allocated, on average. */
const SAMPLING_INTERVAL = 512;

/**
 * Starts sampling in this process (which must run with --expose-gc);
 * resolves with a function that ends the phase and resolves with the profile.
 */
export async function startPromotedSampling() {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_INTERVAL, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false,
  });
  return async () => {
    // What is still young at the end would count as surviving: two young
    // collections promote it or free it (and drop its samples) first.
    globalThis.gc({ type: 'minor' });
    globalThis.gc({ type: 'minor' });
    const { profile } = await session.post('HeapProfiler.stopSampling');
    session.disconnect();
    return profile;
  };
}

function frameName(cf) {
  const where = cf.url ? cf.url.replace(/^(?:file:\/\/)?\/.*?\/(node_modules|dist|bench|src)\//, '$1/').replace(/^node:internal\//, 'node:') : '';
  return `${cf.functionName || '(anonymous)'}${where ? ` ${where}:${cf.lineNumber + 1}` : ''}`;
}

/**
 * The profile (an object, or the path of a .heapprofile) as text: bytes that
 * outlived the young collections per unit of work, by the allocating
 * function and by its last `depth` frames.
 */
export function summariseHeapProfile(profile, { units = 1, unit = 'run', top = 25, depth = 4, title = '' } = {}) {
  const p = typeof profile === 'string' ? JSON.parse(readFileSync(profile, 'utf8')) : profile;
  const byFunction = new Map();
  const byStack = new Map();
  let total = 0;
  const walk = (node, stack) => {
    const here = [...stack, frameName(node.callFrame)];
    if (node.selfSize > 0) {
      total += node.selfSize;
      const fn = here.at(-1);
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.selfSize);
      const key = here.slice(-depth).reverse().join(' < ');
      byStack.set(key, (byStack.get(key) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, here);
  };
  walk(p.head, []);
  const per = (b) => (b / units).toFixed(1).padStart(9);
  const rows = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, b]) => `${per(b)}  ${k}`);
  return [
    ...(title ? [title] : []),
    `outlived the young collections: ${per(total).trim()} B per ${unit} (${units} ${unit}s; sampled every ${SAMPLING_INTERVAL} B on average), promoted or still alive at the end`,
    '',
    `by allocating function, B per ${unit}:`,
    ...rows(byFunction),
    '',
    `by its last ${depth} frames (allocating function first), B per ${unit}:`,
    ...rows(byStack),
  ].join('\n');
}
