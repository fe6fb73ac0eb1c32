/**
 * Durations as an operator types them: `90` (seconds), `90s`, `15m`, `1h`,
 * `2d`, `500ms`. Returned in seconds (fractions allowed for `ms`).
 */
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

export function parseDurationSec(text: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) return undefined;
  const value = Number(m[1]) * UNITS[(m[2] ?? 's').toLowerCase()]!;
  return Number.isFinite(value) ? value : undefined;
}
