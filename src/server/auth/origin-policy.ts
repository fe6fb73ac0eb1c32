/**
 * Which web pages may open a WebSocket to Herald. Browsers always send
 * `Origin` on a WebSocket handshake (RFC 6455 §4.1, item 8), and cookies ride
 * along whatever page opened it: without this check any site could open a
 * socket with an admin's cookie (cross-site WebSocket hijacking).
 */
export interface OriginPolicyOptions {
  /** Exact origins (`https://panel.example.net`), wildcard subdomains (`https://*.example.net`), or `*`. */
  allowed: readonly string[];
  /** Admit a handshake with no Origin header (a non-browser client). */
  allowMissing: boolean;
}

export type OriginVerdict = 'allowed' | 'forbidden';

interface Rule {
  scheme: string;
  /** Exact host, or the suffix after `*.` for wildcards. */
  host: string;
  wildcard: boolean;
  /** Empty = scheme default; `*` = any. */
  port: string;
}

function parseRule(text: string): Rule | undefined {
  // An IPv6 literal may end in dotted IPv4 (`[::ffff:127.0.0.1]`, RFC 4291 §2.2): the URL parser
  // below writes it as browsers send it (`[::ffff:7f00:1]`); it was refused as no origin.
  const m = /^(https?|wss?):\/\/(\*\.)?(\[[0-9a-f:.]+\]|[^/:[\]]+)(?::(\d+|\*))?\/?$/i.exec(text.trim());
  // A `*` other than a leading `*.` label matches no browser's Origin: `https://*` (meant as
  // "any https page") or `https://*.*.example.net` started and then refused every tab.
  if (!m || m[3]!.includes('*')) return undefined;
  const scheme = m[1]!.toLowerCase();
  const wildcard = !!m[2];
  // Normalise the host as browsers serialise an Origin (lower case, IDN as punycode),
  // and an explicit default port to none: `https://x:443` is sent as `https://x`.
  let host: string;
  let port = m[4] ?? '';
  try {
    const url = new URL(`${scheme}://${wildcard ? 'x.' : ''}${m[3]!}${port && port !== '*' ? `:${port}` : ''}`);
    host = wildcard ? url.hostname.slice(2) : url.hostname;
    if (port !== '*') port = url.port;
  } catch {
    return undefined;
  }
  return { scheme, wildcard, host, port };
}

/** `scheme://host[:port]`: no user info, path, query or fragment, not even a trailing `/`. */
const SERIALISED_ORIGIN = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@\\]+$/i;

export class OriginPolicy {
  readonly #any: boolean;
  readonly #rules: Rule[];
  readonly #allowMissing: boolean;

  constructor(options: OriginPolicyOptions) {
    this.#any = options.allowed.includes('*');
    this.#rules = [];
    for (const text of options.allowed) {
      if (text === '*') continue;
      const rule = parseRule(text);
      if (!rule) throw new TypeError(`allowedOrigins: "${text}" is not an origin like https://panel.example.net or https://*.example.net`);
      this.#rules.push(rule);
    }
    this.#allowMissing = options.allowMissing;
  }

  check(origin: string | undefined): OriginVerdict {
    if (origin === undefined || origin === '') return this.#allowMissing ? 'allowed' : 'forbidden';
    if (this.#any) return 'allowed';
    // A serialised origin is scheme://host[:port] and nothing else (RFC 6454 §6.2), which is
    // all a browser sends. The URL parser would read `https://panel@evil`'s host as evil and
    // `https://evil@panel/x`'s as panel: such a header comes from no page, so it admits nobody.
    if (!SERIALISED_ORIGIN.test(origin)) return 'forbidden';
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return 'forbidden';
    }
    const scheme = url.protocol.replace(':', '');
    const host = url.hostname.toLowerCase();
    for (const r of this.#rules) {
      if (r.scheme !== scheme) continue;
      if (r.port !== '*' && r.port !== url.port) continue;
      if (r.wildcard ? host.endsWith(`.${r.host}`) : host === r.host) return 'allowed';
    }
    return 'forbidden';
  }
}

/** The embedded default: the public URL's own origin, and localhost / loopback on any port. */
export function defaultAllowedOrigins(publicOrigin: string): string[] {
  // https on [::1] as on 127.0.0.1: a page served over TLS on the IPv6 loopback was refused.
  return [publicOrigin, 'http://localhost:*', 'https://localhost:*', 'http://127.0.0.1:*', 'https://127.0.0.1:*', 'http://[::1]:*', 'https://[::1]:*'];
}
