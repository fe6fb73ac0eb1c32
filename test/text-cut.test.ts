/**
 * Cutting text without cutting a character in two (src/protocol/text-cut.ts),
 * and the messages and clips that use it: half an emoji is a lone surrogate,
 * which UTF-8 cannot carry (Perl's JSON parser dies on it, a browser shows U+FFFD).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { headOf, pairStart, quoted, tailOf } from '../src/protocol/text-cut.js';
import { parseClientFrame } from '../src/protocol/frames.js';
import { clipTitle } from '../src/client/sanitize.js';

const LONE = /(?:[\uD800-\uDBFF](?![\uDC00-\uDFFF]))|(?:(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])/;
/** A lone surrogate as JSON writes it: `\ud83d` not followed by its low half. */
const LONE_ESCAPED = /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i;
const EMOJI = '😀';

describe('text-cut', () => {
  it('headOf, tailOf and pairStart never leave half a pair of well-formed text, and cut no more than one unit extra', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), fc.nat(300), (text, n) => {
      const head = headOf(text, n);
      assert.ok(text.startsWith(head));
      assert.ok(head.length === Math.min(n, text.length) || head.length === n - 1);
      assert.doesNotMatch(head, LONE);
      const tail = tailOf(text, n);
      assert.ok(text.endsWith(tail));
      assert.ok(tail.length === Math.min(n, text.length) || tail.length === n - 1);
      assert.doesNotMatch(tail, LONE);
      const from = pairStart(text, n);
      assert.ok(from === n || from === n - 1);
      assert.doesNotMatch(text.slice(from), LONE);
    }), { numRuns: 2000 });
  });

  it('quoted cuts the value before quoting it: no half escape, no half emoji', () => {
    assert.equal(quoted(`zz${EMOJI.repeat(30)}`, 40), JSON.stringify(`zz${EMOJI.repeat(19)}…`));
    assert.equal(quoted(`${'a'.repeat(39)}\u0000`, 40), JSON.stringify(`${'a'.repeat(39)}\u0000`));
    assert.equal(quoted(`${'a'.repeat(39)}\u0000b`, 40), '"' + 'a'.repeat(39) + '\\u0000…"');
    assert.equal(quoted('short', 40), '"short"');
  });

  it("an unknown TYPE's ERROR frame quotes it whole or cut at a character", () => {
    for (const type of [`xx${EMOJI.repeat(40)}`, `${'a'.repeat(60)}\u0000`]) {
      const r = parseClientFrame(JSON.stringify({ TYPE: type }));
      assert.equal(r.ok, false);
      const text = JSON.stringify(!r.ok && r.error);
      assert.doesNotMatch(text, LONE_ESCAPED, text);
      assert.doesNotMatch(text, /\\\\u0(?![0-9a-f]{3})/i, `half an escape: ${text}`);
    }
  });

  it("the browser library's desktop title ends on a whole emoji before the …", () => {
    const title = clipTitle(`a${EMOJI.repeat(150)}`);
    assert.doesNotMatch(title, LONE);
    assert.ok(title.endsWith(`${EMOJI}…`), title.slice(-4));
    assert.ok(title.length <= 200);
    assert.equal(clipTitle('T'.repeat(300)), `${'T'.repeat(199)}…`);
  });
});
