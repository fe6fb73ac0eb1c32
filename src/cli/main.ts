#!/usr/bin/env node
/**
 * The `herald` command's entry: loads the command (program.ts) and runs it.
 * Node loads an ES module graph with many files open at once: under a low
 * open-file limit (below about 180) the load itself failed with EMFILE, and
 * node printed a stack trace of its module loader before any of Herald's
 * code ran. Here that failure is a line that says what to do.
 */
import { outOfDescriptors } from './out-of-descriptors.js';

let program: typeof import('./program.js');
try {
  program = await import('./program.js');
} catch (e) {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (code !== 'EMFILE' && code !== 'ENFILE') throw e;
  process.stderr.write(`herald: cannot load: ${outOfDescriptors(code)}\n`);
  // 1: the operation failed (program.ts's Exit.FAILURE: that module is what could not be loaded).
  process.exit(1);
}
await program.main(process.argv);
