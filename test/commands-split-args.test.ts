import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { splitLegacyArgs, splitWords } from '../src/server/commands/split-args.js';
import { isHeraldError } from '../src/server/errors.js';

describe('legacy PROGRAM_ARGS word splitting', () => {
  it('splits the seed example into words', () => {
    assert.deepEqual(splitLegacyArgs(['-c 3', '-q', '192.168.1.1']), ['-c', '3', '-q', '192.168.1.1']);
  });

  it('splits on any run of white space and ignores it at the ends', () => {
    assert.deepEqual(splitWords('  a \t b\n\nc  '), ['a', 'b', 'c']);
    assert.deepEqual(splitWords(''), []);
    assert.deepEqual(splitWords('   '), []);
  });

  it('honours single and double quotes, joins adjacent parts, keeps empty quoted words', () => {
    assert.deepEqual(splitWords(`'a b' "c'd" e"f g"h`), ['a b', "c'd", 'ef gh']);
    assert.deepEqual(splitWords(`"" ''`), ['', '']);
    assert.deepEqual(splitWords(`'say "hi"'`), ['say "hi"']);
  });

  it('interprets nothing else: shell syntax stays plain characters', () => {
    assert.deepEqual(splitWords('; touch x'), [';', 'touch', 'x']);
    assert.deepEqual(splitWords('$(touch y)'), ['$(touch', 'y)']);
    assert.deepEqual(splitWords('`touch z`'), ['`touch', 'z`']);
    assert.deepEqual(splitWords('* > out | cat && rm -rf ~ $HOME'), ['*', '>', 'out', '|', 'cat', '&&', 'rm', '-rf', '~', '$HOME']);
    assert.deepEqual(splitWords('a\\ b "c\\"'), ['a\\', 'b', 'c\\']);
    assert.deepEqual(splitWords('"$(touch y)"'), ['$(touch y)']);
  });

  it('refuses an unterminated quote instead of guessing', () => {
    assert.throws(() => splitWords(`'abc`), (e) => isHeraldError(e) && e.code === 'HERALD_ERR_VALIDATION' && /single quote/.test(e.message));
    assert.throws(() => splitWords(`a "b`), (e) => isHeraldError(e) && /double quote/.test(e.message));
  });

  it('quotes a long unterminated argument cut at a whole character, never half an emoji', () => {
    // The 80th unit is the first half of the first 😀: cut there, the message held a lone `\ud83d`.
    const input = `'${'a'.repeat(78)}${'😀'.repeat(5)}`;
    assert.throws(() => splitWords(input), (e) => isHeraldError(e) && e.message === `unterminated single quote in argument ${JSON.stringify(`'${'a'.repeat(78)}…`)}`);
    const short = `"${'😀'.repeat(39)}`;
    assert.throws(() => splitWords(short), (e) => isHeraldError(e) && e.message === `unterminated double quote in argument ${JSON.stringify(short)}`);
  });

  it('round-trips any words that are quoted with single quotes (property)', () => {
    const word = fc.string({ unit: 'grapheme' }).filter((s) => !s.includes("'"));
    fc.assert(
      fc.property(fc.array(word, { maxLength: 8 }), (words) => {
        const line = words.map((w) => `'${w}'`).join(' ');
        assert.deepEqual(splitWords(line), words);
      }),
    );
  });

  it('never throws on quote-free input and never yields empty words from it (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }).filter((s) => !/["']/.test(s)), (s) => {
        const words = splitWords(s);
        assert.ok(words.every((w) => w.length > 0 && !/[ \t\n\r\v\f]/.test(w)));
      }),
    );
  });
});
