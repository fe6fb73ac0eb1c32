/**
 * Legacy `PROGRAM_ARGS` word splitting (docs/commands.md, "Running, safely").
 *
 * The old daemon joined PROGRAM, PROGRAM_ARGS and a redirection into one
 * shell command line, so a panel that sends `["-c 3", "-q", "192.168.1.1"]`
 * relies on `"-c 3"` becoming the two words `-c` and `3`. Herald keeps that
 * one behaviour and nothing else of the shell: each element is split on white
 * space, single and double quotes group words (and are removed), and every
 * other character — `;`, `|`, `&`, `$()`, backticks, globs, `>`, `<`, `~`,
 * backslashes — is an ordinary character of the word it is in.
 *
 * Backslash is deliberately not an escape: a shell user would expect `\"`
 * to be a quote, but accepting one shell rule invites expecting the rest; to
 * put a quote in a word, quote it with the other kind (`'say "hi"'`).
 */
import { quoted } from '../../protocol/text-cut.js';
import { HeraldError } from '../errors.js';

/** White space that separates words: what a POSIX shell's default IFS splits on (space, tab, newline), plus CR, VT and FF. */
const SPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f']);

/**
 * Splits one string into words. Quotes group; an unterminated quote is an
 * error (HERALD_ERR_VALIDATION) rather than a guess.
 *
 * @example splitWords(`-c 3`) → ['-c', '3']
 * @example splitWords(`'a b' "c'd" e"f g"h`) → ['a b', "c'd", 'ef gh']
 * @example splitWords(`; touch x`) → [';', 'touch', 'x']
 */
export function splitWords(input: string): string[] {
  const words: string[] = [];
  let word = '';
  // A word exists once any character or a pair of quotes was seen: `""` is an empty word.
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (const ch of input) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else word += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (SPACE.has(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote !== undefined) {
    throw new HeraldError('HERALD_ERR_VALIDATION', `unterminated ${quote === '"' ? 'double' : 'single'} quote in argument ${quoted(input, 80)}`);
  }
  if (inWord) words.push(word);
  return words;
}

/** Splits every legacy `PROGRAM_ARGS` element and concatenates the words, in order. */
export function splitLegacyArgs(elements: readonly string[]): string[] {
  return elements.flatMap((e) => splitWords(e));
}
