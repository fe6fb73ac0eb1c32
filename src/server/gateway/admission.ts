/**
 * Who may open a tab: the checks of a WebSocket handshake, in order — the
 * endpoint, Origin, then credentials — shared by the Gateway's upgrade
 * handler and the plain HTTP probe the browser library uses to learn why a
 * handshake was refused (src/server/web/admission.ts), so the two cannot
 * drift apart.
 */
import type { IncomingMessage } from 'node:http';
import type { Principal, PrincipalKind } from '../../protocol/principal.js';
import type { ErrorCode } from '../errors.js';
import type { OriginPolicy } from '../auth/origin-policy.js';
import { parseCookies, type Handshake, type Resolution, type SessionResolver } from '../auth/session-resolver.js';

export type Admission =
  | { readonly admitted: true; readonly principal: Principal; readonly credential: string; readonly url: URL }
  | { readonly admitted: false; readonly status: 401 | 403 | 503; readonly code: ErrorCode; readonly message: string; readonly log: Record<string, unknown> };

/** The two browser endpoints on the public listener. */
const PATHS: Record<string, PrincipalKind> = { '/ws/admin': 'admin', '/ws/user': 'user' };

/**
 * Which endpoint a request's path names, trailing slashes ignored
 * (`/ws/admin/` is `/ws/admin`); undefined for any other path. The handshake
 * and the probe of the same URL both read it here.
 */
export function endpointKind(pathname: string): PrincipalKind | undefined {
  return PATHS[withoutTrailingSlashes(pathname)];
}

/**
 * The path without the slashes that end it. Not `replace(/\/+$/, '')`: V8 backtracks
 * on that at every slash of a run that does not end the path, so a handshake for
 * `/` × 16,000 then `x` (node's header limit allows it) held the event loop about
 * 0.2 s before any credential was looked at.
 */
function withoutTrailingSlashes(path: string): string {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === 0x2f) end--;
  return path.slice(0, end);
}

/** The request's path and query, parsed (the host part is a placeholder). */
export function requestUrl(req: IncomingMessage): URL {
  return new URL(req.url ?? '/', 'http://herald.invalid');
}

export interface AdmissionDeps {
  resolver: SessionResolver;
  origins: OriginPolicy;
}

/** The origin of a hybi-08 handshake (2011's browsers), else undefined. */
function secWebSocketOrigin(req: IncomingMessage): string | undefined {
  const origin = req.headers['sec-websocket-origin'];
  return typeof origin === 'string' ? origin : undefined;
}

/**
 * `url`: the request's URL when the caller has parsed it already (the
 * handshake is a hot path). Answers at once, without a promise, when the
 * resolver does (signed tokens).
 */
export function admit(deps: AdmissionDeps, kind: PrincipalKind, req: IncomingMessage, url = requestUrl(req)): Admission | Promise<Admission> {
  // A hybi-08 handshake (Sec-WebSocket-Version: 8, which ws accepts beside 13) carries the
  // browser's origin in Sec-WebSocket-Origin: read as "no Origin", a foreign page was admitted.
  const origin = req.headers.origin ?? secWebSocketOrigin(req);
  if (deps.origins.check(origin) === 'forbidden') {
    return { admitted: false, status: 403, code: 'HERALD_ERR_ORIGIN', message: 'origin not allowed', log: { origin, kind } };
  }
  const handshake = new RequestHandshake(kind, req, parseCookies(req.headers.cookie), url.searchParams);
  let resolution: Resolution | Promise<Resolution>;
  try {
    resolution = deps.resolver.resolve(handshake);
  } catch (err) {
    resolution = unavailable(err);
  }
  if (resolution instanceof Promise) return resolution.then((r) => decide(deps, kind, url, r), (err: unknown) => decide(deps, kind, url, unavailable(err)));
  return decide(deps, kind, url, resolution);
}

/**
 * A handshake as the resolvers see it. A class, not an object literal with a
 * getter: V8 builds every such literal in its runtime, as a dictionary-mode
 * object around a new closure over the request, and with it each connect's
 * request and all it holds (headers, URL, search params) outlived two young
 * collections and was promoted: 1.9 KB more promoted per connect and about
 * 11% more server CPU per connect in W1 (docs/bench-history.md, tenth round).
 */
class RequestHandshake implements Handshake {
  readonly headers: IncomingMessage['headers'];
  readonly #req: IncomingMessage;

  constructor(
    readonly kind: PrincipalKind,
    req: IncomingMessage,
    readonly cookies: ReadonlyMap<string, string>,
    readonly query: URLSearchParams,
  ) {
    this.headers = req.headers;
    this.#req = req;
  }

  /** Read on demand: asking the kernel for the peer's address costs a system call per handshake. */
  get remoteAddress(): string | undefined {
    return this.#req.socket.remoteAddress;
  }
}

function unavailable(err: unknown): Resolution {
  return { outcome: 'unavailable', reason: (err as Error).message };
}

function decide(deps: AdmissionDeps, kind: PrincipalKind, url: URL, resolution: Resolution): Admission {
  const log = { kind, resolver: deps.resolver.name };
  switch (resolution.outcome) {
    case 'admitted':
      return { admitted: true, principal: resolution.principal, credential: resolution.credential, url };
    case 'refused':
      return { admitted: false, status: 401, code: 'HERALD_ERR_UNAUTHORIZED', message: resolution.reason, log: { ...log, reason: resolution.reason } };
    case 'unavailable':
      return {
        admitted: false, status: 503, code: 'HERALD_ERR_UNAVAILABLE', message: 'cannot check credentials now, try again later',
        log: { ...log, reason: resolution.reason },
      };
  }
}
