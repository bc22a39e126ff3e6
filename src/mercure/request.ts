/**
 * What every Mercure endpoint reads off a request the same way: the hub it
 * speaks as (its URL and a 1.0 token's audience), the access token, the CORS
 * answer for a page of an allowed origin, and the answer to a refusal.
 */
import type { Context } from 'hono';
import { getCookie } from 'hono/cookie';
import { bearerToken } from '../core/auth.ts';
import { MeshError } from '../core/errors.ts';
import { MercureError } from './errors.ts';
import type { HubIdentity } from './grants.ts';

/** The hub's path, as the protocol fixes it: subscription topics and API paths are under it. */
export const HUB_PATH = '/.well-known/mercure';
const COOKIES = ['__Secure-mercure_access_token', 'mercureAuthorization'];

/** The hub's URL and audience for this request: MERCURE_PUBLIC_URL, else the request's origin; MERCURE_AUDIENCE, else the URL. */
export function hubOf(c: Context, options: { publicUrl?: string; audience?: string }): HubIdentity {
  const hubUrl = options.publicUrl ?? `${new URL(c.req.url).origin}${HUB_PATH}`;
  return { hubUrl, audience: options.audience ?? hubUrl };
}

/** The access token: the Authorization header first; else a cookie; else (0.x only) the `authorization` query parameter. */
export function tokenOf(c: Context, versions: ReadonlySet<'1' | '0'>): string | undefined {
  const header = c.req.header('authorization');
  if (header !== undefined) {
    const token = bearerToken(header);
    if (token === undefined) throw new MercureError(400, 'the Authorization header must be "Bearer <token>"', 'invalid_request');
    return token;
  }
  for (const name of COOKIES) {
    const cookie = getCookie(c, name);
    if (cookie) return cookie;
  }
  // Mercure 0.x also took it from the query (1.0 forbids that: URLs end up in logs).
  return versions.has('0') ? c.req.query('authorization') || undefined : undefined;
}

/** CORS for a page of an allowed origin (credentials included, so never a wildcard); none otherwise. */
export function corsHeaders(c: Context, origins: readonly string[]): Record<string, string> {
  const origin = c.req.header('origin');
  if (origin === undefined || !origins.includes(origin)) return {};
  return { 'access-control-allow-origin': origin, 'access-control-allow-credentials': 'true', 'access-control-expose-headers': 'mercure-last-event-id, last-event-id', vary: 'origin' };
}

/** The hub's answer to an error: Mercure's own as they are, a bad request as a 400, the database away as its 5xx. */
export function mercureErrorHandler(corsOrigins: readonly string[]): (err: Error, c: Context) => Response {
  return (err, c) => {
    const cors = corsHeaders(c, corsOrigins);
    if (err instanceof MercureError) return err.toResponse(cors);
    if (err instanceof MeshError && err.http < 500) return new MercureError(400, err.message).toResponse(cors);
    if (err instanceof MeshError) return new Response(`${err.message}\n`, { status: err.http, headers: { 'content-type': 'text/plain; charset=utf-8', ...cors } });
    throw err;
  };
}
