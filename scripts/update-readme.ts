// Regenerates the generated parts of README.md from the code: the
// configuration table (from the option schema) and the error table (from
// errors.ts). Run: node --import tsx scripts/update-readme.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { optionsMarkdownTable } from '../src/server/options.js';
import { ErrorCodes } from '../src/server/errors.js';

export function errorsMarkdownTable(): string {
  const rows = ['| code | HTTP status | meaning |', '| --- | --- | --- |'];
  for (const [code, { status, message }] of Object.entries(ErrorCodes)) rows.push(`| \`${code}\` | ${status} | ${message} |`);
  return rows.join('\n');
}

export function replaceBetween(text: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README.md has no ${start} … ${end} block`);
  return `${text.slice(0, i + start.length)}\n${body}\n${text.slice(j)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../README.md', import.meta.url);
  let text = readFileSync(path, 'utf8');
  text = replaceBetween(text, 'options', optionsMarkdownTable());
  text = replaceBetween(text, 'errors', errorsMarkdownTable());
  writeFileSync(path, text);
  console.log('README.md updated');
}
