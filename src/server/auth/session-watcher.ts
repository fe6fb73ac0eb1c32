/**
 * Re-checks live sessions. The old daemon looked a session up once and then
 * trusted it forever, so an admin who had logged out kept receiving. Here,
 * every `intervalMs` each distinct credential among the open tabs is looked
 * up again (one look-up however many tabs share it); the tabs of a session
 * that has ended are closed with 4401 "session ended", which tells the
 * browser library not to retry with the same credential.
 *
 * An "unavailable" answer leaves the tabs open: a database outage must not
 * log everybody out. The next round asks again.
 */
import type { Logger } from 'pino';
import { CloseCode, CloseReason } from '../../protocol/close-codes.js';
import type { PrincipalKind } from '../../protocol/principal.js';
import type { Tab } from '../hub.js';
import type { SessionResolver } from './session-resolver.js';

/** A tab as the Gateway records it: the credential it was admitted with (never logged). */
export interface CredentialedTab extends Tab {
  readonly credential?: string | undefined;
}

export interface SessionWatcherOptions {
  /** Where the open tabs are (the Hub). */
  readonly tabs: { all(): readonly CredentialedTab[] };
  readonly resolver: SessionResolver;
  /** Time between the end of one round and the start of the next, in ms. */
  readonly intervalMs: number;
  /** Look-ups in flight at once during a round. */
  readonly concurrency?: number;
  readonly logger?: Logger | undefined;
}

export interface RecheckRound {
  /** Distinct credentials looked up. */
  readonly checked: number;
  /** Tabs closed because their session ended. */
  readonly closedTabs: number;
  /** Look-ups that could not tell (tabs left open). */
  readonly unavailable: number;
}

export class SessionWatcher {
  readonly #options: SessionWatcherOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RecheckRound> | undefined;
  #stopped = true;

  constructor(options: SessionWatcherOptions) {
    if (!(options.intervalMs > 0)) throw new TypeError('SessionWatcher: intervalMs must be positive');
    this.#options = options;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  /** Stops the rounds and waits for one in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  /** Runs one round now (shares the round in progress, if any). */
  checkNow(): Promise<RecheckRound> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.checkNow()
        .catch((e: unknown) => this.#options.logger?.error({ err: e }, 'session re-check round failed'))
        .finally(() => this.#schedule());
    }, this.#options.intervalMs);
    this.#timer.unref();
  }

  async #round(): Promise<RecheckRound> {
    const groups = new Map<string, { kind: PrincipalKind; credential: string; tabs: CredentialedTab[] }>();
    for (const tab of this.#options.tabs.all()) {
      if (tab.credential === undefined) continue;
      const key = `${tab.principal.kind}\n${tab.credential}`;
      let group = groups.get(key);
      if (!group) {
        group = { kind: tab.principal.kind, credential: tab.credential, tabs: [] };
        groups.set(key, group);
      }
      group.tabs.push(tab);
    }
    let closedTabs = 0;
    let unavailable = 0;
    const queue = [...groups.values()];
    const worker = async (): Promise<void> => {
      for (let group = queue.shift(); group; group = queue.shift()) {
        let resolution;
        try {
          resolution = await this.#options.resolver.recheck(group.kind, group.credential);
        } catch {
          resolution = { outcome: 'unavailable' as const, reason: 'look-up failed' };
        }
        if (resolution.outcome === 'unavailable') {
          unavailable++;
          continue;
        }
        for (const tab of group.tabs) {
          // Admitted as someone else (the panel reused the session id) is an ended session too.
          const ended = resolution.outcome === 'refused' || resolution.principal.id !== tab.principal.id;
          if (!ended) continue;
          closedTabs++;
          // An expired token is not a logout: the tab may come back with a fresh one.
          if (resolution.outcome === 'refused' && resolution.expired) tab.close(CloseCode.CREDENTIAL_EXPIRED, CloseReason.CREDENTIAL_EXPIRED);
          else tab.close(CloseCode.UNAUTHORIZED, CloseReason.SESSION_ENDED);
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.#options.concurrency ?? 8, queue.length) }, () => worker());
    await Promise.all(workers);
    const round = { checked: groups.size, closedTabs, unavailable };
    if (closedTabs > 0 || unavailable > 0) this.#options.logger?.info({ recheck: round }, 'sessions re-checked');
    return round;
  }
}
