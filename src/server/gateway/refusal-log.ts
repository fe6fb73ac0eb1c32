import type { Logger } from 'pino';
import { ThrottledLog } from '../throttled-log.js';

/**
 * The log lines of refused handshakes (no token, a foreign Origin, the
 * resolver unavailable, too many tabs), bounded. A refusal costs a client one
 * request and no credential, and wrote one line each: a client refused in a
 * loop wrote the log as fast as it could connect. The first 20 refusals of
 * each 10 s are logged as they come; the rest are counted by error code and
 * said in one line when the window ends.
 */
export class RefusalLog extends ThrottledLog {
  constructor(logger: Logger, now: () => number) {
    super(logger, now, {
      summary: (byCode, windowMs, perWindow) => ({
        fields: { refused: Object.values(byCode).reduce((a, b) => a + b, 0), byCode, windowMs },
        message: `handshakes refused and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
      }),
    });
  }

  refused(level: 'info' | 'warn', code: string, fields: object, message: string): void {
    this.log(level, code, fields, message);
  }
}
