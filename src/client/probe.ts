import { CloseCode } from '../protocol/close-codes.js';

/**
 * Asks the WebSocket endpoint over plain HTTP whether the credential is the
 * problem: Herald answers a request without an Upgrade with the status the
 * handshake would have got (401, 403, or 426 when it would have been
 * accepted). POST, because browsers send Origin on every POST but not on a
 * same-origin GET, and the Origin is checked too. Network errors (server
 * down, CORS) say nothing: retry.
 */
export async function probeRefusal(wsUrl: string): Promise<number | undefined> {
  if (!wsUrl || typeof fetch !== 'function') return undefined;
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  try {
    const res = await fetch(u.toString(), { method: 'POST', cache: 'no-store', credentials: 'include' });
    if (res.status === 401) return CloseCode.UNAUTHORIZED;
    if (res.status === 403) return CloseCode.FORBIDDEN;
  } catch {
    // unreachable, or a cross-origin endpoint without CORS
  }
  return undefined;
}
