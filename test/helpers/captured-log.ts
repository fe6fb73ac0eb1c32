/** A pino logger whose lines a test reads back, each parsed as a JSON object. */
import { Writable } from 'node:stream';
import pino from 'pino';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type LogLine = Record<string, any> & { msg: string };

export function capturedLog(level: pino.Level = 'info'): { logger: pino.Logger; lines: () => LogLine[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  return {
    logger: pino({ level }, stream),
    lines: () => chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as LogLine),
  };
}
