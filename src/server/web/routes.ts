/**
 * Web routes: the browser library (/herald.js, /herald.esm.js) and, in demo
 * mode only, the demo page with its token-minting and send endpoints.
 *
 * The library is served from the build (dist/client), read once and kept in
 * memory with a strong ETag and a gzipped copy. The URL has no version in it,
 * so caches keep it only briefly and then revalidate (a 304 costs a few
 * bytes); a page that wants long caching can add `?v=<etag>`, which switches
 * to an immutable year-long lifetime.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from '@sinclair/typebox';
import { demoEnabled, isLoopback, type HeraldOptions } from '../options.js';
import type { PrincipalKind } from '../../protocol/principal.js';
import { HeraldError } from '../errors.js';
import { PersonId, refuseConverted } from '../api/schemas.js';
import { DEMO_CSP, DEMO_HTML } from './demo-page.js';
import { probeAnswer, type AdmissionDeps } from './admission.js';
import { endpointKind, requestUrl } from '../gateway/admission.js';

export interface WebContext {
  options: HeraldOptions;
  /**
   * Signs a browser token for a person (Herald.mintToken): the token and when
   * it ends (epoch ms, its `exp`: whole seconds, so not simply now + ttlMs).
   */
  mintToken(kind: PrincipalKind, id: number, ttlMs: number): Promise<{ token: string; expiresAt: number }>;
  /** The build output: `dist` (or `dist/client` itself). Default: see defaultDistDir(). */
  distDir?: string;
  /**
   * The resolver and Origin policy, to answer a plain GET on /ws/admin and
   * /ws/user with the status the handshake would get (admission.ts). Without
   * them those GETs answer 426 and the library cannot tell a refused
   * credential from a server that is down.
   */
  admission?: AdmissionDeps;
}

/** `dist/` next to this file's tree: dist/server/web → dist; src/server/web (tsx) → <repo>/dist. */
export function defaultDistDir(): string {
  const tree = fileURLToPath(new URL('../../', import.meta.url));
  return basename(tree) === 'dist' ? tree : join(tree, '..', 'dist');
}

interface Asset {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  /**
   * The gzip body's: a strong ETag names one sequence of bytes (RFC 9110
   * §8.8.3), and the two bodies are two. With one ETag for both, a cache
   * holding one body could be told by a 304 that it is the other.
   */
  gzipEtag: string;
  type: string;
}

/** Short browser cache for the unversioned URL; revalidation is cheap with the ETag. */
const CACHE_SHORT = 'public, max-age=300, must-revalidate';
const CACHE_IMMUTABLE = 'public, max-age=31536000, immutable';
/**
 * Bodies of the routes anyone who reaches the listener may call, before any
 * credential is checked: the library's probe (POST /ws/KIND) sends none and
 * /demo/token a few bytes; /demo/send's fields hold at most about 23,000
 * characters (up to 4 bytes each in UTF-8, escaped in JSON). With the API's
 * limit (maxBodyBytes, 1 MB) each held a megabyte of an unauthenticated request
 * for up to requestTimeoutMs; a larger body is now refused with 413 as soon as
 * its Content-Length says so.
 */
const PROBE_BODY_LIMIT = 1024;
const DEMO_SEND_BODY_LIMIT = 128 * 1024;

function clientDir(distDir: string): string {
  const nested = join(distDir, 'client');
  return existsSync(join(nested, 'herald.min.js')) ? nested : distDir;
}

function loadAsset(dir: string, file: string, type: string): Asset | undefined {
  const path = join(dir, file);
  if (!existsSync(path)) return undefined;
  const body = readFileSync(path);
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, gzip: gzipSync(body, { level: 9 }), etag: `"${hash}"`, gzipEtag: `"${hash}-gz"`, type };
}

function sendAsset(req: FastifyRequest, reply: FastifyReply, asset: Asset | undefined, name: string): FastifyReply {
  if (!asset) {
    return reply
      .code(503)
      .type('application/json')
      .send({ error: { code: 'HERALD_ERR_UNAVAILABLE', message: `${name} is not built: run npm run build` } });
  }
  const versioned = typeof (req.query as Record<string, unknown> | undefined)?.v === 'string';
  // The body is chosen first: the ETag, and what If-None-Match is compared with, are that body's.
  const gzip = acceptsGzip(req.headers['accept-encoding']);
  const etag = gzip ? asset.gzipEtag : asset.etag;
  reply.header('cache-control', versioned ? CACHE_IMMUTABLE : CACHE_SHORT);
  reply.header('etag', etag);
  reply.header('vary', 'accept-encoding');
  reply.header('x-content-type-options', 'nosniff');
  reply.header('cross-origin-resource-policy', 'cross-origin');
  // A module script (`import … from 'https://herald…/herald.esm.js'`, `<script type=module>`) is
  // fetched in CORS mode: without this a panel on another origin could not load the module build,
  // only the classic script. The files are public code, fetched without credentials.
  reply.header('access-control-allow-origin', '*');
  reply.type(asset.type);
  const inm = req.headers['if-none-match'];
  // Weak comparison, and `*` matches any current representation (RFC 9110 §13.1.2).
  if (typeof inm === 'string' && inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag)) {
    return reply.code(304).send();
  }
  if (gzip) {
    reply.header('content-encoding', 'gzip');
    return reply.send(asset.gzip);
  }
  return reply.send(asset.body);
}

