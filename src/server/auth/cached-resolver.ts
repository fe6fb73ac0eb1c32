/**
 * A cache in front of a resolver that asks someone else (database, panel).
 * When a node restarts, every open tab reconnects within seconds: 10,000 tabs
 * of 300 admins must not become 10,000 queries. So:
 * - a positive answer is reused for `positiveMs`, a refusal for the shorter
 *   `negativeMs` (a fresh login must work at once);
 * - "unavailable" is never cached: the next look-up asks again;
 * - concurrent look-ups of the same credential share one query.
 * `recheck` (the periodic re-check of live sessions) skips the cache, but
 * shares a query in flight and refreshes the cache with its answer.
 */
import type { PrincipalKind } from '../../protocol/principal.js';
import type { CredentialResolver, Handshake, Resolution, SessionResolver } from './session-resolver.js';

export interface CachedResolverOptions {
  /** How long an admission is reused, in ms. 0 = not at all. */
  readonly positiveMs: number;
  /** How long a refusal is reused, in ms. 0 = not at all. */
  readonly negativeMs: number;
  /** Credentials remembered at most; the oldest are forgotten first. */
  readonly maxEntries: number;
  /** The clock, for tests. */
  readonly now?: () => number;
}

export interface CacheStats {
  /** Answers served from the cache. */
  readonly hits: number;
  /** Look-ups that joined a query already in flight. */
  readonly shared: number;
  /** Queries actually sent to the inner resolver. */
  readonly lookups: number;
  readonly entries: number;
}

interface Entry {
  readonly resolution: Resolution;
  readonly until: number;
}

export class CachedResolver implements SessionResolver {
  readonly name: string;
  readonly #inner: CredentialResolver;
  readonly #options: CachedResolverOptions;
  readonly #now: () => number;
  readonly #cache = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<Resolution>>();
  #hits = 0;
  #shared = 0;
  #lookups = 0;

  constructor(inner: CredentialResolver, options: CachedResolverOptions) {
    this.#inner = inner;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.name = inner.name;
  }

  async resolve(handshake: Handshake): Promise<Resolution> {
    const credential = this.#inner.credentialOf(handshake);
    if (typeof credential !== 'string') return credential;
    const key = cacheKey(handshake.kind, credential);
    const cached = this.#cache.get(key);
    if (cached) {
      if (cached.until > this.#now()) {
        this.#hits++;
        return cached.resolution;
      }
      this.#cache.delete(key);
    }
    return this.#lookup(handshake.kind, credential, key);
  }

  recheck(kind: PrincipalKind, credential: string): Promise<Resolution> {
    return this.#lookup(kind, credential, cacheKey(kind, credential));
  }

  stats(): CacheStats {
    return { hits: this.#hits, shared: this.#shared, lookups: this.#lookups, entries: this.#cache.size };
  }

  /** Forgets every cached answer (e.g. after the operator changed the panel's sessions by hand). */
  clear(): void {
    this.#cache.clear();
  }

  async close(): Promise<void> {
    this.#cache.clear();
    await this.#inner.close();
  }

  #lookup(kind: PrincipalKind, credential: string, key: string): Promise<Resolution> {
    const pending = this.#inFlight.get(key);
    if (pending) {
      this.#shared++;
      return pending;
    }
    this.#lookups++;
    const query = this.#inner
      .recheck(kind, credential)
      .catch((): Resolution => ({ outcome: 'unavailable', reason: 'session look-up failed' }))
      .then((resolution) => {
        this.#remember(key, resolution);
        return resolution;
      })
      .finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, query);
    return query;
  }

  #remember(key: string, resolution: Resolution): void {
    const now = this.#now();
    let ttl = 0;
    if (resolution.outcome === 'admitted') ttl = this.#options.positiveMs;
    else if (resolution.outcome === 'refused') ttl = this.#options.negativeMs;
    if (ttl <= 0) {
      // An outage must not wipe what we knew, but a definite answer replaces it.
      if (resolution.outcome !== 'unavailable') this.#cache.delete(key);
      return;
    }
    let until = now + ttl;
    // A credential that expires sooner (a token) is not trusted past its expiry.
    if (resolution.outcome === 'admitted' && resolution.expiresAt !== undefined) until = Math.min(until, resolution.expiresAt);
    this.#cache.delete(key); // re-insert: Map order is age order
    this.#cache.set(key, { resolution, until });
    while (this.#cache.size > this.#options.maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
  }
}

function cacheKey(kind: PrincipalKind, credential: string): string {
  return `${kind}\n${credential}`;
}
