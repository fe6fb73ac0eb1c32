/**
 * Why a handshake would be refused, answered over plain HTTP.
 *
 * Herald refuses a bad credential before the WebSocket upgrade (HTTP 401,
 * PROTOCOL.md §1), but a browser shows a page nothing of a failed handshake:
 * the WebSocket just closes with 1006, exactly as when the server is down.
 * To tell "stop, your credential is refused" from "retry, the server is
 * away", the browser library asks the same URL with a plain POST, and this
 * answers with the status the handshake got: 401 or 403 (stop retrying),
 * 503 (retry), or 426 Upgrade Required (the credential is fine).
 */
import type { IncomingMessage } from 'node:http';
import type { PrincipalKind } from '../../protocol/principal.js';
import type { OriginPolicy } from '../auth/origin-policy.js';
import { parseCookies, type SessionResolver } from '../auth/session-resolver.js';

/** Returns the HTTP status the WebSocket handshake would get: 401, 403, 503, or 426 when it would be admitted. */
export type AdmissionCheck = (kind: PrincipalKind, req: IncomingMessage) => Promise<number>;

export interface AdmissionDeps {
  resolver: SessionResolver;
  origins: OriginPolicy;
}

/** The same checks, in the same order, as the Gateway's upgrade handler. */
export function createAdmissionCheck(deps: AdmissionDeps): AdmissionCheck {
  return async (kind, req) => {
    if (deps.origins.check(req.headers.origin) === 'forbidden') return 403;
    const url = new URL(req.url ?? '/', 'http://herald.invalid');
    try {
      const r = await deps.resolver.resolve({
        kind,
        headers: req.headers,
        cookies: parseCookies(req.headers.cookie),
        query: url.searchParams,
        remoteAddress: req.socket.remoteAddress,
      });
      if (r.outcome === 'refused') return 401;
      if (r.outcome === 'unavailable') return 503;
      return 426;
    } catch {
      return 503;
    }
  };
}

/** Whether a cross-origin page may read the answer (the same Origin policy as the WebSocket). */
export function originAllowed(deps: AdmissionDeps, origin: string | undefined): boolean {
  return origin !== undefined && origin !== '' && deps.origins.check(origin) === 'allowed';
}
