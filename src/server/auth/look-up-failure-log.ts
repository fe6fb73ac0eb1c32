import type { Logger } from 'pino';
import { ThrottledLog } from '../throttled-log.js';

/**
 * The log lines of failed look-ups, bounded. During an outage of the panel
 * (or the database: sql-resolver.ts) every look-up fails, and each wrote a
 * line: the re-check of 10,000 sessions every 30 s (sessionRecheckMs's
 * default) wrote 1.2 million lines an hour, besides the handshakes. The first 20 of each
 * 10 s are logged as they come (an operator sees what fails and why); the
 * rest are counted by cause and said in one line when the window ends.
 */
export class LookUpFailureLog extends ThrottledLog {
  constructor(logger: Logger, resolver: 'http' | 'sql', now: () => number = Date.now) {
    super(logger, now, {
      summary: (byCause, windowMs, perWindow) => ({
        fields: { resolver, failed: Object.values(byCause).reduce((a, b) => a + b, 0), byCause, windowMs },
        message: `session look-ups failed and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
      }),
    });
  }

  /** Logs a failed look-up (warn), or counts it under `cause` (keep the set of causes small: no session, no URL). */
  failed(cause: string, fields: object, message: string): void {
    this.log('warn', cause, fields, message);
  }
}

/**
 * The log lines of look-ups the database answered with a refusal worth a
 * line (a session id PostgreSQL cannot read as its column's type, a first
 * column that is not a person's id), bounded the same way. A stranger
 * sending distinct garbage session ids wrote one line each: 300 handshakes,
 * 300 lines, past the bounded log of refused handshakes.
 */
export class LookUpRefusalLog extends ThrottledLog {
  constructor(logger: Logger, resolver: 'sql', now: () => number = Date.now) {
    super(logger, now, {
      summary: (byCause, windowMs, perWindow) => ({
        fields: { resolver, refused: Object.values(byCause).reduce((a, b) => a + b, 0), byCause, windowMs },
        message: `session look-ups refused and not logged one by one: more than ${perWindow} in ${windowMs / 1000} s`,
      }),
    });
  }

  /** Logs a refused look-up, or counts it under `cause` (a fixed phrase, never what the client sent). */
  refused(level: 'info' | 'warn', cause: string, fields: object, message: string): void {
    this.log(level, cause, fields, message);
  }
}
