// Small statistics for the benchmark's figures.

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The q-quantile (0..1) of an already sorted array (nearest rank). */
export function quantileSorted(sorted, q) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

/** Concatenates typed arrays of latencies and sorts them. */
export function mergeSorted(arrays) {
  const n = arrays.reduce((a, x) => a + x.length, 0);
  const all = new Float64Array(n);
  let o = 0;
  for (const a of arrays) { all.set(a, o); o += a.length; }
  return all.sort();
}

/** {median, min, max} of the finite values in xs. */
export function summary(xs) {
  const f = xs.filter((x) => Number.isFinite(x));
  return { median: median(f), min: f.length ? Math.min(...f) : NaN, max: f.length ? Math.max(...f) : NaN, n: f.length };
}
