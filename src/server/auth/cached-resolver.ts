/**
 * A cache in front of a resolver that asks someone else (database, panel).
 * When a node restarts, every open tab reconnects within seconds: 10,000 tabs
 * of 300 admins must not become 10,000 queries. So:
 * - a positive answer is reused for `positiveMs`, a refusal for the shorter
 *   `negativeMs` (a fresh login must work at once);
 * - "unavailable" is never cached: the next look-up asks again;
 * - concurrent look-ups of the same credential share one query.
 * `recheck` (the periodic re-check of live sessions) skips the cache and
 * asks afresh even while a handshake's query of the same credential is in
 * flight: that query may have reached the panel before the admin logged
 * out, and a round that shared it kept the tabs open one more interval.
 * Handshakes that come later share the re-check's query (the newest), and
 * only the newest query of a credential counts: it alone writes the cache,
 * and the callers of an older one get its definite answer, not their own.
 * An older, slower "admitted" neither replaces the refusal that came after
 * it nor admits a tab after Herald has learnt that its session ended.
 *
 * Expired answers are dropped whether or not their credential comes back:
 * refusals of credentials nobody sends twice (a stranger trying many) would
 * otherwise pile up to `maxEntries` and stay there. And an entry's size does
 * not depend on the credential's: the http resolver's credential is the
 * whole Cookie header (up to node's 16 KB header limit), and a stranger
 * with distinct large cookies must not pin `maxEntries` × 16 KB (1.6 GB by
 * default) for a TTL. So a long credential is keyed by its SHA-256, and an
 * admission is kept without its credential (see `Kept`).
 */
import { createHash } from 'node:crypto';
import type { PrincipalKind } from '../../protocol/principal.js';
import type { CredentialResolver, Handshake, Refusal, Resolution, SessionResolver } from './session-resolver.js';

export interface CachedResolverOptions {
  /** How long an admission is reused, in ms. 0 = not at all. */
  readonly positiveMs: number;
  /** How long a refusal is reused, in ms. 0 = not at all. */
  readonly negativeMs: number;
  /** Credentials remembered at most; the oldest are forgotten first. */
  readonly maxEntries: number;
  /**
   * The clock the TTLs are measured on, in ms: a monotonic one (default performance.now), for
   * tests. Not the wall clock: a step back of it (NTP, a VM resumed) stretched every entry's
   * TTL by the step, and a session logged out at the panel stayed admitted for it.
   */
  readonly now?: () => number;
  /** The wall clock, in ms since the epoch, that an admission's `expiresAt` (a token's) is compared with. Default Date.now; for tests. */
  readonly wallNow?: () => number;
}

export interface CacheStats {
  /** Answers served from the cache. */
  readonly hits: number;
  /** Look-ups that joined a query already in flight. */
  readonly shared: number;
  /** Queries actually sent to the inner resolver. */
  readonly lookups: number;
  /** Answers held now; an expired one is gone within one sweep interval. */
  readonly entries: number;
}

type Admission = Extract<Resolution, { outcome: 'admitted' }>;

/**
 * An answer as the cache keeps it: a refusal as the resolver gave it (a
 * short reason, no credential), an admission without its credential. The
 * key stands for the credential, and a hit has the handshake's own in hand,
 * so it is put back on the way out. (An admitted tab keeps its credential
 * for the re-check while it is open: a cost of open tabs, not of the cache.)
 */
type Kept = Omit<Admission, 'credential'> | Refusal;

/** A look-up of one credential sent to the inner resolver and not yet settled. */
interface Query {
  /** What its callers get: its own answer, or a newer query's (see #settle). */
  readonly answer: Promise<Resolution>;
  /** The query of the same credential sent after this one while it was out (a re-check's), if any. */
  newer: Query | undefined;
}

interface Entry {
  readonly answer: Kept;
  /** Served until then (ms on the monotonic clock of `now`). */
  readonly until: number;
  /** An admission's own expiry (a token's), ms since the epoch on the wall clock: not served from then. */
  readonly expiresAt: number | undefined;
  /** Stores before this one: which of two entries is older, for `maxEntries` (two stores may share a millisecond). */
  readonly seq: number;
}

/**
 * The timer's sweep runs at most this often, however short the TTLs: with a
 * 10 ms refusal TTL, waking every 10 ms would cost more than the entries.
 */
const MIN_SWEEP_INTERVAL_MS = 100;
/** ...and at least this often, however long they are (timers also take no more than 2^31 - 1 ms). */
const MAX_SWEEP_INTERVAL_MS = 60_000;

