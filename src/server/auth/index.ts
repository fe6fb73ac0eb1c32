/**
 * The auth seam's public face: herald.ts calls `createSessionResolver` and
 * `createSessionWatcher` and nothing else here needs to be known outside.
 */
import type { Logger } from 'pino';
import type { HeraldOptions } from '../options.js';
import { CachedResolver } from './cached-resolver.js';
import { HttpResolver } from './http-resolver.js';
import type { CredentialResolver, SessionResolver } from './session-resolver.js';
import { SessionWatcher, type CredentialedTab } from './session-watcher.js';
import { createSqlPool, sqlDialectOf } from './sql-pool.js';
import { SqlResolver, sqlLookupsFromOptions } from './sql-resolver.js';
import { TokenResolver } from './token-resolver.js';

export { CachedResolver, type CacheStats } from './cached-resolver.js';
export { HttpResolver, type HttpResolverOptions } from './http-resolver.js';
export { OriginPolicy, defaultAllowedOrigins, type OriginPolicyOptions, type OriginVerdict } from './origin-policy.js';
export { parseCookies, type CredentialResolver, type Handshake, type Resolution, type SessionResolver } from './session-resolver.js';
export { SessionWatcher, type CredentialedTab, type RecheckRound, type SessionWatcherOptions } from './session-watcher.js';
export { createSqlPool, sqlDialectOf, type SqlDialect, type SqlPool } from './sql-pool.js';
export { SqlResolver, abillsLookups, sqlLookupsFromOptions, type SqlLookup, type SqlLookups } from './sql-resolver.js';
export { TokenResolver, mintToken, TOKEN_AUDIENCE, TOKEN_COOKIE } from './token-resolver.js';

/**
 * Builds the resolver `authResolver` names. sql and http are wrapped in the
 * cache (a reconnect storm makes one query per session); token needs none:
 * checking a signature asks nobody. `options.secret` must be filled
 * (ensureSecrets) for the token resolver.
 */
/**
 * The resolver `authResolver` names. `watch`, when given, wraps the look-up
 * itself (the database's or the panel's answer), under the cache: what it
 * sees is what the backend answered, never a cached answer or a handshake
 * refused for want of a credential.
 */
export function createSessionResolver(options: HeraldOptions, logger?: Logger, watch?: (backend: CredentialResolver) => CredentialResolver): SessionResolver {
  const log = logger?.child({ part: 'auth' });
  let inner: CredentialResolver;
  switch (options.authResolver) {
    case 'token':
      return new TokenResolver({
        secret: options.secret,
        clockSkewMs: options.tokenClockSkewMs,
        ...(options.previousSecret ? { previousSecret: options.previousSecret } : {}),
      });
    case 'sql': {
      const dialect = sqlDialectOf(options.sqlUrl);
      const pool = createSqlPool(options.sqlUrl, {
        size: options.sqlPoolSize,
        timeoutMs: options.sqlTimeoutMs,
        // Only the code: messages of connection errors can carry the host and user of sqlUrl.
        onError: (e) => log?.warn({ resolver: 'sql', code: (e as { code?: unknown }).code }, 'idle database connection failed'),
      });
      inner = new SqlResolver({ pool, lookups: sqlLookupsFromOptions(options, dialect), logger: log });
      break;
    }
    case 'http':
      inner = new HttpResolver({
        url: options.httpResolverUrl, timeoutMs: options.httpResolverTimeoutMs, headers: options.httpResolverHeaders,
        concurrency: options.httpResolverConcurrency, logger: log,
      });
      break;
  }
  return new CachedResolver(watch ? watch(inner) : inner, { positiveMs: options.authCacheMs, negativeMs: options.authNegativeCacheMs, maxEntries: options.authCacheMaxEntries });
}

/**
 * The periodic re-check of live sessions, or undefined when `sessionRecheckMs`
 * is 0. The caller starts it after listen() and stops it on close().
 */
export function createSessionWatcher(
  options: HeraldOptions,
  tabs: { all(): readonly CredentialedTab[] },
  resolver: SessionResolver,
  logger?: Logger,
): SessionWatcher | undefined {
  if (options.sessionRecheckMs <= 0) return undefined;
  return new SessionWatcher({ tabs, resolver, intervalMs: options.sessionRecheckMs, logger: logger?.child({ part: 'auth' }) });
}
