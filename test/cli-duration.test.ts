/**
 * Durations as an operator types them on the command line (src/cli/duration.ts):
 * the forms taken, and the time taken to refuse a long run of blanks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseDurationSec } from '../src/cli/duration.js';

/** The pattern duration.ts had, quadratic on blanks but right on what it takes: the model for short strings. */
const OLD_FORM = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i;
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

describe('parseDurationSec', () => {
  it('takes seconds, a unit, blanks around and between, and any case', () => {
    const cases: Array<[string, number]> = [
      ['90', 90], ['90s', 90], ['15m', 900], ['1h', 3600], ['2d', 172800], ['500ms', 0.5], ['1.5m', 90], ['0', 0],
      [' 1h ', 3600], ['1 h', 3600], ['\t2D\n', 172800], ['500MS', 0.5], ['\u00a030s\u2028', 30], ['7\u3000m', 420],
    ];
    for (const [text, sec] of cases) assert.equal(parseDurationSec(text), sec, JSON.stringify(text));
  });

  it('refuses anything else', () => {
    for (const text of ['', ' ', 'x', '1x', '-1', '+1', '1.', '.5', '1e3', '1 h x', '1ms s', '1 2', 'h', '9'.repeat(400)]) {
      assert.equal(parseDurationSec(text), undefined, JSON.stringify(text));
    }
  });

  it('takes exactly what the old pattern took (property)', () => {
    const piece = fc.constantFrom('1', '0', '42', '.', '5', ' ', '\t', '\n', '\u00a0', '\u2028', '\ufeff', '\v', 'm', 's', 'ms', 'M', 'h', 'd', 'D', 'x', '-');
    fc.assert(fc.property(fc.array(piece, { maxLength: 10 }), (pieces) => {
      const text = pieces.join('');
      const m = OLD_FORM.exec(text);
      assert.equal(parseDurationSec(text), m ? Number(m[1]) * UNITS[(m[2] ?? 's').toLowerCase()]! : undefined, JSON.stringify(text));
    }), { numRuns: 5000 });
  });

  it('refuses a long run of blanks without going back over it (one argument may be 128 KiB)', () => {
    // Quadratic in the run, these took 33 s (80,000 blanks: 2.9 s); linear, a millisecond or two.
    const started = performance.now();
    assert.equal(parseDurationSec(`1${' '.repeat(200_000)}x`), undefined);
    assert.equal(parseDurationSec(`1${' '.repeat(200_000)}ms${' '.repeat(200_000)}`), 0.001);
    const ms = performance.now() - started;
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  });
});
