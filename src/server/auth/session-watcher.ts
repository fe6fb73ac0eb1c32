/**
 * Re-checks live sessions. The old daemon looked a session up once and then
 * trusted it forever, so an admin who had logged out kept receiving. Here,
 * every `intervalMs` each distinct credential among the open tabs is looked
 * up again (one look-up however many tabs share it); the tabs of a session
 * that has ended are closed with 4401 "session ended", which tells the
 * browser library not to retry with the same credential, and those whose
 * signed token has expired with 4419 "credential expired", after which it
 * reconnects with a fresh one.
 *
 * An "unavailable" answer leaves the tabs open: a database outage must not
 * log everybody out. The next round asks again.
 *
 * A refusal closes every tab holding its credential when it comes, not only
 * those the round listed when it started: a tab admitted while the round was
 * asking (from the cache's positive answer, which the round's look-up has
 * just replaced) otherwise stayed open one more interval. An answer that the
 * session is now someone else's (the panel reused the session id) closes the
 * tabs of the old person the same way, late ones too: left open, they
 * received the old person's notifications one more interval.
 *
 * A round never holds the event loop for long: a resolver that answers at
 * once (signed tokens) would otherwise run the whole round in one turn, and
 * with 10,000 tabs that stood every delivery still for 100–125 ms every
 * `sessionRecheckMs` (docs/bench-history.md, fifteenth round). Every SLICE_MS of
 * work the round lets the event loop have a turn.
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Logger } from 'pino';
import { CloseCode, CloseReason } from '../../protocol/close-codes.js';
import type { PrincipalKind } from '../../protocol/principal.js';
import type { Tab } from '../hub.js';
import type { Resolution, SessionResolver } from './session-resolver.js';

/** A tab as the Gateway records it: the credential it was admitted with (never logged). */
export interface CredentialedTab extends Tab {
  readonly credential?: string | undefined;
}

export interface SessionWatcherOptions {
  /** Where the open tabs are (the Hub): those of one kind, or all. */
  readonly tabs: { all(kind?: PrincipalKind): readonly CredentialedTab[] };
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

/** The longest stretch of a round, in ms, before the event loop gets a turn. */
export const SLICE_MS = 5;

interface Group {
  readonly kind: PrincipalKind;
  readonly credential: string;
  /** The tabs holding it when the round listed them. */
  readonly tabs: CredentialedTab[];
}

/** An answer that tells: a refusal, or the session's person now (maybe not the tab's). */
type Answer = Exclude<Resolution, { outcome: 'unavailable' }>;

/** Closes a tab whose session `resolution` says has ended. */
function closeEnded(tab: CredentialedTab, resolution: Answer): void {
  // An expired token is not a logout: the tab may come back with a fresh one.
  if (resolution.outcome === 'refused' && resolution.expired) tab.close(CloseCode.CREDENTIAL_EXPIRED, CloseReason.CREDENTIAL_EXPIRED);
  else tab.close(CloseCode.UNAUTHORIZED, CloseReason.SESSION_ENDED);
}

/**
 * A round's work in slices: once SLICE_MS have gone by since the event loop
 * last had a turn, `breathe()` gives it one. The workers of a round share
 * one pause; each waiting for a turn of its own would give every one of
 * them a slice of its own before the loop's next turn.
 */
class Slices {
  #start = performance.now();
  #pause: Promise<void> | undefined;

  /** Resolves at once while the slice lasts (no turn of the event loop). */
  async breathe(): Promise<void> {
    if (performance.now() - this.#start < SLICE_MS) return;
    this.#pause ??= yieldToLoop().then(() => {
      this.#pause = undefined;
      this.#start = performance.now();
    });
    await this.#pause;
  }
}

export class SessionWatcher {
  readonly #options: SessionWatcherOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<RecheckRound> | undefined;
  #stopped = true;
  /** The round in progress asks nothing more once stop() set this. */
  #halt: { stopped: boolean } | undefined;

  constructor(options: SessionWatcherOptions) {
    if (!(options.intervalMs > 0)) throw new TypeError('SessionWatcher: intervalMs must be positive');
    this.#options = options;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule();
  }