export class CachedResolver implements SessionResolver {
  readonly name: string;
  readonly #inner: CredentialResolver;
  readonly #options: CachedResolverOptions;
  readonly #now: () => number;
  readonly #wallNow: () => number;
  /**
   * Admissions and refusals apart, each Map in the order its entries were
   * stored (a re-stored key is deleted and set again). Within one Map every
   * entry got the same TTL, so storage order is expiry order (the clock is
   * monotonic) and a sweep
   * from the front can stop at the first live entry: O(expired), not
   * O(entries). In one Map a refusal stored after an admission would wait
   * behind it for `positiveMs`, not `negativeMs`. (An admission may expire
   * sooner, at its `expiresAt`; it is never served past that, and is swept
   * at the latest when the older ones before it are, within `positiveMs` of
   * being stored.)
   */
  readonly #admitted = new Map<string, Entry>();
  readonly #refused = new Map<string, Entry>();
  /** The newest query of each credential still unanswered: the one new handshakes share. */
  readonly #inFlight = new Map<string, Query>();
  /** How often the idle sweep runs, in ms: the shorter TTL in use, within the bounds above. */
  readonly #sweepIntervalMs: number;
  #sweeper: NodeJS.Timeout | undefined;
  #closed = false;
  #stores = 0;
  #hits = 0;
  #shared = 0;
  #lookups = 0;

  constructor(inner: CredentialResolver, options: CachedResolverOptions) {
    this.#inner = inner;
    this.#options = options;
    this.#now = options.now ?? (() => performance.now());
    this.#wallNow = options.wallNow ?? Date.now;
    this.name = inner.name;
    const shortestTtl = Math.min(...[options.positiveMs, options.negativeMs].filter((ms) => ms > 0), MAX_SWEEP_INTERVAL_MS);
    this.#sweepIntervalMs = Math.max(MIN_SWEEP_INTERVAL_MS, shortestTtl);
  }

  async resolve(handshake: Handshake): Promise<Resolution> {
    const credential = this.#inner.credentialOf(handshake);
    if (typeof credential !== 'string') return credential;
    const key = cacheKey(handshake.kind, credential);
    const cached = this.#admitted.get(key) ?? this.#refused.get(key);
    if (cached) {
      if (cached.until > this.#now() && (cached.expiresAt === undefined || cached.expiresAt > this.#wallNow())) {
        this.#hits++;
        return cached.answer.outcome === 'admitted' ? { ...cached.answer, credential } : cached.answer;
      }
      this.#forget(key);
    }
    const pending = this.#inFlight.get(key);
    if (pending) {
      this.#shared++;
      return pending.answer;
    }
    return this.#ask(handshake.kind, credential, key);
  }

