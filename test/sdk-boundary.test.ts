/**
 * The SDK ships to backends: it may import only its own files, the shared
 * wire types in src/protocol, Node built-ins and jose — never server code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const sdkDir = fileURLToPath(new URL('../src/sdk/', import.meta.url));
const protocolDir = fileURLToPath(new URL('../src/protocol/', import.meta.url));

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"\n]*?from\s*['"]([^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
}

test('src/sdk imports nothing from the server', () => {
  const seen = new Set<string>();
  const queue = readdirSync(sdkDir).filter((f) => f.endsWith('.ts')).map((f) => join(sdkDir, f));
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of importsOf(file)) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
        assert.ok(target.startsWith(sdkDir) || target.startsWith(protocolDir), `${file} imports ${spec}, outside src/sdk and src/protocol`);
        queue.push(target);
      } else {
        assert.ok(spec.startsWith('node:') || spec === 'jose', `${file} imports the package ${spec}: the SDK may use only node: built-ins and jose`);
      }
    }
  }
  assert.ok(seen.size >= 6, `walked ${seen.size} files`);
});
