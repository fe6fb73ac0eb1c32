import type { Logger } from 'pino';
import { ThrottledLog } from '../throttled-log.js';

/**
 * The log lines of refused handshakes (no token, a foreign Origin, the
 * resolver unavailable, too many tabs), bounded. A refusal costs a client one
 * request and no credential, and wrote one line each: a client refused in a
 * loop wrote the log as fast as it could connect. The first 20 refusals of
 * each error code in each 10 s are logged as they come, each code with a
 * budget of its own: with one shared budget, a loop of handshakes without a
 * token took it all, and a foreign page's handshakes left no line of their
 * own. The rest are counted by error code and said in one line when the
 * window ends, naming the Origins refused most often (at most five, held in
 * bounded memory: TopValues), so that a foreign page shows through a flood.
 */
export class RefusalLog extends ThrottledLog {
  constructor(logger: Logger, now: () => number) {
    super(logger, now, {
      budget: 'per key',
      summary: (byCode, windowMs, perWindow, samples) => ({
        fields: {
          refused: Object.values(byCode).reduce((a, b) => a + b, 0), byCode, windowMs,
          ...(samples.HERALD_ERR_ORIGIN === undefined ? {} : { origins: samples.HERALD_ERR_ORIGIN }),
        },
        message: `handshakes refused and not logged one by one: more than ${perWindow} of an error code in ${windowMs / 1000} s`,
      }),
    });
  }

  refused(level: 'info' | 'warn', code: string, fields: Record<string, unknown>, message: string): void {
    // The Origin a foreign page's handshake carried (admission.ts puts it in the line's fields).
    const origin = code === 'HERALD_ERR_ORIGIN' && typeof fields.origin === 'string' ? fields.origin : undefined;
    this.log(level, code, fields, message, 1, origin);
  }
}
