/**
 * TEXT nested deeper than 32 elements is shown as its text alone
 * (sanitize.ts, MAX_NESTING), in a real Chromium, whatever hides its end tags
 * from a reader of tags that is not the HTML parser: the parser ends a tag
 * name only at tab, LF, FF, CR, space, `/` or `>` (`</i\u00a0y>` closes
 * nothing, where JavaScript's `\s` took it for `</i>`), and reads no tags in
 * a comment, a bogus comment or a quoted attribute value. `<i>x</i\u00a0y>`
 * 490 times reached the page nested 490 deep, and laying such a toast out
 * blocked the tab (20 of them: 1.3 s).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Page } from 'playwright-core';
import { browserSkipReason, type W } from './helpers/browser.js';
import { openDemoPage } from './helpers/demo-page.js';

const MAX_NESTING = 32;

/** Formatting and block elements of the allowlist, in any case. */
const NAME = fc.constantFrom('b', 'i', 'u', 'em', 'strong', 'a', 'ul', 'ol').chain((name) => fc.mixedCase(fc.constant(name)));
/** White space to JavaScript (`\s`, or near it), not to the HTML tokenizer. */
const ODD_BLANK = fc.constantFrom('\u00a0', '\u000b', '\u0085', '\u1680', '\u2000', '\u2007', '\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff');
/** What ends a tag name to the HTML tokenizer. */
const HTML_BLANK = fc.constantFrom('\t', '\n', '\f', '\r', ' ', '/');

/** An end tag of `name` that the parser does not read as one. */
const hiddenEnd = (name: string) =>
  fc.oneof(
    ODD_BLANK.map((blank) => `</${name}${blank}y>`),
    fc.constantFrom(`<!--</${name}>-->`, `</0</${name}>`, `<?</${name}>`, `<![CDATA[</${name}>]]>`, `<br t=">" </${name}>`, `<br t='>' </${name}>`),
  );

describe('TEXT nested past the bound, however its end tags are written', { skip: browserSkipReason() }, () => {
  let page: Page;
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    ({ page, close } = await openDemoPage());
  });
  after(() => close?.());

  /** How deep the elements of what sanitizeHtml gives the page nest, and its text. */
  function sanitized(html: string): Promise<{ depth: number; text: string }> {
    return page.evaluate((html) => {
      const depth = (node: Node): number => {
        let deepest = 0;
        for (const child of node.childNodes) deepest = Math.max(deepest, depth(child));
        return (node.nodeType === Node.ELEMENT_NODE ? 1 : 0) + deepest;
      };
      const fragment = (window as W).Herald.sanitizeHtml(html);
      return { depth: depth(fragment), text: fragment.textContent ?? '' };
    }, html);
  }

  it('an end tag whose name runs on past a no-break space closes nothing: 490 levels are shown as text', async () => {
    const shown = await sanitized('<i>x</i\u00a0y>'.repeat(490));
    assert.deepEqual(shown, { depth: 0, text: 'x'.repeat(490) });
  });

  it('never hands the page markup nested deeper than 32 elements (property)', async () => {
    const level = NAME.chain((name) => hiddenEnd(name).map((end) => `<${name}>x${end}`));
    await fc.assert(
      fc.asyncProperty(fc.array(level, { minLength: MAX_NESTING + 1, maxLength: 300 }), async (levels) => {
        const shown = await sanitized(levels.join(''));
        assert.ok(shown.depth <= MAX_NESTING, `nested ${shown.depth} deep`);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps the formatting of TEXT whose end tags the parser reads as such (property)', async () => {
    const level = NAME.chain((name) => HTML_BLANK.map((blank) => `<${name}>x</${name}${blank}z>`));
    await fc.assert(
      fc.asyncProperty(fc.array(level, { minLength: 1, maxLength: 300 }), async (levels) => {
        const shown = await sanitized(levels.join(''));
        assert.ok(shown.depth >= 1 && shown.depth <= 2, `nested ${shown.depth} deep`);
      }),
      { numRuns: 30 },
    );
  });
});
