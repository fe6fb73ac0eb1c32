/**
 * Why a handshake would be refused, answered over plain HTTP.
 *
 * Herald refuses a bad credential before the WebSocket upgrade (HTTP 401,
 * docs/browser.md, "Connection"), but a browser shows a page nothing of a failed handshake:
 * the WebSocket just closes with 1006, exactly as when the server is down.
 * To tell "stop, your credential is refused" from "retry, the server is
 * away", the browser library asks the same URL with a plain POST, and this
 * answers with the status the handshake got: 401 or 403 (stop retrying),
 * 503 (retry), or 426 Upgrade Required (the credential is fine).
 */
import type { IncomingMessage } from 'node:http';
import type { PrincipalKind } from '../../protocol/principal.js';
import { HeraldError } from '../errors.js';
import { admit, requestUrl, type AdmissionDeps as HandshakeDeps } from '../gateway/admission.js';

/** What the probe is answered from: the handshake's checks, and how to spare the resolver. */
export interface AdmissionDeps extends HandshakeDeps {
  /**
   * Runs the probe's admission (synchronously up to its look-up) so that,
   * while the resolver's look-ups are failing, a credential that needs a new
   * look-up is answered "unavailable" (503) without one. The handshake the
   * probe follows has just asked and failed: asking again doubled the look-ups
   * of every refused tab against a database or panel that was down. Without
   * it every probe asks.
   */
  spareLookUps?<T>(admission: () => T): T;
}

/** Whether a cross-origin page may read the answer (the same Origin policy as the WebSocket). */
export function originAllowed(deps: AdmissionDeps, origin: string | undefined): boolean {
  return origin !== undefined && origin !== '' && deps.origins.check(origin) === 'allowed';
}

/** The answer to the library's probe: the error in Herald's shape, and the headers that go with it. */
export interface ProbeAnswer {
  error: HeraldError;
  headers: Record<string, string>;
}

/**
 * What the library's probe of `kind`'s endpoint gets, on the main port
 * (POST /ws/KIND) and on the old daemon's ports (any path): the status the
 * handshake would get, each with the code of its status (README's error
 * table: the probe reads the code of a 401 or 403), and CORS headers for an
 * allowed Origin, so that a page on the panel's origin can read it.
 */
export async function probeAnswer(deps: AdmissionDeps, kind: PrincipalKind, req: IncomingMessage): Promise<ProbeAnswer> {
  let url: URL;
  try {
    url = requestUrl(req);
  } catch {
    // As the handshake answers it (gateway.ts): the client's mistake, not "try again later".
    return { error: new HeraldError('HERALD_ERR_BAD_REQUEST', 'the request target is not a valid URL'), headers: { 'cache-control': 'no-store' } };
  }
  // The Origin check, a missing credential (401) and the cache answer as for the handshake.
  const a = await (deps.spareLookUps ? deps.spareLookUps(() => admit(deps, kind, req, url)) : admit(deps, kind, req, url));
  const status = a.admitted ? 426 : a.status;
  const headers: Record<string, string> = { vary: 'origin', 'cache-control': 'no-store' };
  const origin = req.headers.origin;
  if (originAllowed(deps, origin)) {
    headers['access-control-allow-origin'] = origin!;
    headers['access-control-allow-credentials'] = 'true';
  }
  if (status === 426) {
    // RFC 9110 §7.8: an Upgrade header goes with a Connection header naming it.
    headers.upgrade = 'websocket';
    headers.connection = 'upgrade';
  }
  const error =
    status === 426
      ? new HeraldError('HERALD_ERR_UPGRADE_REQUIRED', 'this endpoint takes WebSocket upgrades; the credential would be accepted')
      : status === 401
        ? new HeraldError('HERALD_ERR_UNAUTHORIZED', 'the credential admits nobody')
        : status === 403
          ? new HeraldError('HERALD_ERR_ORIGIN')
          : new HeraldError('HERALD_ERR_UNAVAILABLE', 'cannot check credentials now, try again later');
  return { error, headers };
}