  /**
   * Always asks the inner resolver: any query in flight began before this
   * call, perhaps before the session ended, and the watcher must learn of a
   * logout in the first round that starts after it.
   */
  recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    return this.#ask(kind, credential, cacheKey(kind, credential));
  }

  stats(): CacheStats {
    return { hits: this.#hits, shared: this.#shared, lookups: this.#lookups, entries: this.#admitted.size + this.#refused.size };
  }

  /** Forgets every cached answer (e.g. after the operator changed the panel's sessions by hand). */
  clear(): void {
    this.#admitted.clear();
    this.#refused.clear();
    this.#stopSweeping();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.clear();
    await this.#inner.close();
  }

  /** Sends a query; from now on it is the one new handshakes of this credential share. */
  #ask(kind: PrincipalKind, credential: string, key: string): Promise<Resolution> {
    this.#lookups++;
    const query: Query = {
      answer: this.#inner
        .recheck(kind, credential)
        .catch((): Resolution => ({ outcome: 'unavailable', reason: 'session look-up failed' }))
        .then((resolution) => this.#settle(key, query, resolution)),
      newer: undefined,
    };
    const older = this.#inFlight.get(key);
    if (older) older.newer = query;
    this.#inFlight.set(key, query);
    return query.answer;
  }

  /**
   * What the callers of `query` get once its own answer is in. A newer query
   * of this credential began while it was out (a re-check): that one may
   * have reached the backend after a logout this one did not see, so its
   * answer is the one that counts, whether it came first or is still to
   * come. This query's callers get it too: they were handed a stale
   * "admitted" after the newer query had stored a refusal, and a tab got
   * in after Herald had learnt that its session ended. Only when the newer
   * one cannot tell ("unavailable") does this one's own answer stand.
   */
  async #settle(key: string, query: Query, resolution: Resolution): Promise<Resolution> {
    if (this.#inFlight.get(key) === query) {
      this.#inFlight.delete(key);
      this.#remember(key, resolution);
      return resolution;
    }
    if (query.newer === undefined) return resolution;
    const newest = await query.newer.answer;
    return newest.outcome === 'unavailable' ? resolution : newest;
  }

  #remember(key: string, resolution: Resolution): void {
    // A look-up that ends after close() is answered, not kept: nothing would sweep it.
    if (this.#closed) return;
    const now = this.#now();
    // Each store pays for the expired entries before it, so under any load
    // the cache holds no more than the answers of the last TTL.
    this.#sweep(now);
    let ttl = 0;
    if (resolution.outcome === 'admitted') ttl = this.#options.positiveMs;
    else if (resolution.outcome === 'refused') ttl = this.#options.negativeMs;
    if (ttl <= 0) {
      // An outage must not wipe what we knew, but a definite answer replaces it.
      if (resolution.outcome !== 'unavailable') this.#forget(key);
      return;
    }
    const until = now + ttl;
    // A credential that expires sooner (a token) is not trusted past its expiry: on the wall
    // clock, which is what its expiry is told in.
    const expiresAt = resolution.outcome === 'admitted' ? resolution.expiresAt : undefined;
    if (expiresAt !== undefined && expiresAt <= this.#wallNow()) {
      this.#forget(key);
      return;
    }
    this.#forget(key); // re-insert, possibly into the other Map: Map order is age order
    if (resolution.outcome === 'admitted') {
      const { credential: _credential, ...answer } = resolution;
      this.#admitted.set(key, { answer, until, expiresAt, seq: this.#stores++ });
    } else if (resolution.outcome === 'refused') {
      this.#refused.set(key, { answer: resolution, until, expiresAt: undefined, seq: this.#stores++ });
    }
    this.#evictBeyondMax();
    this.#startSweeping();
  }

  #forget(key: string): void {
    this.#admitted.delete(key);
    this.#refused.delete(key);
  }

  /** Drops the expired entries at the front of each Map. */
  #sweep(now: number): void {
    dropExpiredFront(this.#admitted, now);
    dropExpiredFront(this.#refused, now);
  }

  /** Forgets the oldest live entries, of either kind, until at most `maxEntries` are left. */
  #evictBeyondMax(): void {
    while (this.#admitted.size + this.#refused.size > this.#options.maxEntries) {
      const admitted = firstOf(this.#admitted);
      const refused = firstOf(this.#refused);
      const oldest = admitted && (!refused || admitted[1].seq < refused[1].seq) ? admitted : refused;
      if (!oldest) break;
      this.#forget(oldest[0]);
    }
  }

  /**
   * Without traffic nothing stores, so nothing would sweep: a burst of
   * refusals would stay on the heap after it ended. A timer sweeps while the
   * cache holds anything, so an entry outlives its TTL by at most one
   * interval; it is unref'd (it never keeps the process alive) and stops
   * once the cache is empty, and on close().
   */
  #startSweeping(): void {
    if (this.#sweeper !== undefined) return;
    this.#sweeper = setInterval(() => {
      this.#sweep(this.#now());
      if (this.#admitted.size + this.#refused.size === 0) this.#stopSweeping();
    }, this.#sweepIntervalMs);
    this.#sweeper.unref();
  }

  #stopSweeping(): void {
    if (this.#sweeper === undefined) return;
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }
}

/**
 * Credentials up to this many UTF-16 units are their own key: a session id
 * for the sql resolver is usually no longer than a digest, and hashing it
 * would cost 1-2 µs a handshake for nothing. Longer ones (the http
 * resolver's forwarded headers, as a rule) are keyed by their SHA-256, so a
 * key is at most ~70 characters whatever the credential, and an entry
 * about 230-300 bytes of heap (measured with 100,000 entries: 23-30 MB).
 */
const MAX_PLAIN_KEY_LENGTH = 64;

/**
 * The cache key of a credential on one endpoint. The separator tells the two
 * forms apart, so a short credential can never be taken for a digest. A
 * collision of SHA-256 (which would give one credential another's cached
 * answer) is not a practical risk.
 */
function cacheKey(kind: PrincipalKind, credential: string): string {
  if (credential.length <= MAX_PLAIN_KEY_LENGTH) return `${kind}\n${credential}`;
  return `${kind}#${createHash('sha256').update(credential).digest('base64')}`;
}

/** Deletes entries from the front of a Map in expiry order until the first live one. */
function dropExpiredFront(entries: Map<string, Entry>, now: number): void {
  // Deleting the entry being visited is safe while iterating a Map.
  for (const [key, entry] of entries) {
    if (entry.until > now) break;
    entries.delete(key);
  }
}

function firstOf(entries: Map<string, Entry>): [string, Entry] | undefined {
  return entries.entries().next().value;
}
