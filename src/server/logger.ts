import pino, { type Logger } from 'pino';
import type { HeraldOptions } from './options.js';

/**
 * Paths pino replaces with "[redacted]": credentials must never reach a log
 * (session ids, tokens, the API token, the signing secret).
 */
export const REDACT_PATHS = [
  'req.headers.authorization', 'req.headers.cookie', 'req.headers.adminsid', 'req.headers.usersid',
  'headers.authorization', 'headers.cookie', 'headers.adminsid', 'headers.usersid',
  'token', 'secret', 'apiToken', 'sid', 'credential', 'legacyToken', 'previousSecret',
  '*.token', '*.secret', '*.apiToken', '*.sid', '*.credential', '*.legacyToken', '*.previousSecret', 'TOKEN', '*.TOKEN',
];

export function createLogger(options: Pick<HeraldOptions, 'logLevel' | 'logPretty'>): Logger {
  const pretty = options.logPretty === 'auto' ? process.stdout.isTTY === true : options.logPretty;
  return pino({
    level: options.logLevel,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}