  /**
   * Stops the rounds. A round in progress asks nothing more, and the answers
   * of its look-ups still in flight are dropped when they come: no tab is
   * closed by a round after stop(). Those look-ups are not waited for: each
   * may take httpResolverTimeoutMs or sqlTimeoutMs at a panel or database
   * that stopped answering, and waiting held the whole shutdown (its HTTP
   * server, commands and store) until the CLI's deadline exited 1. The
   * resolver's close() ends them (the http resolver aborts its requests).
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#halt) this.#halt.stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
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
    const halt = { stopped: false };
    this.#halt = halt;
    const slices = new Slices();
    // Keyed by the credential string itself, one map per kind: a tab keeps
    // the same string object, whose hash V8 computes once, not every round.
    const byKind = new Map<PrincipalKind, Map<string, Group>>();
    const tabs = this.#options.tabs.all();
    for (let i = 0; i < tabs.length; i++) {
      const tab = tabs[i]!;
      if ((i & 255) === 255) await slices.breathe();
      if (tab.credential === undefined) continue;
      const { kind } = tab.principal;
      let groups = byKind.get(kind);
      if (!groups) byKind.set(kind, (groups = new Map()));
      const group = groups.get(tab.credential);
      if (group) group.tabs.push(tab);
      else groups.set(tab.credential, { kind, credential: tab.credential, tabs: [tab] });
    }
    let closedTabs = 0;
    let unavailable = 0;
    const queue: Group[] = [];
    for (const groups of byKind.values()) for (const group of groups.values()) queue.push(group);
    // Ended sessions not yet applied to the tabs: refusals, and admissions
    // as a different person (the panel reused the session id), which end the
    // old person's tabs. Either closes the tabs open when it comes, not only
    // those listed above: a tab admitted since (from the cache's positive
    // answer while the round was asking) holds the credential too, and
    // stayed open one more interval, as the old person. A scan of the Hub
    // for each answer cost O(tabs) apiece: with 10,000 tabs on signed
    // tokens, a tenth of them expired, the round took 230 ms instead of 90.
    // So the ended sessions of one turn of the event loop share one scan, at
    // the end of that turn (setImmediate). A handshake answered in between
    // is not admitted on the old answer: the cache has already replaced that
    // with the new one (or dropped it), a look-up older than it gets the new
    // one too, and a token is checked afresh.
    let ended = new Map<PrincipalKind, Map<string, Answer>>();
    const closeEndedTabs = (): void => {
      const endedNow = ended;
      ended = new Map();
      if (halt.stopped) return;
      for (const [kind, byCredential] of endedNow) {
        for (const tab of this.#options.tabs.all(kind)) {
          const answer = tab.credential === undefined ? undefined : byCredential.get(tab.credential);
          if (answer === undefined || tab.principal.kind !== kind) continue;
          // The new person's own tabs (admitted since on the new answer) stay.
          if (answer.outcome === 'admitted' && tab.principal.id === answer.principal.id) continue;
          closedTabs++;
          closeEnded(tab, answer);
        }
      }
    };
    const queueEnded = (group: Group, answer: Answer): void => {
      let byCredential = ended.get(group.kind);
      if (byCredential === undefined) {
        // The first ended session since the last scan queues the next one.
        if (ended.size === 0) setImmediate(closeEndedTabs);
        ended.set(group.kind, (byCredential = new Map()));
      }
      byCredential.set(group.credential, answer);
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      // Stopped (a shutdown): no new look-ups, and the answer of one in flight is dropped.
      for (let group = queue[next++]; group && !halt.stopped; group = queue[next++]) {
        await slices.breathe();
        if (halt.stopped) return;
        let resolution: Resolution;
        try {
          resolution = await this.#options.resolver.recheck(group.kind, group.credential);
        } catch {
          resolution = { outcome: 'unavailable', reason: 'look-up failed' };
        }
        if (halt.stopped) return;
        if (resolution.outcome === 'unavailable') {
          unavailable++;
        } else if (resolution.outcome === 'admitted') {
          // Admitted as someone else (the panel reused the session id) is an
          // ended session too; no scan when every listed tab is that person's.
          if (group.tabs.some((tab) => tab.principal.id !== resolution.principal.id)) queueEnded(group, resolution);
        } else {
          queueEnded(group, resolution);
        }
      }
    };
    const workers = Array.from({ length: Math.min(this.#options.concurrency ?? 8, queue.length) }, () => worker());
    await Promise.all(workers);
    // The last ended sessions' scan is queued already; made now, the round's count includes it (the queued one finds nothing).
    if (ended.size > 0) closeEndedTabs();
    const round = { checked: queue.length, closedTabs, unavailable };
    if (closedTabs > 0 || unavailable > 0) this.#options.logger?.info({ recheck: round }, 'sessions re-checked');
    return round;
  }
}
