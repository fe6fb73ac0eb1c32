/**
 * Durations as an operator types them: `90` (seconds), `90s`, `15m`, `1h`,
 * `2d`, `500ms`. Returned in seconds (fractions allowed for `ms`).
 */
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

export function parseDurationSec(text: string): number | undefined {
  // Trimmed first (trim() takes what \s matches): with `\s*` on both sides of
  // the optional unit, the pattern split a run of blanks between them every
  // way, quadratic in the run (80,000 blanks: 2.9 s).
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(text.trim());
  if (!m) return undefined;
  const value = Number(m[1]) * UNITS[(m[2] ?? 's').toLowerCase()]!;
  return Number.isFinite(value) ? value : undefined;
}