/**
 * Whether Accept-Encoding allows gzip (RFC 9110 §12.5.3): `gzip` (or its
 * alias `x-gzip`), else `*`, with a q-value above 0. `gzip;q=0` refuses it,
 * as `identity, *;q=0`-style headers of proxies and tools do.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const entry of header.split(',')) {
    const [name = '', ...params] = entry.split(';');
    let q = 1;
    for (const param of params) {
      const m = /^\s*q\s*=\s*([\d.]+)\s*$/i.exec(param);
      if (m) q = Number(m[1]);
    }
    if (!Number.isFinite(q)) q = 0;
    const coding = name.trim().toLowerCase();
    if (coding === 'gzip' || coding === 'x-gzip') gzip = Math.max(gzip ?? 0, q);
    else if (coding === '*') star = q;
  }
  return (gzip ?? star ?? 0) > 0;
}

/** The host name of a Host header (`localhost:8080` → `localhost`, `[::1]:80` → `::1`), lower case; '' when absent. */
function hostName(header: string | undefined): string {
  if (header === undefined) return '';
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? '' : h.slice(1, end);
  }
  const colon = h.indexOf(':');
  return colon < 0 ? h : h.slice(0, colon);
}

const TokenBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('admin'), Type.Literal('user')]),
    id: PersonId,
  },
  { additionalProperties: false },
);

const SendBody = Type.Object(
  {
    kind: Type.Union([Type.Literal('admin'), Type.Literal('user')]),
    id: PersonId,
    title: Type.String({ maxLength: 1000 }),
    text: Type.String({ maxLength: 20000 }),
    extra: Type.Optional(Type.String({ maxLength: 2000 })),
  },
  { additionalProperties: false },
);

