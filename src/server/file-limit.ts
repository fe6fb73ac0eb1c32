/**
 * The process's open-file limit, and how many tabs fit under it. Each tab
 * holds a file descriptor. Past the limit the kernel refuses the accept and
 * libuv drops the connection unanswered: the browser sees a hang-up, the log
 * says nothing, and the API's connections, the store's files and the
 * commands' pipes fail with EMFILE as well. Herald refuses tabs (503) before
 * that, keeping descriptors for everything else.
 */
import { readFileSync } from 'node:fs';

/**
 * The soft limit on open files (Node raises it to the hard limit as it
 * starts), or undefined where it cannot be read (not Linux) or is unlimited.
 */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  let text: string;
  try {
    text = read();
  } catch {
    return undefined;
  }
  const soft = /^Max open files\s+(\S+)/m.exec(text)?.[1];
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/**
 * Tabs that fit under `fileLimit`, the rest kept for the API's and the
 * legacy door's connections, the store's files, the commands' pipes and the
 * logs: a tenth of the limit and at least 256, but never more than half.
 */
export function tabsWithin(fileLimit: number): number {
  return Math.max(Math.floor(fileLimit / 2), fileLimit - Math.max(256, Math.ceil(fileLimit / 10)));
}
