/**
 * What a toast shows of one long grapheme cluster, in a real Chromium: it
 * lays a cluster out in time growing with the square of its length, and
 * TEXT (cut only to 10,000 characters) of a letter and 9,990 combining marks
 * cost 300-450 ms a toast, of a thumb and 4,990 skin-tone modifiers 7 s. A
 * run of characters that extend the cluster before them is cut to 32, in
 * every field a toast shows and across the elements of HTML TEXT; ordinary
 * text of any script is shown as sent.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import { browserSkipReason, type W } from './helpers/browser.js';
import { openDemoPage } from './helpers/demo-page.js';

const MARKS = `a${'\u0301'.repeat(9_990)}`;
const MODIFIERS = `👍${'\u{1F3FB}'.repeat(4_990)}`;
/** Thumbs with 31 modifiers each, joined by zero-width joiners: one cluster of them all. */
const JOINED = `👍${'\u{1F3FB}'.repeat(31)}\u200D`.repeat(150);
const ZWNJ = `a${'\u200C'.repeat(9_990)}`;
const THAI = `ก${'\u0E34'.repeat(9_990)}`;

const ORDINARY = [
  'Build 42 finished: 3 warnings, 0 errors.',
  'Família 👨‍👩‍👧‍👦, coder 👩🏽‍💻, flags 🏳️‍🌈 🏴󠁧󠁢󠁳󠁣󠁴󠁿 🇫🇷, keycap 1️⃣',
  '한국어 텍스트, 옛한글 ᄒᆞᆫ',
  'नमस्ते दुनिया, ক্ষ্ম, தமிழ்',
  'สวัสดีครับ ภาษาไทย',
  'بِسْمِ ٱللَّٰهِ ٱلرَّحْمَٰنِ ٱلرَّحِيمِ',
  'שָׁלוֹם',
  'Tie\u0302\u0301ng Vie\u0323\u0302t, Z\u0351\u0336\u0324a\u0345l\u0353go',
];

describe('one long grapheme cluster on a toast', { skip: browserSkipReason() }, () => {
  let page: Page;
  let close: (() => Promise<void>) | undefined;

  before(async () => {
    ({ page, close } = await openDemoPage());
  });
  after(() => close?.());

  /**
   * The longest grapheme cluster (in code points, by Intl.Segmenter) of the text each
   * of the fields shows, with `value` as each in turn; the fields' text itself with `whole`.
   */
  function shown(value: string, whole = false): Promise<Record<string, number | string>> {
    return page.evaluate(({ value, whole }) => {
      const t = new (window as W).Herald.Toaster({ hostId: `cut-${Math.random()}`, maxToasts: 10, timeoutMs: 0 });
      const html = t.show({ TYPE: 'MESSAGE', TITLE: value, TEXT: value });
      const plain = t.show({ TYPE: 'MESSAGE', TITLE: 't', TEXT: value, FORMAT: 'text' });
      // In HTML, as characters, between elements and as character references (decoded by the parser).
      const [head = '', ...rest] = [...value];
      const split = t.show({ TYPE: 'MESSAGE', TITLE: 't', TEXT: `${head}${rest.map((c, i) => (i % 20 === 0 ? `<b>${c}` : i % 20 === 19 ? `${c}</b>` : c)).join('')}${rest.length % 20 === 0 ? '' : '</b>'}` });
      const referenced = t.show({ TYPE: 'MESSAGE', TITLE: 't', TEXT: `${head}${rest.slice(0, 1_200).map((c) => `&#x${c.codePointAt(0)!.toString(16)};`).join('')}` });
      // A STATE of its own, then more OUTPUT: a run may go on from one frame's output to the next.
      const command = t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c', PROGRAM: value, STATE: value as 'running', OUTPUT: value.slice(0, 2_000) }, () => undefined);
      const state = command.querySelector('.herald-state')!.textContent!;
      t.progress({ TYPE: 'COMMAND_PROGRESS', COMMAND_ID: 'c', PROGRAM: value, STATE: 'running', OUTPUT: value.slice(2_000, 3_900) }, () => undefined);
      const fields: Record<string, string> = {
        title: html.querySelector('.herald-title')!.textContent!,
        html: html.querySelector('.herald-text')!.textContent!,
        plain: plain.querySelector('.herald-text')!.textContent!,
        split: split.querySelector('.herald-text')!.textContent!,
        referenced: referenced.querySelector('.herald-text')!.textContent!,
        program: command.querySelector('.herald-title > span[dir="auto"]')!.textContent!,
        state,
        output: command.querySelector('.herald-output')!.textContent!,
      };
      t.clear();
      if (whole) return fields;
      const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
      const longest = (s: string) => Math.max(0, ...[...segmenter.segment(s)].map(({ segment }) => [...segment].length));
      return Object.fromEntries(Object.entries(fields).map(([k, s]) => [k, longest(s)]));
    }, { value, whole });
  }

  it('shows at most 32 combining marks, modifiers or joined pictographs after a character, in every field', async () => {
    for (const value of [MARKS, MODIFIERS, ZWNJ, THAI]) {
      const longest = await shown(value);
      for (const [field, n] of Object.entries(longest)) assert.ok(n === 33, `${field}: a cluster of ${n} code points from ${JSON.stringify(value.slice(0, 3))}…`);
    }
    // 32 of the extenders, counting a joiner and the pictograph it joins as one: 1 + 31 modifiers + a joined thumb.
    for (const [field, n] of Object.entries(await shown(JOINED))) assert.ok(typeof n === 'number' && n <= 1 + 32 * 2, `${field}: a cluster of ${n} code points`);
  });

  it('leaves ordinary text of any script as sent', async () => {
    for (const value of ORDINARY) {
      const fields = await shown(value, true);
      assert.deepEqual(fields, {
        title: value, html: value, plain: value, split: value, referenced: [...value].slice(0, 1_201).join(''),
        program: value, state: `— ${value}`, output: value + value.slice(2_000, 3_900),
      }, value);
    }
  });
});
