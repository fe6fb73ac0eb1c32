/**
 * Who a browser tab belongs to. The old daemon knew two kinds of people:
 * admins (by AID) and the ISP's subscribers, "users" (by UID). Both ids are
 * positive integers in ABillS.
 */
export type PrincipalKind = 'admin' | 'user';

export interface Principal {
  readonly kind: PrincipalKind;
  readonly id: number;
}

export const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['admin', 'user'];

/** A stable string key for maps and storage: `admin:7`, `user:42`. */
export function principalKey(p: Principal): string {
  return `${p.kind}:${p.id}`;
}

/**
 * The person a key names, only in the form principalKey writes: `admin:07`,
 * `admin:7.0`, `admin:0x7`, `admin: 7` or `admin:7:user` name nobody (a
 * token's `sub` read loosely admitted admin 7 for each).
 */
export function parsePrincipalKey(key: string): Principal | undefined {
  const colon = key.indexOf(':');
  const kind = key.slice(0, colon);
  if (colon < 0 || (kind !== 'admin' && kind !== 'user')) return undefined;
  const id = toPersonId(key.slice(colon + 1));
  return id === undefined ? undefined : { kind, id };
}

/** Ids are positive safe integers; the legacy protocol may send them as numeric strings. */
export function isPersonId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

export function toPersonId(value: unknown): number | undefined {
  if (isPersonId(value)) return value;
  if (typeof value === 'string' && /^[1-9][0-9]{0,15}$/.test(value)) {
    const n = Number(value);
    return isPersonId(n) ? n : undefined;
  }
  return undefined;
}
