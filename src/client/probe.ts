import { CloseCode } from '../protocol/close-codes.js';

/**
 * Asks the WebSocket endpoint over plain HTTP whether the credential is the
 * problem: Herald answers a request without an Upgrade with the status the
 * handshake would have got (401, 403, or 426 when it would have been
 * accepted), with its JSON error body. POST, because browsers send Origin on
 * every POST but not on a same-origin GET, and the Origin is checked too.
 * Network errors (server down, CORS) and answers that are not Herald's say
 * nothing: retry.
 */
export async function probeRefusal(wsUrl: string): Promise<number | undefined> {
  if (!wsUrl || typeof fetch !== 'function') return undefined;
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  try {
    const res = await fetch(u.toString(), { method: 'POST', cache: 'no-store', credentials: 'include' });
    if (res.status !== 401 && res.status !== 403) return undefined;
    // Only Herald's own refusal stops the retries. A reverse proxy or a
    // firewall in front of it may answer 401 or 403 too (its own login, a
    // rule against POST on this path), and taking that for Herald's answer
    // would stop every tab for good, until a reload, over a passing outage.
    const code = await heraldErrorCode(res);
    if (res.status === 401 && code === 'HERALD_ERR_UNAUTHORIZED') return CloseCode.UNAUTHORIZED;
    if (res.status === 403 && code === 'HERALD_ERR_ORIGIN') return CloseCode.FORBIDDEN;
  } catch {
    // unreachable, or a cross-origin endpoint without CORS
  }
  return undefined;
}

/** The `error.code` of Herald's JSON error body, or undefined for any other body. */
async function heraldErrorCode(res: Response): Promise<string | undefined> {
  if (!(res.headers.get('content-type') ?? '').includes('application/json')) return undefined;
  try {
    const body = (await res.json()) as { error?: { code?: unknown } } | null;
    const code = body?.error?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}