/** Registers the library's routes and, when `options.demo` is on, the demo's. */
export async function registerWebRoutes(app: FastifyInstance, ctx: WebContext): Promise<void> {
  const dir = clientDir(ctx.distDir ?? defaultDistDir());
  const JS = 'application/javascript; charset=utf-8';
  const MAP = 'application/json; charset=utf-8';
  // Loaded on first request (the build may finish after the server starts in development), then kept.
  const cache = new Map<string, Asset>();
  const asset = (file: string, type: string): Asset | undefined => {
    let a = cache.get(file);
    if (!a) {
      a = loadAsset(dir, file, type);
      if (a) cache.set(file, a);
    }
    return a;
  };

  app.get('/herald.js', { schema: { hide: true } }, (req, reply) => sendAsset(req, reply, asset('herald.min.js', JS), 'herald.js'));
  app.get('/herald.min.js', { schema: { hide: true } }, (req, reply) => sendAsset(req, reply, asset('herald.min.js', JS), 'herald.min.js'));
  app.get('/herald.min.js.map', { schema: { hide: true } }, (req, reply) => sendAsset(req, reply, asset('herald.min.js.map', MAP), 'herald.min.js.map'));
  app.get('/herald.esm.js', { schema: { hide: true } }, (req, reply) => sendAsset(req, reply, asset('herald.esm.js', JS), 'herald.esm.js'));
  app.get('/herald.esm.js.map', { schema: { hide: true } }, (req, reply) => sendAsset(req, reply, asset('herald.esm.js.map', MAP), 'herald.esm.js.map'));

  const admission = ctx.admission;
  // Upgrade requests never reach this route (the Gateway takes the server's
  // 'upgrade' event); only the library's plain-GET probe does. POST as well
  // as GET: browsers send Origin on every POST, even a same-origin one, but
  // not on a same-origin GET, and the Origin is half of what the handshake is
  // checked on. The library probes with POST. Every path under /ws/ comes
  // here and is read as the handshake reads it (endpointKind): the probe of
  // `/ws/admin/`, routed as exactly `/ws/admin`, answered 404 where its
  // handshake answered 401, and the library never learnt that its credential
  // was refused: it retried for ever.
  app.route({ method: ['GET', 'POST'], url: '/ws/*', schema: { hide: true }, bodyLimit: PROBE_BODY_LIMIT, handler: async (req, reply) => {
    // `/ws/…` always parses: `new URL` throws only where it would read a host.
    const kind = endpointKind(requestUrl(req.raw).pathname);
    if (kind === undefined) throw new HeraldError('HERALD_ERR_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    if (!admission) {
      reply.header('upgrade', 'websocket');
      reply.header('connection', 'upgrade');
      return reply.code(426).send(new HeraldError('HERALD_ERR_UPGRADE_REQUIRED', 'this endpoint takes WebSocket upgrades').toJSON());
    }
    const { error, headers } = await probeAnswer(admission, kind, req.raw);
    return reply.code(error.status).headers(headers).send(error.toJSON());
  } });

  if (!demoEnabled(ctx.options)) return;
  if (ctx.options.demo === true && (!isLoopback(ctx.options.host) || ctx.options.publicUrl !== '')) {
    app.log.warn({ host: ctx.options.host, publicUrl: ctx.options.publicUrl }, 'demo is on where others may reach it: anyone who reaches /demo can mint a token for any admin and send to anyone; set demo to false or auto');
  } else {
    // Said at every start it is on, so that an operator who put a proxy in front of
    // the quick start's defaults reads it: such a proxy may pass a loopback Host.
    app.log.info('demo is on at /demo (demo: auto, the quick start\'s defaults): anyone who reaches this port, also through a reverse proxy, can mint a token for any admin; it turns off once publicUrl or allowedOrigins is set, or with demo: false');
  }

  // On a loopback listener "only this machine" is the demo's whole safeguard, and DNS
  // rebinding undoes it: a site whose name now points at 127.0.0.1 is, to the browser, the
  // same origin as its page, which could then mint tokens and send. Its Host header still
  // names that site, so the demo answers only to a loopback Host there. A demo forced on
  // elsewhere (demo: true, warned above) is reached by whatever name its network uses.
  const loopbackOnly = isLoopback(ctx.options.host);
  const onRequest = async (req: FastifyRequest): Promise<void> => {
    if (loopbackOnly && !isLoopback(hostName(req.headers.host))) {
      throw new HeraldError('HERALD_ERR_FORBIDDEN', 'the demo answers only to a loopback host name (localhost, 127.0.0.1, [::1]) on a loopback listener');
    }
  };

  app.get('/demo', { schema: { hide: true }, onRequest }, (_req, reply) => {
    reply.header('cache-control', 'no-cache');
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('content-security-policy', DEMO_CSP);
    return reply.type('text/html; charset=utf-8').send(DEMO_HTML);
  });
  app.get('/demo.js', { schema: { hide: true }, onRequest }, (req, reply) => sendAsset(req, reply, asset('demo.js', JS), 'demo.js'));

  // Demo mode lets anyone who can reach the server act as any admin: that is
  // the point of a demo, and why `demo` must be off in production.
  // `"id":true` would be a token for admin 1, as on POST /api/v1/tokens (schemas.ts, convertedScalar).
  app.post<{ Body: Static<typeof TokenBody> }>('/demo/token', {
    schema: { body: TokenBody, hide: true }, bodyLimit: PROBE_BODY_LIMIT, onRequest, preValidation: refuseConverted([['id', 'integer']]),
  }, async (req, reply) => {
    reply.header('cache-control', 'no-store');
    // The token's own expiry: now + tokenTtlMs said up to a second more or less than its `exp`.
    const { token, expiresAt } = await ctx.mintToken(req.body.kind, req.body.id, ctx.options.tokenTtlMs);
    return { token, expiresAt };
  });

  // Goes through the real HTTP API (in-process), so the demo shows exactly
  // what a backend gets; the API token never leaves the server.
  // Its id is checked as the API's are (`"0x10"` was admin 16): the send below is built from it, not from the body.
  app.post<{ Body: Static<typeof SendBody> }>('/demo/send', {
    schema: { body: SendBody, hide: true }, bodyLimit: DEMO_SEND_BODY_LIMIT, onRequest, preValidation: refuseConverted([['id', 'integer']]),
  }, async (req, reply) => {
    const { kind, id, title, text, extra } = req.body;
    const message: Record<string, unknown> = { TYPE: 'MESSAGE', TITLE: title, TEXT: text };
    if (extra) message.EXTRA = extra;
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/send',
      headers: { authorization: `Bearer ${ctx.options.apiToken}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ to: kind === 'admin' ? { aid: id } : { uid: id }, message }),
    });
    reply.code(res.statusCode).type('application/json; charset=utf-8');
    return res.body;
  });
}
