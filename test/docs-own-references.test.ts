/**
 * What a user reads points into Herald's own documentation. PROTOCOL.md is
 * the developers' design spec: it is in neither the repository nor the
 * package, so a shipped doc, a CLI error or an SDK doc comment (it ships in
 * the .d.ts) that cites it sends the reader nowhere. Each pointer instead
 * names a doc that ships and a section that doc has.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runSend } from '../src/cli/client-commands.js';

const root = join(import.meta.dirname, '..');

/** The docs the package ships: README.md and docs/*.md but docs/bench*.md (package.json "files"). */
function shippedDocs(): string[] {
  const docs = readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md') && !f.startsWith('bench')).map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

/**
 * Every pointer to a section in `text` — `docs/x.md, "Section"`, `docs/x.md, *Section*`, or
 * within docs/ `[x.md](x.md), *Section*` — names a shipped doc with that heading. Returns how many.
 */
function assertPointersResolve(text: string, where: string): number {
  const flat = text.replace(/\s*\n\s*/g, ' ');
  const pointers = [
    ...[...flat.matchAll(/(docs\/[a-z-]+\.md), ["*]([^"*]+)["*]/g)].map(([, file, section]) => [file!, section!] as const),
    ...[...flat.matchAll(/\[[a-z-]+\.md\]\(([a-z-]+\.md)\), \*([^*]+)\*/g)].map(([, file, section]) => [`docs/${file!}`, section!] as const),
  ];
  for (const [file, section] of pointers) {
    assert.ok(existsSync(join(root, file)), `${where}: ${file} exists`);
    const headings = readFileSync(join(root, file!), 'utf8').split('\n').filter((l) => l.startsWith('#')).map((l) => l.replace(/^#+\s*/, ''));
    assert.ok(headings.some((h) => h.startsWith(section)), `${where}: ${file} has a section "${section}" (has: ${headings.join(' | ')})`);
  }
  return pointers.length;
}

test('no shipped doc cites PROTOCOL.md, which users do not have', () => {
  for (const file of shippedDocs()) {
    const lines = readFileSync(join(root, file), 'utf8').split('\n');
    const cited = lines.map((l, i) => [i + 1, l] as const).filter(([, l]) => l.includes('PROTOCOL.md'));
    assert.deepEqual(cited, [], `${file} cites PROTOCOL.md`);
  }
});

test('every pointer in a shipped doc to a section of another names a section that doc has', () => {
  let pointers = 0;
  for (const file of shippedDocs()) pointers += assertPointersResolve(readFileSync(join(root, file), 'utf8'), file);
  assert.ok(pointers > 5, `found ${pointers} pointers`);
});

test('herald send\'s refusal of --ttl with a plain string points to docs/delivery.md, not PROTOCOL.md', async () => {
  // Refused before any request is made: no server needed.
  const e = await runSend({ aid: '1', json: '"a string"', ttl: '1h' }).then(() => undefined, (err: unknown) => err);
  assert.ok(e instanceof Error, 'refused');
  assert.match(e.message, /^--ttl 1h does not apply to a plain-string message/);
  assert.doesNotMatch(e.message, /PROTOCOL\.md/);
  assert.equal(assertPointersResolve(e.message, 'the CLI error'), 1);
});

test('the SDK\'s jsonRequest doc comment (shipped in its .d.ts) points to docs/legacy.md, not PROTOCOL.md', () => {
  const source = readFileSync(join(root, 'src/sdk/browser-sender.ts'), 'utf8');
  const at = source.indexOf('async jsonRequest(');
  assert.ok(at > 0);
  const comment = source.slice(source.lastIndexOf('/**', at), at);
  assert.doesNotMatch(comment, /PROTOCOL\.md/);
  assert.equal(assertPointersResolve(comment.replace(/\n\s*\*/g, '\n'), 'jsonRequest\'s doc comment'), 1);
});

test('no source file cites PROTOCOL.md (the doc comments ship in the .d.ts), and each of their pointers names a section its doc has', () => {
  const sources = (dir: string): string[] => readdirSync(join(root, dir), { withFileTypes: true })
    .flatMap((e) => e.isDirectory() ? sources(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : []);
  let pointers = 0;
  for (const file of sources('src')) {
    const text = readFileSync(join(root, file), 'utf8');
    assert.doesNotMatch(text, /PROTOCOL\.md/, `${file} cites PROTOCOL.md`);
    // A comment's continuation lines start with ` * ` or `// `: a pointer may wrap across them.
    pointers += assertPointersResolve(text.replace(/\n\s*(?:\*|\/\/)(?!\/)\s?/g, '\n'), file);
  }
  assert.ok(pointers >= 25, `found ${pointers} pointers`);
});
