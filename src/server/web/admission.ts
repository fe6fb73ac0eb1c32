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
import { admit, type AdmissionDeps } from '../gateway/admission.js';

export type { AdmissionDeps };

/** Returns the HTTP status the WebSocket handshake would get: 401, 403, 503, or 426 when it would be admitted. */
export type AdmissionCheck = (kind: PrincipalKind, req: IncomingMessage) => Promise<number>;

/** The Gateway's own checks (gateway/admission.ts), answered as a status. */
export function createAdmissionCheck(deps: AdmissionDeps): AdmissionCheck {
  return async (kind, req) => {
    const a = await admit(deps, kind, req);
    return a.admitted ? 426 : a.status;
  };
}

/** Whether a cross-origin page may read the answer (the same Origin policy as the WebSocket). */
export function originAllowed(deps: AdmissionDeps, origin: string | undefined): boolean {
  return origin !== undefined && origin !== '' && deps.origins.check(origin) === 'allowed';
}
